package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector/s3source/s3test"
)

// TestMeasureBackfillSources is `make bench-sources` (backfill part): with
// IMGVEC_BENCH_SOURCES=1 it backfills the generated collection (200
// distinct images, a few copies and bad files) from a folder and, in the
// same run, from a bucket holding the same files, into fresh SQLite
// databases: images/s from S3 ÷ from the folder, with the tiny model
// (target ≥ 0.8×) and, when IMGVEC_BENCH_FULL_MODEL names the full VGG19,
// with it (target ≥ 0.95×). Medians of 3.
func TestMeasureBackfillSources(t *testing.T) {
	if os.Getenv("IMGVEC_BENCH_SOURCES") == "" {
		t.Skip("measurement: set IMGVEC_BENCH_SOURCES=1 (make bench-sources)")
	}
	needBinary(t)
	srv := s3test.Open(t)
	dir := generated(t)
	bucket := srv.Bucket(t)
	n := 0
	if err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		srv.Put(t, bucket, filepath.ToSlash(rel), b, nil)
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	models := [][2]string{{"tiny", e2eModel}}
	if full := os.Getenv("IMGVEC_BENCH_FULL_MODEL"); full != "" {
		models = append(models, [2]string{"VGG19 fc7", full})
	}
	tmp := t.TempDir()
	backfill := func(source, model string) time.Duration {
		ds := make([]time.Duration, 3)
		for i := range ds {
			db := filepath.Join(tmp, "b.db")
			for _, suffix := range []string{"", "-wal", "-shm"} {
				os.Remove(db + suffix)
			}
			start := time.Now()
			r := imgvecEnv(t, tmp, srv.Env(), "backfill", "-q", "--source", source, "--sink", "sqlite://"+db, "--model", model)
			ds[i] = time.Since(start)
			if r.code != exitItemFailures && r.code != exitOK {
				t.Fatalf("backfill %s: %s", source, r)
			}
		}
		slices.Sort(ds)
		return ds[1]
	}
	table := "\n| model | folder | S3 | S3 ÷ folder (images/s) |\n|---|---|---|---|"
	for _, m := range models {
		folder := backfill(dir, m[1])
		fromS3 := backfill(srv.Ref(bucket, ""), m[1])
		table += fmt.Sprintf("\n| %s | %s | %s | %.2f× |", m[0], folder.Round(time.Millisecond), fromS3.Round(time.Millisecond),
			folder.Seconds()/fromS3.Seconds())
	}
	t.Logf("%d files%s", n, table)
}
