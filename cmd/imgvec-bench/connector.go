package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/connectortest"
	"github.com/imgvec/imgvec/extract"
	"github.com/imgvec/imgvec/sinks/sqlite"
)

type connectorReport struct {
	NoOp     *noopReport     `json:"noop_sync"`
	Backfill *backfillReport `json:"backfill,omitempty"`
}

type noopReport struct {
	Files        int       `json:"files"`
	CreateSec    float64   `json:"create_s"`          // 0 when the tree was reused
	BackfillSec  float64   `json:"backfill_s"`        // first backfill, fake 8-d embedder, sqlite
	DBBytes      int64     `json:"db_bytes"`
	WalkSec      []float64 `json:"walk_s"`            // filepath.WalkDir + os.Lstat, per rep
	SyncSec      []float64 `json:"sync_s"`            // sink Open + Syncer.Run + Close, per rep
	RunSec       []float64 `json:"run_s"`             // Syncer.Run alone, per rep
	WalkFilesPS  float64   `json:"walk_files_per_s"`  // median
	SyncFilesPS  float64   `json:"sync_files_per_s"`  // median, Open+Run+Close
	RunFilesPS   float64   `json:"run_files_per_s"`   // median, Run alone
	Ratio        float64   `json:"ratio"`             // sync time / walk time (medians)
	PeakRSSBytes int64     `json:"peak_rss_bytes"`
}

type backfillReport struct {
	Set       string    `json:"set"`
	Images    int       `json:"images"`
	Batch     int       `json:"batch"`
	Backfill  []float64 `json:"backfill_img_per_s"`   // per rep: sqlite backfill, Syncer.Run
	ModelOnly []float64 `json:"model_only_img_per_s"` // per rep: Infer on the same images' tensors
	BackMed   float64   `json:"backfill_median"`
	ModelMed  float64   `json:"model_only_median"`
	Ratio     float64   `json:"ratio"`
}

// makeTree writes n tiny files (unique contents, not images) in a two-level
// tree: DIR/aaa/bb/fNNNNNNN.jpg, 100 files per leaf, 10 leaves per top-level
// directory. A marker file next to DIR lets --workdir reuse it.
func makeTree(dir string, n int) (created bool, err error) {
	marker := dir + ".complete"
	if _, err := os.Stat(marker); err == nil {
		return false, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return false, err
	}
	for i := range n {
		leaf := filepath.Join(dir, fmt.Sprintf("%03d", i/1000), fmt.Sprintf("%02d", (i/100)%10))
		if i%100 == 0 {
			if err := os.MkdirAll(leaf, 0o755); err != nil {
				return false, err
			}
		}
		p := filepath.Join(leaf, fmt.Sprintf("f%07d.jpg", i))
		if err := os.WriteFile(p, fmt.Appendf(nil, "imgvec-bench tiny file %d\n", i), 0o644); err != nil {
			return false, err
		}
	}
	return true, os.WriteFile(marker, nil, 0o644)
}

// walkTree is the baseline: a bare filepath.WalkDir with an Lstat per file.
func walkTree(dir string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if _, err := os.Lstat(p); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}

func openSQLite(ctx context.Context, path string, emb connector.Embedder) (*sqlite.Sink, error) {
	s, err := sqlite.New("sqlite://"+path, sqlite.WithAutoMigrate(sqlite.AutoMigrateFresh))
	if err != nil {
		return nil, err
	}
	if err := s.Open(ctx, emb.Identity()); err != nil {
		return nil, err
	}
	return s, nil
}

func removeDB(path string) {
	for _, suf := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suf)
	}
}

func runNoop(ctx context.Context, e *env) (*noopReport, error) {
	n := e.cfg.files
	rep := &noopReport{Files: n}
	dir := filepath.Join(e.work, fmt.Sprintf("tree-%d", n))
	t0 := time.Now()
	created, err := makeTree(dir, n)
	if err != nil {
		return nil, fmt.Errorf("create tree: %w", err)
	}
	if created {
		rep.CreateSec = time.Since(t0).Seconds()
		e.logf("created %d files in %.1fs", n, rep.CreateSec)
	}
	db := filepath.Join(e.work, fmt.Sprintf("noop-%d.db", n))
	removeDB(db)
	defer removeDB(db)
	emb := connectortest.NewEmbedder(connectortest.Model("imgvec-bench", 8), 512)

	sink, err := openSQLite(ctx, db, emb)
	if err != nil {
		return nil, err
	}
	el, run, err := syncOnce(ctx, dir, sink, emb, connector.KindBackfill)
	sink.Close()
	if err != nil {
		return nil, err
	}
	if run.Written != int64(n) {
		return nil, fmt.Errorf("backfill of the tree wrote %d of %d files (failed %d)", run.Written, n, run.Failed)
	}
	rep.BackfillSec = el.Seconds()
	if st, err := os.Stat(db); err == nil {
		rep.DBBytes = st.Size()
	}
	e.logf("backfilled %d files (fake embedder) in %.1fs", n, rep.BackfillSec)

	if _, err := walkTree(dir); err != nil { // warm the dentry cache equally for both
		return nil, err
	}
	for range e.cfg.reps {
		t := time.Now()
		got, err := walkTree(dir)
		if err != nil {
			return nil, err
		}
		rep.WalkSec = append(rep.WalkSec, time.Since(t).Seconds())
		if got != n {
			return nil, fmt.Errorf("walk found %d files, want %d", got, n)
		}

		emb := connectortest.NewEmbedder(connectortest.Model("imgvec-bench", 8), 512)
		t = time.Now()
		sink, err := openSQLite(ctx, db, emb)
		if err != nil {
			return nil, err
		}
		runEl, run, err := syncOnce(ctx, dir, sink, emb, connector.KindSync)
		if cerr := sink.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		rep.SyncSec = append(rep.SyncSec, time.Since(t).Seconds())
		rep.RunSec = append(rep.RunSec, runEl.Seconds())
		if run.Unchanged != int64(n) || run.Written != 0 || emb.Stats().Prepared != 0 {
			return nil, fmt.Errorf("no-op sync: unchanged %d, written %d, prepared %d of %d files", run.Unchanged, run.Written, emb.Stats().Prepared, n)
		}
	}
	rep.PeakRSSBytes = procStatus("VmHWM")
	walk, syn, rn := median(rep.WalkSec), median(rep.SyncSec), median(rep.RunSec)
	rep.WalkFilesPS, rep.SyncFilesPS, rep.RunFilesPS = float64(n)/walk, float64(n)/syn, float64(n)/rn
	rep.Ratio = ratio(syn, walk)
	e.logf("no-op sync: %.0f files/s (walk %.0f files/s), ratio %.2f", rep.SyncFilesPS, rep.WalkFilesPS, rep.Ratio)
	return rep, nil
}

// runBackfill times a backfill of the 640x480 set into a fresh SQLite file
// against Infer alone on the same images' tensors, in batches of the same
// size, alternating per repetition.
func runBackfill(ctx context.Context, e *env) (*backfillReport, error) {
	if err := e.loadModel(ctx); err != nil {
		return nil, err
	}
	sets, err := e.imageSets()
	if err != nil {
		return nil, err
	}
	set := sets[0]
	x := e.x
	bs := x.BatchSize()
	rep := &backfillReport{Set: set.Name, Images: set.Count(), Batch: bs}
	prepared := make([]*extract.Prepared, 0, set.Count())
	for _, f := range set.Files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		p, err := x.Prepare(filepath.Base(f), b)
		if err != nil {
			return nil, err
		}
		prepared = append(prepared, p)
	}
	defer func() {
		for _, p := range prepared {
			x.Release(p)
		}
	}()
	db := filepath.Join(e.work, "backfill.db")
	defer removeDB(db)
	for range e.cfg.reps {
		t := time.Now()
		for i := 0; i < len(prepared); i += bs {
			if _, err := x.Infer(ctx, prepared[i:min(i+bs, len(prepared))]); err != nil {
				return nil, err
			}
		}
		rep.ModelOnly = append(rep.ModelOnly, float64(len(prepared))/time.Since(t).Seconds())

		removeDB(db)
		sink, err := openSQLite(ctx, db, x)
		if err != nil {
			return nil, err
		}
		el, run, err := syncOnce(ctx, set.Dir, sink, x, connector.KindBackfill)
		if cerr := sink.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		if run.Extracted != int64(set.Count()) {
			return nil, fmt.Errorf("backfill: extracted %d of %d (failed %d)", run.Extracted, set.Count(), run.Failed)
		}
		rep.Backfill = append(rep.Backfill, float64(set.Count())/el.Seconds())
	}
	rep.BackMed, rep.ModelMed = median(rep.Backfill), median(rep.ModelOnly)
	rep.Ratio = ratio(rep.BackMed, rep.ModelMed)
	e.logf("backfill %s into sqlite: %.3f img/s, model-only %.3f img/s, ratio %.3f", set.Name, rep.BackMed, rep.ModelMed, rep.Ratio)
	return rep, nil
}

func runConnector(ctx context.Context, e *env) (*connectorReport, error) {
	rep := &connectorReport{}
	var err error
	if rep.NoOp, err = runNoop(ctx, e); err != nil {
		return nil, fmt.Errorf("no-op sync: %w", err)
	}
	if rep.Backfill, err = runBackfill(ctx, e); err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	return rep, nil
}
