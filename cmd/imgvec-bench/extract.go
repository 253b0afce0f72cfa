package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/image/draw"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/folder"
	"github.com/imgvec/imgvec/extract"
	"github.com/imgvec/imgvec/extract/imaging"
	"github.com/imgvec/imgvec/schema"
)

type extractReport struct {
	Model        modelInfo      `json:"model"`
	WarmupSec    float64        `json:"warmup_s"` // the first Infer (batch 1), not counted
	ModelOnly    []modelOnlyRow `json:"model_only"`
	PeakRSSBytes int64          `json:"peak_rss_bytes"` // VmHWM after the batch-32 run
	Sets         []*imageSet    `json:"sets"`
	Decode       []decodeRow    `json:"decode_preprocess"`
	EndToEnd     []e2eRow       `json:"end_to_end"`
	Python       *pythonReport  `json:"python,omitempty"`
}

type modelOnlyRow struct {
	Batch       int       `json:"batch"`
	Iters       int       `json:"iters"`
	SecPerBatch []float64 `json:"s_per_batch"`
	ImgPerSec   float64   `json:"img_per_s"` // batch / median(s_per_batch)
}

type decodeRow struct {
	Set       string    `json:"set"`
	Images    int       `json:"images"`
	Ours      []float64 `json:"ours_img_per_s"` // one value per repetition
	Base      []float64 `json:"baseline_img_per_s"`
	OursMed   float64   `json:"ours_median"`
	BaseMed   float64   `json:"baseline_median"`
	Ratio     float64   `json:"ratio"`
	OursAlloc float64   `json:"ours_alloc_mb_per_img"`
}

type e2eRow struct {
	Set       string    `json:"set"`
	Images    int       `json:"images"`
	Batch     int       `json:"batch"`
	ImgPerSec []float64 `json:"img_per_s"` // one value per repetition
	Median    float64   `json:"median"`
	ModelOnly float64   `json:"model_only_img_per_s"` // at Batch, random input
	Ratio     float64   `json:"ratio"`
	InferBusy float64   `json:"infer_busy"`  // share of the wall time spent in Infer (median rep)
	Batches   []int     `json:"batch_sizes"` // of the median rep
}

type pythonReport struct {
	Python   string        `json:"python"`
	Versions string        `json:"versions,omitempty"`
	Skipped  string        `json:"skipped,omitempty"`
	Sets     []pythonRow   `json:"sets,omitempty"`
}

type pythonRow struct {
	Set        string  `json:"set"`
	Images     int     `json:"images"`
	PyImgPerS  float64 `json:"python_img_per_s"`
	OurImgPerS float64 `json:"ours_img_per_s"` // end-to-end median
	Ratio      float64 `json:"ratio"`
	MaxAbsDiff float64 `json:"max_abs_diff"`
	MinCosine  float64 `json:"min_cosine"`
	Error      string  `json:"error,omitempty"`
}

// modelOnlyIters is how many timed Infer calls each batch size gets. The full
// VGG19 takes ~0.45 s per image on 2 cores, so big batches run once or twice.
func modelOnlyIters(full bool, batch int) int {
	if !full {
		return 5
	}
	switch {
	case batch <= 1:
		return 5
	case batch <= 4:
		return 3
	case batch <= 16:
		return 2
	}
	return 1
}

// randomBatch makes n Prepared values with N(0,1) tensors (a normalised
// image has roughly that distribution).
func randomBatch(n, per int) []*extract.Prepared {
	rng := rand.New(rand.NewPCG(42, 7))
	out := make([]*extract.Prepared, n)
	for i := range out {
		t := make([]float32, per)
		for j := range t {
			t[j] = float32(rng.NormFloat64())
		}
		out[i] = &extract.Prepared{Key: fmt.Sprintf("random-%d", i), Tensor: t}
	}
	return out
}

func runModelOnly(ctx context.Context, e *env, rep *extractReport) error {
	x := e.x
	maxB := 1
	for _, b := range e.cfg.batches {
		maxB = max(maxB, b)
	}
	in := randomBatch(maxB, 3*224*224)
	t0 := time.Now()
	if _, err := x.Infer(ctx, in[:1]); err != nil {
		return err
	}
	rep.WarmupSec = time.Since(t0).Seconds()
	for _, b := range e.cfg.batches {
		row := modelOnlyRow{Batch: b, Iters: modelOnlyIters(e.full, b)}
		for range row.Iters {
			t := time.Now()
			res, err := x.Infer(ctx, in[:b])
			if err != nil {
				return err
			}
			row.SecPerBatch = append(row.SecPerBatch, time.Since(t).Seconds())
			for _, r := range res {
				if r.Err != nil {
					return r.Err
				}
			}
		}
		row.ImgPerSec = float64(b) / median(row.SecPerBatch)
		rep.ModelOnly = append(rep.ModelOnly, row)
		e.logf("model-only batch %d: %.3f img/s (%d iters)", b, row.ImgPerSec, row.Iters)
		if b == 32 {
			rep.PeakRSSBytes = procStatus("VmHWM")
		}
	}
	if rep.PeakRSSBytes == 0 {
		rep.PeakRSSBytes = procStatus("VmHWM")
	}
	return nil
}

func (r *extractReport) modelOnlyAt(batch int) float64 {
	for _, m := range r.ModelOnly {
		if m.Batch == batch {
			return m.ImgPerSec
		}
	}
	return 0
}

// ---- decode + preprocess, one goroutine ----

func oursDecodePreprocess(data []byte, dst []float32) error {
	img, _, err := imaging.Decode("bench.jpg", data, imaging.DecodeOptions{})
	if err != nil {
		return err
	}
	err = imaging.Preprocess(img, imaging.ImageNet, dst)
	img.Release()
	return err
}

// baselineDecodePreprocess is what a straightforward Go implementation does:
// image/jpeg, x/image/draw BiLinear to the Resize(256) size, centre crop,
// normalise.
func baselineDecodePreprocess(data []byte, dst []float32) error {
	m, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return err
	}
	s := imaging.ImageNet
	nw, nh := s.ResizedSize(m.Bounds().Dx(), m.Bounds().Dy())
	r := image.NewRGBA(image.Rect(0, 0, nw, nh))
	draw.BiLinear.Scale(r, r.Bounds(), m, m.Bounds(), draw.Src, nil)
	left := int(math.RoundToEven(float64(nw-s.Crop) / 2))
	top := int(math.RoundToEven(float64(nh-s.Crop) / 2))
	n := s.Crop * s.Crop
	for y := range s.Crop {
		for x := range s.Crop {
			o := r.PixOffset(left+x, top+y)
			for c := range 3 {
				v := float32(r.Pix[o+c]) / 255
				dst[c*n+y*s.Crop+x] = (v - s.Mean[c]) / s.Std[c]
			}
		}
	}
	return nil
}

func runDecode(e *env, set *imageSet, n int) (decodeRow, error) {
	n = min(n, set.Count())
	data := make([][]byte, n)
	for i := range data {
		b, err := os.ReadFile(set.Files[i])
		if err != nil {
			return decodeRow{}, err
		}
		data[i] = b
	}
	dst := make([]float32, 3*224*224)
	row := decodeRow{Set: set.Name, Images: n}
	pass := func(fn func([]byte, []float32) error) (float64, error) {
		t := time.Now()
		for _, d := range data {
			if err := fn(d, dst); err != nil {
				return 0, err
			}
		}
		return float64(n) / time.Since(t).Seconds(), nil
	}
	// One untimed pass of each warms the pools and weight caches.
	if _, err := pass(oursDecodePreprocess); err != nil {
		return row, err
	}
	if err := baselineDecodePreprocess(data[0], dst); err != nil {
		return row, err
	}
	var ms0, ms1 runtimeMem
	for r := range e.cfg.reps {
		if r == 0 {
			ms0 = readMem()
		}
		o, err := pass(oursDecodePreprocess)
		if err != nil {
			return row, err
		}
		if r == 0 {
			ms1 = readMem()
		}
		b, err := pass(baselineDecodePreprocess)
		if err != nil {
			return row, err
		}
		row.Ours = append(row.Ours, o)
		row.Base = append(row.Base, b)
	}
	row.OursMed, row.BaseMed = median(row.Ours), median(row.Base)
	row.Ratio = ratio(row.OursMed, row.BaseMed)
	row.OursAlloc = float64(ms1.alloc-ms0.alloc) / float64(n) / (1 << 20)
	e.logf("decode+preprocess %s: ours %.1f img/s, baseline %.1f img/s", set.Name, row.OursMed, row.BaseMed)
	return row, nil
}

// ---- end to end through connector.Syncer ----

// timedEmbedder wraps an Embedder and records how long Infer ran and the
// batch sizes it got.
type timedEmbedder struct {
	connector.Embedder
	mu      sync.Mutex
	busy    time.Duration
	batches []int
}

func (t *timedEmbedder) Infer(ctx context.Context, b []*connector.Prepared) ([]connector.Result, error) {
	t0 := time.Now()
	res, err := t.Embedder.Infer(ctx, b)
	t.mu.Lock()
	t.busy += time.Since(t0)
	t.batches = append(t.batches, len(b))
	t.mu.Unlock()
	return res, err
}

// memSink is a connector.Sink that stores nothing durable: it counts writes
// and optionally keeps vectors by key (for the parity check).
type memSink struct {
	mu      sync.Mutex
	keep    bool
	vecs    map[string][]float32
	written int
	failed  int
}

func (s *memSink) Open(context.Context, schema.ModelIdentity) error { return nil }
func (s *memSink) Stored(context.Context, string, func(connector.StoredItem) error) error {
	return nil
}
func (s *memSink) VectorsBySHA256(context.Context, string, []string) (map[string][]float32, error) {
	return map[string][]float32{}, nil
}
func (s *memSink) Write(_ context.Context, b connector.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written += len(b.Upserts)
	s.failed += len(b.Failures)
	if s.keep {
		if s.vecs == nil {
			s.vecs = map[string][]float32{}
		}
		for _, r := range b.Upserts {
			s.vecs[r.Key] = r.Vector
		}
	}
	return nil
}
func (s *memSink) Delete(context.Context, string, []string) error { return nil }
func (s *memSink) Close() error                                  { return nil }

// syncOnce runs one backfill of dir into sink with emb and returns the wall
// time of Run and the run record.
func syncOnce(ctx context.Context, dir string, sink connector.Sink, emb connector.Embedder, kind string) (time.Duration, schema.Run, error) {
	src, err := folder.New(dir, folder.Options{})
	if err != nil {
		return 0, schema.Run{}, err
	}
	defer src.Close()
	s, err := connector.NewSyncer(connector.Options{Source: src, Sink: sink, Embedder: emb, Kind: kind})
	if err != nil {
		return 0, schema.Run{}, err
	}
	t0 := time.Now()
	run, err := s.Run(ctx)
	el := time.Since(t0)
	if err != nil {
		return el, run, fmt.Errorf("%s of %s: %w", kind, dir, err)
	}
	return el, run, nil
}

func runEndToEnd(ctx context.Context, e *env, set *imageSet, modelOnly float64) (e2eRow, map[string][]float32, error) {
	row := e2eRow{Set: set.Name, Images: set.Count(), Batch: e.x.BatchSize(), ModelOnly: modelOnly}
	var vecs map[string][]float32
	type repInfo struct {
		busy    float64
		batches []int
	}
	var infos []repInfo
	for r := range e.cfg.reps {
		sink := &memSink{keep: r == 0}
		te := &timedEmbedder{Embedder: e.x}
		el, run, err := syncOnce(ctx, set.Dir, sink, te, connector.KindBackfill)
		if err != nil {
			return row, nil, err
		}
		if run.Extracted != int64(set.Count()) || sink.written != set.Count() {
			return row, nil, fmt.Errorf("end-to-end %s: extracted %d, wrote %d of %d images (failed %d)", set.Name, run.Extracted, sink.written, set.Count(), run.Failed)
		}
		if r == 0 {
			vecs = sink.vecs
		}
		row.ImgPerSec = append(row.ImgPerSec, float64(set.Count())/el.Seconds())
		infos = append(infos, repInfo{busy: te.busy.Seconds() / el.Seconds(), batches: te.batches})
	}
	row.Median = median(row.ImgPerSec)
	row.Ratio = ratio(row.Median, modelOnly)
	// Report the busy share and batch sizes of the rep closest to the median.
	best := 0
	for i, v := range row.ImgPerSec {
		if math.Abs(v-row.Median) < math.Abs(row.ImgPerSec[best]-row.Median) {
			best = i
		}
	}
	row.InferBusy, row.Batches = infos[best].busy, infos[best].batches
	e.logf("end-to-end %s: %.3f img/s (model-only@%d %.3f, ratio %.3f)", set.Name, row.Median, row.Batch, modelOnly, row.Ratio)
	return row, vecs, nil
}

// ---- Python baseline ----

func runPython(ctx context.Context, e *env, sets []*imageSet, ours map[string]map[string][]float32, e2e map[string]float64) *pythonReport {
	pr := &pythonReport{Python: e.cfg.python}
	if e.cfg.noPython {
		pr.Skipped = "--no-python"
		return pr
	}
	script := filepath.Join(e.root, "testdata/reference/baseline_recipe.py")
	if _, err := os.Stat(e.cfg.python); err != nil {
		pr.Skipped = fmt.Sprintf("no python at %s (run .ci/lib/install-python.sh)", e.cfg.python)
		return pr
	}
	if out, err := exec.CommandContext(ctx, e.cfg.python, "-c",
		"import onnxruntime, PIL, numpy; print('onnxruntime', onnxruntime.__version__, 'pillow', PIL.__version__, 'numpy', numpy.__version__)").Output(); err == nil {
		pr.Versions = strings.TrimSpace(string(out))
	} else {
		pr.Skipped = fmt.Sprintf("python env unusable: %v", err)
		return pr
	}
	cut := filepath.Join(e.work, "cut-fc7.onnx")
	if err := os.WriteFile(cut, e.model.Bytes, 0o644); err != nil {
		pr.Skipped = err.Error()
		return pr
	}
	defer os.Remove(cut)
	for _, set := range sets {
		row := pythonRow{Set: set.Name, Images: set.Count(), OurImgPerS: e2e[set.Name]}
		npy := filepath.Join(e.work, "python-"+set.Name+".npy")
		cmd := exec.CommandContext(ctx, e.cfg.python, append([]string{script, cut, npy}, set.Files...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			row.Error = fmt.Sprintf("%v: %s", err, lastLine(stderr.String()))
			pr.Sets = append(pr.Sets, row)
			continue
		}
		var res struct {
			Images    int     `json:"images"`
			ImgPerSec float64 `json:"images_per_s"`
		}
		if err := json.Unmarshal([]byte(lastLine(string(out))), &res); err != nil {
			row.Error = fmt.Sprintf("parse %q: %v", lastLine(string(out)), err)
			pr.Sets = append(pr.Sets, row)
			continue
		}
		row.PyImgPerS = res.ImgPerSec
		row.Ratio = ratio(row.OurImgPerS, row.PyImgPerS)
		py, err := readNpy(npy)
		os.Remove(npy)
		if err == nil {
			var mine [][]float32
			for _, f := range set.Files {
				v, ok := ours[set.Name][filepath.Base(f)]
				if !ok {
					err = fmt.Errorf("no vector of ours for %s", f)
					break
				}
				mine = append(mine, v)
			}
			if err == nil {
				row.MaxAbsDiff, row.MinCosine, err = compareVectors(mine, py)
			}
		}
		if err != nil {
			row.Error = err.Error()
		}
		e.logf("python %s: %.3f img/s (ours %.3f), max|diff| %.2g, min cos %.7f", set.Name, row.PyImgPerS, row.OurImgPerS, row.MaxAbsDiff, row.MinCosine)
		pr.Sets = append(pr.Sets, row)
	}
	return pr
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// ---- the section ----

func runExtract(ctx context.Context, e *env) (*extractReport, error) {
	if err := e.loadModel(ctx); err != nil {
		return nil, err
	}
	rep := &extractReport{Model: e.info}
	if err := runModelOnly(ctx, e, rep); err != nil {
		return nil, fmt.Errorf("model-only: %w", err)
	}
	sets, err := e.imageSets()
	if err != nil {
		return nil, err
	}
	rep.Sets = sets
	for _, set := range sets {
		n := set.Count()
		if set.Width*set.Height > 4_000_000 {
			n = min(n, e.cfg.decodeLarge)
		}
		row, err := runDecode(e, set, n)
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", set.Name, err)
		}
		rep.Decode = append(rep.Decode, row)
	}
	ours := map[string]map[string][]float32{}
	e2e := map[string]float64{}
	at := rep.modelOnlyAt(e.x.BatchSize())
	for _, set := range sets {
		row, vecs, err := runEndToEnd(ctx, e, set, at)
		if err != nil {
			return nil, err
		}
		rep.EndToEnd = append(rep.EndToEnd, row)
		ours[set.Name] = vecs
		e2e[set.Name] = row.Median
	}
	// Python: the 12 MP set first (the target), then 640x480.
	pySets := []*imageSet{sets[1], sets[0]}
	rep.Python = runPython(ctx, e, pySets, ours, e2e)
	return rep, nil
}
