package main

// Sharded runs end to end (README "Shards"): four workers started together
// as the pods of a Kubernetes Indexed Job would be (JOB_COMPLETION_INDEX,
// --shard $(JOB_COMPLETION_INDEX)/4), on SQLite and PostgreSQL. One is
// killed with SIGKILL mid-run and its shard rerun alone; then every item
// was extracted exactly once, a shard rerun with another N is refused, and
// a sync deletes only within its own slice.

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

const (
	shardItems = 2000
	shardCount = 4
	shardJob   = "shards"
)

// writeShardImages writes n distinct 16x16 PNGs (cheap to make and embed).
func writeShardImages(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, 16, 16))
		for y := range 16 {
			for x := range 16 {
				img.Set(x, y, color.RGBA{uint8(i), uint8(i>>8) * 37, uint8(x*16 + y), 255})
			}
		}
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		if err := writeFile(filepath.Join(dir, fmt.Sprintf("img%04d.png", i)), b.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
}

// kubeExpand replaces $(VAR) in s with env[VAR], as Kubernetes expands a
// container's args.
func kubeExpand(s string, env map[string]string) string {
	for k, v := range env {
		s = strings.ReplaceAll(s, "$("+k+")", v)
	}
	return s
}

// shardSink is one sink under test: its URI and how to read what the
// test needs without the binary.
type shardSink struct {
	uri string
	// shardWritten is the written count of the newest run of shard s
	// (-1 while it has none).
	shardWritten func(s string) int64
	// vectors reads the stored vectors of src's rows by key.
	vectors func(t *testing.T, src, modelID string) map[string][]float32
}

func TestE2EShardsSQLite(t *testing.T) {
	needBinary(t)
	db := filepath.Join(t.TempDir(), "shards.db")
	testShards(t, shardSink{
		uri: "sqlite://" + db,
		shardWritten: func(s string) int64 {
			d := openDB(t, db)
			defer d.Close()
			var n int64 = -1
			d.QueryRow(`SELECT written FROM runs WHERE shard = ? ORDER BY started_at DESC LIMIT 1`, s).Scan(&n)
			return n
		},
		vectors: func(t *testing.T, src, modelID string) map[string][]float32 {
			stored := map[string][]float32{}
			for _, it := range readDB(t, db).Items {
				if it.Source == "file://"+filepath.ToSlash(src) && it.ModelID == modelID {
					stored[it.Key] = it.Vector
				}
			}
			return stored
		},
	})
}

func TestE2EShardsPostgres(t *testing.T) {
	needBinary(t)
	uri := pgSink(t)
	testShards(t, shardSink{
		uri: uri,
		shardWritten: func(s string) int64 {
			var n int64 = -1
			pgQuery(t, uri, func(c *pgx.Conn, sch string) {
				c.QueryRow(context.Background(), `SELECT written FROM `+pgx.Identifier{sch, "images_runs"}.Sanitize()+
					` WHERE shard = $1 ORDER BY started_at DESC LIMIT 1`, s).Scan(&n)
			})
			return n
		},
		vectors: func(t *testing.T, src, modelID string) map[string][]float32 {
			return pgStoredVectors(t, uri, src, modelID)
		},
	})
}

func testShards(t *testing.T, sink shardSink) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	writeShardImages(t, src, shardItems)
	source := "file://" + filepath.ToSlash(src)
	args := func(kind, shard string) []string {
		return []string{kind, "-q", "--source", src, "--sink", sink.uri, "--model", e2eModel, "--job", shardJob,
			"--shard", shard, "--threads", "1", "--workers", "1", "--batch", "8"}
	}

	// Four workers at once, each told its index as Kubernetes tells a pod.
	workers := make([]*bgRun, shardCount)
	for i := range workers {
		env := map[string]string{"JOB_COMPLETION_INDEX": fmt.Sprint(i)}
		shard := kubeExpand(fmt.Sprintf("$(JOB_COMPLETION_INDEX)/%d", shardCount), env)
		workers[i] = startBGEnv(t, tmp, []string{"JOB_COMPLETION_INDEX=" + env["JOB_COMPLETION_INDEX"]}, args("backfill", shard)...)
	}
	// Kill worker 2 once it has committed some of its slice.
	const victim = "2/4"
	deadline := time.Now().Add(60 * time.Second)
	for sink.shardWritten(victim) < 16 {
		if time.Now().After(deadline) {
			t.Fatalf("shard %s committed nothing in 60s", victim)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if workers[2].kill(syscall.SIGKILL) {
		t.Fatalf("shard %s ended before its SIGKILL: %s", victim, workers[2].summary())
	}
	for i, w := range workers {
		w.wait(t, 2*time.Minute)
		if want := map[bool]int{true: -1, false: exitOK}[i == 2]; w.code() != want {
			t.Errorf("worker %d: %s; want exit %d", i, w.summary(), want)
		}
	}

	// Another shard count is refused while shard 2/4 is unfinished, and
	// writes no run row.
	r := mustCode(t, exitFatal, tmp, args("backfill", "2/8")...)
	if !strings.Contains(r.stderr, "--reshard") || !strings.Contains(r.stderr, "2/4") {
		t.Errorf("a rerun with another shard count: want a refusal naming shard 2/4 and --reshard\n%s", r)
	}

	// Shard 2/4 alone, rerun: at first the killed worker's lease may still
	// be held (PostgreSQL: until its 30 s TTL; a SQLite lock dies with its
	// process), as a Kubernetes pod retry would find it.
	var rerun runLine
	for {
		res := imgvec(t, tmp, args("backfill", victim)...)
		if res.code == exitOK {
			rerun = parseRunLine(t, res)
			break
		}
		if !strings.Contains(res.stderr, "running elsewhere") || time.Now().After(deadline.Add(time.Minute)) {
			t.Fatalf("rerun of shard %s: %s", victim, res)
		}
		time.Sleep(time.Second)
	}
	if rerun.Shard != victim || rerun.Extracted == 0 || rerun.Unchanged == 0 || rerun.Extracted+rerun.Unchanged != rerun.Listed {
		t.Errorf("rerun of shard %s: %+v; want the killed worker's items unchanged and the rest extracted", victim, rerun)
	}

	// Exactly once: the runs' extracted counts (the killed run's last
	// progress row holds what it committed) add up to the collection, and
	// the latest run of each shard lists its slice: together, everything.
	st := status(t, tmp, sink.uri)
	var extracted, listed int64
	latest := map[string]bool{}
	outcomes := map[string]int{}
	for _, run := range st.Runs { // newest first
		if run.Job != shardJob {
			t.Errorf("run of job %q", run.Job)
		}
		outcomes[run.Shard+" "+run.Outcome]++
		if run.Kind == "backfill" {
			extracted += run.Extracted
		}
		if run.Kind == "backfill" && !latest[run.Shard] {
			latest[run.Shard] = true
			listed += run.Listed
		}
	}
	if extracted != shardItems {
		t.Errorf("the runs extracted %d items in all, want %d (each once); runs %v", extracted, shardItems, outcomes)
	}
	if listed != shardItems || len(latest) != shardCount {
		t.Errorf("the latest run of each of %d shards listed %d in all, want %d", len(latest), listed, shardItems)
	}
	if outcomes[victim+" abandoned"] != 1 || outcomes[victim+" ok"] != 1 {
		t.Errorf("runs by shard and outcome %v: want the killed run of %s abandoned and its rerun ok", outcomes, victim)
	}

	// Deletes are confined to a shard's slice: remove one file of each
	// slice; shard 0's sync deletes its own only, then each other shard's
	// sync its own.
	owner := func(key string) int {
		for i := range shardCount {
			if (connector.Shard{I: i, N: shardCount}).Contains(schema.ItemID(source, key)) {
				return i
			}
		}
		t.Fatalf("%s is in no shard", key)
		return -1
	}
	removed := map[int]string{}
	for k := 0; len(removed) < shardCount; k++ {
		key := fmt.Sprintf("img%04d.png", k)
		if o := owner(key); removed[o] == "" {
			removed[o] = key
			if err := os.Remove(filepath.Join(src, key)); err != nil {
				t.Fatal(err)
			}
		}
	}
	r0 := parseRunLine(t, mustCode(t, exitOK, tmp, args("sync", "0/4")...))
	if r0.Shard != "0/4" || r0.Deleted != 1 || r0.Extracted != 0 {
		t.Errorf("sync of shard 0/4 after removing one file per shard: %+v; want 1 deleted, nothing extracted", r0)
	}
	if st := status(t, tmp, sink.uri); len(st.Models) != 1 || st.Models[0].Rows != shardItems-1 {
		t.Errorf("rows after shard 0's sync: %+v; want %d (the other shards' removed files kept)", st.Models, shardItems-1)
	}
	for i := 1; i < shardCount; i++ {
		r := parseRunLine(t, mustCode(t, exitOK, tmp, args("sync", fmt.Sprintf("%d/%d", i, shardCount))...))
		if r.Deleted != 1 {
			t.Errorf("sync of shard %d/%d: %+v; want 1 deleted (its own removed file)", i, shardCount, r)
		}
	}
	st = status(t, tmp, sink.uri)
	if len(st.Models) != 1 || st.Models[0].Rows != shardItems-shardCount {
		t.Fatalf("rows after the syncs: %+v; want %d", st.Models, shardItems-shardCount)
	}
	stored := sink.vectors(t, src, st.Models[0].ModelID)
	if len(stored) != shardItems-shardCount {
		t.Errorf("%d stored vectors of the source, want %d", len(stored), shardItems-shardCount)
	}
	checkVectorOracle(t, src, stored) // every stored vector against a fresh embed
}
