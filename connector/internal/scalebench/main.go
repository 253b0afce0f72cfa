// Command scalebench measures the memory and time of a no-op sync over
// millions of stored items (issue 14): connectortest's synthetic source
// and sink make N unchanged items without holding them, so what grows with
// N is the connector's own memory. Each measurement runs in a child
// process, whose peak RSS is the kernel's (getrusage of the child); the
// bare listing of the same source is the time baseline.
//
//	go run ./connector/internal/scalebench -n 1000000,10000000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/connectortest"
)

const source = "synthetic://scalebench"

func main() {
	sizes := flag.String("n", "1000000,10000000", "comma-separated item counts, measured one after the other")
	child := flag.String("child", "", "internal: run one measurement (list, stored, plan or sync) in this process")
	n := flag.Int("items", 0, "internal: the child's item count")
	cpuProfile := flag.String("cpuprofile", "", "with -child: write the measurement's CPU profile to this file")
	flag.Parse()
	if *child != "" {
		if err := measure(*child, *n, *cpuProfile); err != nil {
			fmt.Fprintln(os.Stderr, "scalebench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*sizes); err != nil {
		fmt.Fprintln(os.Stderr, "scalebench:", err)
		os.Exit(1)
	}
}

// run measures each size in turn, in child processes, never two at once.
func run(sizes string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Println("| items | what | time | peak RSS | RSS bytes/item | time / bare listing |")
	fmt.Println("|---:|---|---:|---:|---:|---:|")
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("item count %q: want a positive integer", s)
		}
		var bare time.Duration
		for _, mode := range []string{"list", "stored", "plan", "sync"} {
			el, rss, err := child(self, mode, n)
			if err != nil {
				return err
			}
			if mode == "list" {
				bare = el
			}
			fmt.Printf("| %d | %s | %.2fs | %.0f MB | %.1f | %.2f× |\n", n, label[mode], el.Seconds(),
				float64(rss)/1e6, float64(rss)/float64(n), el.Seconds()/bare.Seconds())
		}
	}
	return nil
}

var label = map[string]string{"list": "bare listing", "stored": "bare read of the stored items",
	"plan": "dry run (Plan)", "sync": "no-op sync (Run)"}

// child runs one measurement and returns its time (as the child measured
// it, without process start) and its peak RSS in bytes.
func child(self, mode string, n int) (time.Duration, int64, error) {
	cmd := exec.Command(self, "-child", mode, "-items", strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("%s of %d items: %w", mode, n, err)
	}
	el, err := time.ParseDuration(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, 0, fmt.Errorf("%s of %d items: child said %q: %w", mode, n, out, err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, 0, fmt.Errorf("%s of %d items: no rusage on this system", mode, n)
	}
	return el, ru.Maxrss * 1024, nil // Linux reports KiB
}

// measure runs mode over n synthetic items and prints the time it took;
// with a cpuProfile path it also profiles the measurement, e.g.
//
//	go run ./connector/internal/scalebench -child sync -items 1000000 -cpuprofile sync.prof
//	go tool pprof -top sync.prof
func measure(mode string, n int, cpuProfile string) error {
	ctx := context.Background()
	y := connectortest.Synthetic{Source: source, N: n}
	src := connectortest.SyntheticSource{Synthetic: y}
	model := connectortest.Model("scalebench", 8)
	sink := connectortest.NewSyntheticSink(y, model)
	if err := sink.Open(ctx, model); err != nil {
		return err
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	switch mode {
	case "list":
		listed := 0
		if err := src.List(ctx, func(connector.Entry) error { listed++; return nil }); err != nil {
			return err
		}
		if listed != n {
			return fmt.Errorf("listed %d items, want %d", listed, n)
		}
	case "stored":
		stored := 0
		if err := sink.Stored(ctx, source, func(connector.StoredItem) error { stored++; return nil }); err != nil {
			return err
		}
		if stored != n {
			return fmt.Errorf("read %d stored items, want %d", stored, n)
		}
	case "plan", "sync":
		s, err := connector.NewSyncer(connector.Options{Source: src, Sink: sink, Embedder: connectortest.NewEmbedder(model, 8)})
		if err != nil {
			return err
		}
		if mode == "plan" {
			p, err := s.Plan(ctx)
			if err != nil {
				return err
			}
			if p.Unchanged != int64(n) || p.ToRead() != 0 || p.Vanished != 0 {
				return fmt.Errorf("plan is not a no-op: %s", p)
			}
			break
		}
		r, err := s.Run(ctx)
		if err != nil {
			return err
		}
		if r.Unchanged != int64(n) || r.Written != 0 || r.Deleted != 0 {
			return fmt.Errorf("sync is not a no-op: %+v", r)
		}
	default:
		return fmt.Errorf("unknown measurement %q", mode)
	}
	fmt.Println(time.Since(start))
	return nil
}
