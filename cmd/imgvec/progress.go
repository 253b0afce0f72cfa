package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/imgvec/imgvec/connector"
)

// progressReporter shows a run's progress: a one-line bar on a terminal,
// otherwise a structured log line every logEvery.
type progressReporter struct {
	w        io.Writer
	tty      bool
	logEvery time.Duration
	lastLog  time.Time
	label    string
}

func newProgress(stderr io.Writer, quiet bool, label string) func(connector.Progress) {
	if quiet {
		return nil
	}
	p := &progressReporter{w: stderr, logEvery: 10 * time.Second, label: label}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p.report
}

func (p *progressReporter) report(pr connector.Progress) {
	r := pr.Run
	if p.tty {
		total := "?"
		if pr.ListingDone {
			total = fmt.Sprint(pr.Queued)
		}
		eta := "?"
		if pr.ETA > 0 {
			eta = pr.ETA.Round(time.Second).String()
		}
		state := ""
		if pr.Stopping {
			state = " stopping…"
		}
		fmt.Fprintf(p.w, "\r\033[K%s %d/%s  %.1f img/s  ETA %s  listed %d, written %d, unchanged %d, failed %d, skipped %d%s",
			p.label, pr.Done, total, pr.Rate, eta, r.Listed, r.Written, r.Unchanged, r.Failed, r.Skipped, state)
		if pr.Last {
			fmt.Fprintln(p.w)
		}
		return
	}
	if !pr.Last && time.Since(p.lastLog) < p.logEvery {
		return
	}
	p.lastLog = time.Now()
	slog.Info("progress", "run", p.label, "done", pr.Done, "queued", pr.Queued, "listing_done", pr.ListingDone,
		"rate", fmt.Sprintf("%.2f", pr.Rate), "eta", pr.ETA.Round(time.Second).String(),
		"listed", r.Listed, "written", r.Written, "unchanged", r.Unchanged, "failed", r.Failed, "skipped", r.Skipped, "stopping", pr.Stopping)
}
