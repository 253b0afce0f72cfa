package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/connectortest"
	"github.com/imgvec/imgvec/connector/folder"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/sinks"
)

type connectorReport struct {
	NoOp     *noopReport     `json:"noop_sync"`
	Backfill *backfillReport `json:"backfill,omitempty"`
}

type noopReport struct {
	Files        int       `json:"files"`
	Dim          int       `json:"dim"`        // of the stored vectors
	CreateSec    float64   `json:"create_s"`   // 0 when the tree was reused
	BackfillSec  float64   `json:"backfill_s"` // first backfill, fake 8-d embedder, sqlite
	DBBytes      int64     `json:"db_bytes"`
	WalkSec      []float64 `json:"walk_s"`           // filepath.WalkDir + os.Lstat, per rep
	SyncSec      []float64 `json:"sync_s"`           // sink Open + Syncer.Run + Close, per rep
	RunSec       []float64 `json:"run_s"`            // Syncer.Run alone, per rep
	WalkFilesPS  float64   `json:"walk_files_per_s"` // median
	SyncFilesPS  float64   `json:"sync_files_per_s"` // median, Open+Run+Close
	RunFilesPS   float64   `json:"run_files_per_s"`  // median, Run alone
	Ratio        float64   `json:"ratio"`            // sync time / walk time (medians)
	PeakRSSBytes int64     `json:"peak_rss_bytes"`
	// Breakdown times the parts of a no-op sync one by one, in one extra
	// pass after the timed ones (diagnostic; not part of the ratio).
	Breakdown *noopParts `json:"breakdown"`
}

type noopParts struct {
	OpenSec   float64 `json:"open_s"`   // sqlite Open (schema + dimension checks)
	StoredSec float64 `json:"stored_s"` // Sink.Stored: stream every stored item of the source
	ListSec   float64 `json:"list_s"`   // folder.Source.List alone
	CloseSec  float64 `json:"close_s"`
}

type backfillReport struct {
	Set       string    `json:"set"`
	Images    int       `json:"images"`
	Batch     int       `json:"batch"`
	Backfill  []float64 `json:"backfill_img_per_s"`   // per rep: sqlite backfill, Syncer.Run
	ModelOnly []float64 `json:"model_only_img_per_s"` // per rep: Infer on the same images' tensors
	BackMed   float64   `json:"backfill_median"`
	ModelMed  float64   `json:"model_only_median"`
	Ratio     float64   `json:"ratio"` // median of per-rep ratios
}

// cheapEmbedder is a fake connector.Embedder for filling the sink: no
// decoding, a constant-ish vector of any dimension (connectortest.Embedder
// hashes 4096-d vectors out of sha256, which is slow for 100k items).
type cheapEmbedder struct {
	model    schema.ModelIdentity
	prepared atomic.Int64
}

func newCheapEmbedder(dim int) *cheapEmbedder {
	return &cheapEmbedder{model: connectortest.Model("imgvec-bench", dim)}
}

func (c *cheapEmbedder) Identity() schema.ModelIdentity { return c.model }
func (c *cheapEmbedder) BatchSize() int                 { return 256 }
func (c *cheapEmbedder) Release(*schema.Prepared)       {}
func (c *cheapEmbedder) Prepare(key string, data []byte) (*schema.Prepared, error) {
	c.prepared.Add(1)
	return &schema.Prepared{Key: key, Width: len(data), Height: 1, Format: "fake"}, nil
}
func (c *cheapEmbedder) Infer(ctx context.Context, b []*schema.Prepared) ([]schema.VectorResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]schema.VectorResult, len(b))
	for i, p := range b {
		v := make([]float32, c.model.Dim)
		for j := range v {
			v[j] = float32((len(p.Key)+j)%17) / 17
		}
		out[i] = schema.VectorResult{Vector: v}
	}
	return out, nil
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

func openSQLite(ctx context.Context, path string, emb connector.Embedder) (sinks.Sink, error) {
	s, err := sinks.New("sqlite://"+path, sinks.Options{AutoMigrate: migrations.AutoMigrateFresh})
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
	emb := newCheapEmbedder(e.cfg.noopDim)
	rep.Dim = e.cfg.noopDim

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
	e.logf("backfilled %d files (fake %d-d embedder) in %.1fs", n, e.cfg.noopDim, rep.BackfillSec)

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

		emb := newCheapEmbedder(e.cfg.noopDim)
		t = time.Now()
		sink, err := openSQLite(ctx, db, emb)
		if err != nil {
			return nil, err
		}
		var runEl time.Duration
		var run schema.Run
		// Labelled so that a --cpuprofile can be focused on it (-tagfocus phase=noop-sync).
		pprof.Do(ctx, pprof.Labels("phase", "noop-sync"), func(ctx context.Context) {
			runEl, run, err = syncOnce(ctx, dir, sink, emb, connector.KindSync)
		})
		if cerr := sink.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		rep.SyncSec = append(rep.SyncSec, time.Since(t).Seconds())
		rep.RunSec = append(rep.RunSec, runEl.Seconds())
		if run.Unchanged != int64(n) || run.Written != 0 || emb.prepared.Load() != 0 {
			return nil, fmt.Errorf("no-op sync: unchanged %d, written %d, prepared %d of %d files", run.Unchanged, run.Written, emb.prepared.Load(), n)
		}
	}
	if rep.Breakdown, err = noopBreakdown(ctx, dir, db, e.cfg.noopDim, n); err != nil {
		return nil, err
	}
	rep.PeakRSSBytes = procStatus("VmHWM")
	walk, syn, rn := median(rep.WalkSec), median(rep.SyncSec), median(rep.RunSec)
	rep.WalkFilesPS, rep.SyncFilesPS, rep.RunFilesPS = float64(n)/walk, float64(n)/syn, float64(n)/rn
	var rs []float64
	for i := range rep.SyncSec {
		rs = append(rs, ratio(rep.SyncSec[i], rep.WalkSec[i]))
	}
	rep.Ratio = median(rs) // per-rep ratios: robust to load changing during the run
	e.logf("no-op sync: %.0f files/s (walk %.0f files/s), ratio %.2f", rep.SyncFilesPS, rep.WalkFilesPS, rep.Ratio)
	return rep, nil
}

func noopBreakdown(ctx context.Context, dir, db string, dim, n int) (*noopParts, error) {
	var b noopParts
	emb := newCheapEmbedder(dim)
	t := time.Now()
	sink, err := openSQLite(ctx, db, emb)
	if err != nil {
		return nil, err
	}
	b.OpenSec = time.Since(t).Seconds()
	src, err := folder.New(dir, folder.Options{})
	if err != nil {
		sink.Close()
		return nil, err
	}
	stored, listed := 0, 0
	t = time.Now()
	err = sink.Stored(ctx, src.Name(), func(connector.StoredItem) error { stored++; return nil })
	b.StoredSec = time.Since(t).Seconds()
	if err == nil {
		t = time.Now()
		err = src.List(ctx, func(connector.Entry) error { listed++; return nil })
		b.ListSec = time.Since(t).Seconds()
	}
	t = time.Now()
	if cerr := sink.Close(); err == nil {
		err = cerr
	}
	b.CloseSec = time.Since(t).Seconds()
	if err == nil && (stored != n || listed != n) {
		err = fmt.Errorf("breakdown: stored %d, listed %d, want %d", stored, listed, n)
	}
	return &b, err
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
	prepared, err := prepareAll(x, set)
	if err != nil {
		return nil, err
	}
	defer releaseAll(x, prepared)
	db := filepath.Join(e.work, "backfill.db")
	defer removeDB(db)
	for range e.cfg.reps {
		mo, err := inferAll(ctx, x, prepared)
		if err != nil {
			return nil, err
		}
		rep.ModelOnly = append(rep.ModelOnly, mo)

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
	var rs []float64
	for i := range rep.Backfill {
		rs = append(rs, ratio(rep.Backfill[i], rep.ModelOnly[i]))
	}
	rep.Ratio = median(rs)
	e.logf("backfill %s into sqlite: %.3f img/s, model-only %.3f img/s, ratio %.3f", set.Name, rep.BackMed, rep.ModelMed, rep.Ratio)
	return rep, nil
}

func runConnector(ctx context.Context, e *env) (*connectorReport, error) {
	rep := &connectorReport{}
	var err error
	if err = e.phase("no-op sync", func() (err error) { rep.NoOp, err = runNoop(ctx, e); return err }); err != nil {
		return nil, fmt.Errorf("no-op sync: %w", err)
	}
	if err = e.phase("backfill", func() (err error) { rep.Backfill, err = runBackfill(ctx, e); return err }); err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	return rep, nil
}
