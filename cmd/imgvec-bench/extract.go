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
	"runtime"
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
	Model       modelInfo      `json:"model"`
	WarmupSec   float64        `json:"warmup_s"` // the first Infer, not counted
	WarmupBatch int            `json:"warmup_batch"`
	ModelOnly   []modelOnlyRow `json:"model_only"`
	// Memory (Linux /proc/self/status): after loading, and after the
	// batch-32 run. With PeakReset the peak was reset after loading, so
	// PeakRSSBytes is the peak while inferring; otherwise it includes loading.
	LoadPeakRSSBytes int64         `json:"load_peak_rss_bytes"`
	LoadRSSBytes     int64         `json:"load_rss_bytes"`
	PeakReset        bool          `json:"peak_reset"`
	PeakRSSBytes     int64         `json:"peak_rss_bytes"` // VmHWM after the batch-32 run
	RSSBytes         int64         `json:"rss_bytes"`      // VmRSS after the batch-32 run
	Sets             []*imageSet   `json:"sets"`
	Decode           []decodeRow   `json:"decode_preprocess"`
	EndToEnd         []e2eRow      `json:"end_to_end"`
	Python           *pythonReport `json:"python,omitempty"`
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
	// Extractor.Prepare + Release, what the pipeline runs per image.
	Prepare      []float64 `json:"prepare_img_per_s"`
	PrepareMed   float64   `json:"prepare_median"`
	PrepareAlloc float64   `json:"prepare_alloc_mb_per_img"`
	// The same with fast JPEG decoding (Spec.FastJPEG, --decode fast), and
	// that mode's DCT-scaled decode alone (imaging.Decode with the fast
	// Spec, then Release): the floor that entropy decoding sets for it.
	PrepareFast    []float64 `json:"prepare_fast_img_per_s"`
	FastDecode     []float64 `json:"fast_decode_only_img_per_s"`
	PrepareFastMed float64   `json:"prepare_fast_median"`
	FastDecodeMed  float64   `json:"fast_decode_only_median"`
	FastRatio      float64   `json:"fast_ratio"` // fast ÷ exact Prepare img/s, median of per-rep ratios
	// DecodeShare is the share of fast Prepare's time spent in the scaled
	// decode: PrepareFastMed ÷ FastDecodeMed.
	DecodeShare float64 `json:"fast_decode_share"`
}

// set12MP names the 4000x3000 set, the one issue 13's large-image targets
// are about; fastPrepareWant is its target for fast ÷ exact Prepare.
const (
	set12MP         = "4000x3000"
	fastPrepareWant = 5
)

type e2eRow struct {
	Set    string `json:"set"`
	Decode string `json:"decode"` // "exact" or "fast" (the extractor that ran)
	Images int    `json:"images"`
	Batch  int    `json:"batch"`
	// Per repetition, in this order: Infer alone on the set's tensors in
	// batches of Batch, the end-to-end sync, then (python section) the
	// Python recipe on the same files.
	ModelOnly []float64 `json:"model_only_img_per_s"`
	ImgPerSec []float64 `json:"img_per_s"`
	Ratios    []float64 `json:"ratios"` // end-to-end ÷ model-only, per rep
	Median    float64   `json:"median"`
	ModelMed  float64   `json:"model_only_median"`
	Ratio     float64   `json:"ratio"` // median of Ratios
	// Bound is the best ratio possible when decoding shares the CPUs with
	// a model that already uses all of them: 1 / (1 + model-only img/s ÷
	// (Prepare img/s per core, of the same decode mode, × cores)).
	Bound     float64 `json:"cpu_bound_ratio"`
	InferBusy float64 `json:"infer_busy"`  // share of the wall time spent in Infer (median rep)
	Batches   []int   `json:"batch_sizes"` // of the median rep
}

// label names the row in the report: the set, and "fast" for fast decoding.
func (r e2eRow) label() string {
	if r.Decode == "fast" {
		return r.Set + " fast"
	}
	return r.Set
}

// want is the row's end-to-end ÷ model-only target (issue 13): exact
// decoding of 12 MP JPEGs costs more CPU than the model leaves free.
func (r e2eRow) want() float64 {
	if r.Set == set12MP && r.Decode == "exact" {
		return 0.85
	}
	return 0.95
}

type pythonReport struct {
	Python   string      `json:"python"`
	Versions string      `json:"versions,omitempty"`
	Skipped  string      `json:"skipped,omitempty"`
	Sets     []pythonRow `json:"sets,omitempty"`
}

type pythonRow struct {
	Set        string    `json:"set"`
	Images     int       `json:"images"`
	PyImgPerS  []float64 `json:"python_img_per_s"` // per rep
	Ratios     []float64 `json:"ratios"`           // ours end-to-end ÷ python, per rep
	PyMedian   float64   `json:"python_median"`
	OurMedian  float64   `json:"ours_median"`
	Ratio      float64   `json:"ratio"` // median of Ratios
	MaxAbsDiff float64   `json:"max_abs_diff"`
	MinCosine  float64   `json:"min_cosine"`
	Error      string    `json:"error,omitempty"`
}

// Model-only timing: every batch size runs at least minIters timed Infer
// calls and keeps going until iterBudget has passed (at most maxIters), but
// stops after one call that took longer than tooLong (not affordable).
const (
	minIters   = 3
	maxIters   = 20
	iterBudget = 4 * time.Second
	tooLong    = 30 * time.Second
)

// randomBatch makes n Prepared values with N(0,1) tensors (a normalised
// image has roughly that distribution).
func randomBatch(n, per int) []*schema.Prepared {
	rng := rand.New(rand.NewPCG(42, 7))
	out := make([]*schema.Prepared, n)
	for i := range out {
		t := make([]float32, per)
		for j := range t {
			t[j] = float32(rng.NormFloat64())
		}
		out[i] = &schema.Prepared{Key: fmt.Sprintf("random-%d", i), Tensor: t}
	}
	return out
}

func runModelOnly(ctx context.Context, e *env, rep *extractReport) error {
	x := e.x
	// The loading peak (file bytes, the cut copy, ONNX Runtime's copy) is
	// kept apart from the inference peak: VmHWM is read, then reset to the
	// current RSS (Linux: clear_refs 5) where the kernel allows it.
	rep.LoadPeakRSSBytes = procStatus("VmHWM")
	rep.LoadRSSBytes = procStatus("VmRSS")
	rep.PeakReset = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	maxB := 1
	for _, b := range e.cfg.batches {
		maxB = max(maxB, b)
	}
	in := randomBatch(maxB, 3*224*224)
	// Warm up at the largest batch: ONNX Runtime's first run at a new size
	// grows its arena and faults in the pages, which would otherwise land
	// in the first timed iteration of each batch size.
	t0 := time.Now()
	if _, err := x.Infer(ctx, in[:maxB]); err != nil {
		return err
	}
	rep.WarmupSec = time.Since(t0).Seconds()
	rep.WarmupBatch = maxB
	budget := iterBudget
	if !e.full {
		budget = iterBudget / 20
	}
	for _, b := range e.cfg.batches {
		row := modelOnlyRow{Batch: b}
		start := time.Now()
		for i := 0; i < maxIters; i++ {
			el := time.Since(start)
			if i >= minIters && el >= budget || i >= 1 && el >= tooLong {
				break
			}
			row.Iters++
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
			rep.RSSBytes = procStatus("VmRSS")
		}
	}
	if rep.PeakRSSBytes == 0 {
		rep.PeakRSSBytes = procStatus("VmHWM")
		rep.RSSBytes = procStatus("VmRSS")
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
	// What the pipeline's preparers call: Extractor.Prepare (decode +
	// preprocess into a pooled tensor) and Release of the tensor.
	prepare := func(d []byte, _ []float32) error {
		p, err := e.x.Prepare("bench.jpg", d)
		if err != nil {
			return err
		}
		e.x.Release(p)
		return nil
	}
	if _, err := pass(prepare); err != nil {
		return row, err
	}
	fx, fastSpec, err := e.fastExtractor()
	if err != nil {
		return row, err
	}
	prepareFast := func(d []byte, _ []float32) error {
		p, err := fx.Prepare("bench.jpg", d)
		if err != nil {
			return err
		}
		fx.Release(p)
		return nil
	}
	// The DCT-scaled decode that prepareFast starts with, alone.
	decodeFast := func(d []byte, _ []float32) error {
		img, _, err := imaging.Decode("bench.jpg", d, imaging.DecodeOptions{Spec: fastSpec})
		if err != nil {
			return err
		}
		img.Release()
		return nil
	}
	if _, err := pass(prepareFast); err != nil {
		return row, err
	}
	var ms0, ms1, ms2, ms3 runtimeMem
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
		if r == 0 {
			ms2 = readMem()
		}
		pr, err := pass(prepare)
		if err != nil {
			return row, err
		}
		if r == 0 {
			ms3 = readMem()
		}
		fp, err := pass(prepareFast)
		if err != nil {
			return row, err
		}
		fd, err := pass(decodeFast)
		if err != nil {
			return row, err
		}
		row.Ours = append(row.Ours, o)
		row.Base = append(row.Base, b)
		row.Prepare = append(row.Prepare, pr)
		row.PrepareFast = append(row.PrepareFast, fp)
		row.FastDecode = append(row.FastDecode, fd)
	}
	row.PrepareMed = median(row.Prepare)
	row.PrepareFastMed, row.FastDecodeMed = median(row.PrepareFast), median(row.FastDecode)
	row.DecodeShare = ratio(row.PrepareFastMed, row.FastDecodeMed)
	var frs []float64
	for i := range row.Prepare {
		frs = append(frs, ratio(row.PrepareFast[i], row.Prepare[i]))
	}
	row.FastRatio = median(frs)
	row.PrepareAlloc = float64(ms3.alloc-ms2.alloc) / float64(n) / (1 << 20)
	row.OursMed, row.BaseMed = median(row.Ours), median(row.Base)
	var rs []float64
	for i := range row.Ours {
		rs = append(rs, ratio(row.Ours[i], row.Base[i]))
	}
	row.Ratio = median(rs)
	row.OursAlloc = float64(ms1.alloc-ms0.alloc) / float64(n) / (1 << 20)
	e.logf("decode+preprocess %s: ours %.1f img/s, baseline %.1f img/s; Prepare exact %.1f, fast %.1f img/s (scaled decode alone %.1f)",
		set.Name, row.OursMed, row.BaseMed, row.PrepareMed, row.PrepareFastMed, row.FastDecodeMed)
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

func (t *timedEmbedder) Infer(ctx context.Context, b []*schema.Prepared) ([]schema.VectorResult, error) {
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
func (s *memSink) Close() error                                   { return nil }

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

// python runs the baseline recipe.
type python struct {
	exe, script, model string
	work               string
}

// setupPython checks the Python env and writes the cut model for it; nil
// with pr.Skipped set when it cannot run.
func setupPython(ctx context.Context, e *env, pr *pythonReport) *python {
	if e.cfg.noPython {
		pr.Skipped = "--no-python"
		return nil
	}
	if _, err := os.Stat(e.cfg.python); err != nil {
		pr.Skipped = fmt.Sprintf("no python at %s (run .ci/lib/install-python.sh)", e.cfg.python)
		return nil
	}
	out, err := exec.CommandContext(ctx, e.cfg.python, "-c",
		"import onnxruntime, PIL, numpy; print('onnxruntime', onnxruntime.__version__, 'pillow', PIL.__version__, 'numpy', numpy.__version__)").Output()
	if err != nil {
		pr.Skipped = fmt.Sprintf("python env unusable: %v", err)
		return nil
	}
	pr.Versions = strings.TrimSpace(string(out))
	// The same bytes the Go side runs: the model cut at fc7 in memory.
	cut := filepath.Join(e.work, "cut-fc7.onnx")
	if err := os.WriteFile(cut, e.model.Bytes, 0o644); err != nil {
		pr.Skipped = err.Error()
		return nil
	}
	return &python{exe: e.cfg.python, script: filepath.Join(e.root, "testdata/reference/baseline_recipe.py"), model: cut, work: e.work}
}

// run runs the recipe once over files and returns its img/s (timed by the
// script: after the session is created) and the vectors in file order.
func (py *python) run(ctx context.Context, files []string) (float64, [][]float32, error) {
	npy := filepath.Join(py.work, "python-vectors.npy")
	defer os.Remove(npy)
	cmd := exec.CommandContext(ctx, py.exe, append([]string{py.script, py.model, npy}, files...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, nil, fmt.Errorf("%v: %s", err, lastLine(stderr.String()))
	}
	var res struct {
		Images    int     `json:"images"`
		ImgPerSec float64 `json:"images_per_s"`
	}
	if err := json.Unmarshal([]byte(lastLine(string(out))), &res); err != nil {
		return 0, nil, fmt.Errorf("parse %q: %v", lastLine(string(out)), err)
	}
	vecs, err := readNpy(npy)
	return res.ImgPerSec, vecs, err
}

// runEndToEnd measures one image set with x, whose decoding decode ("exact"
// or "fast") names: per repetition, Infer alone on the set's tensors as x
// prepares them (batches of the pipeline's size), the whole pipeline
// (connector.Syncer, folder source, discarding sink), and the Python recipe
// when py is set.
func runEndToEnd(ctx context.Context, e *env, set *imageSet, x *extract.Extractor, decode string, py *python) (e2eRow, *pythonRow, error) {
	bs := x.BatchSize()
	row := e2eRow{Set: set.Name, Decode: decode, Images: set.Count(), Batch: bs}
	label := row.label()
	var prow *pythonRow
	if py != nil {
		prow = &pythonRow{Set: set.Name, Images: set.Count(), MinCosine: 1}
	}
	prepared, err := prepareAll(x, set)
	if err != nil {
		return row, nil, err
	}
	defer releaseAll(x, prepared)
	type repInfo struct {
		busy    float64
		batches []int
	}
	var infos []repInfo
	for r := range e.cfg.reps {
		mo, err := inferAll(ctx, x, prepared)
		if err != nil {
			return row, nil, err
		}
		sink := &memSink{keep: true}
		te := &timedEmbedder{Embedder: x}
		el, run, err := syncOnce(ctx, set.Dir, sink, te, connector.KindBackfill)
		if err != nil {
			return row, nil, err
		}
		if run.Extracted != int64(set.Count()) || sink.written != set.Count() {
			return row, nil, fmt.Errorf("end-to-end %s: extracted %d, wrote %d of %d images (failed %d)", label, run.Extracted, sink.written, set.Count(), run.Failed)
		}
		ours := float64(set.Count()) / el.Seconds()
		row.ModelOnly = append(row.ModelOnly, mo)
		row.ImgPerSec = append(row.ImgPerSec, ours)
		row.Ratios = append(row.Ratios, ours/mo)
		infos = append(infos, repInfo{busy: te.busy.Seconds() / el.Seconds(), batches: te.batches})
		e.logf("end-to-end %s rep %d: %.3f img/s, model-only %.3f img/s", label, r+1, ours, mo)

		if prow == nil || prow.Error != "" {
			continue
		}
		pyRate, pyVecs, err := py.run(ctx, set.Files)
		if err != nil {
			prow.Error = err.Error()
			continue
		}
		prow.PyImgPerS = append(prow.PyImgPerS, pyRate)
		prow.Ratios = append(prow.Ratios, ours/pyRate)
		var mine [][]float32
		for _, f := range set.Files {
			mine = append(mine, sink.vecs[filepath.Base(f)])
		}
		maxAbs, minCos, err := compareVectors(mine, pyVecs)
		if err != nil {
			prow.Error = "parity: " + err.Error()
			continue
		}
		prow.MaxAbsDiff = math.Max(prow.MaxAbsDiff, maxAbs)
		prow.MinCosine = math.Min(prow.MinCosine, minCos)
		e.logf("python %s rep %d: %.3f img/s, max|diff| %.2g, min cos %.9f", set.Name, r+1, pyRate, maxAbs, minCos)
	}
	row.Median, row.ModelMed, row.Ratio = median(row.ImgPerSec), median(row.ModelOnly), median(row.Ratios)
	best := 0 // the rep closest to the median ratio
	for i, v := range row.Ratios {
		if math.Abs(v-row.Ratio) < math.Abs(row.Ratios[best]-row.Ratio) {
			best = i
		}
	}
	row.InferBusy, row.Batches = infos[best].busy, infos[best].batches
	if prow != nil && len(prow.PyImgPerS) > 0 {
		prow.PyMedian, prow.OurMedian, prow.Ratio = median(prow.PyImgPerS), row.Median, median(prow.Ratios)
	}
	return row, prow, nil
}

// prepareAll decodes and preprocesses every image of set (untimed).
func prepareAll(x *extract.Extractor, set *imageSet) ([]*schema.Prepared, error) {
	out := make([]*schema.Prepared, 0, set.Count())
	for _, f := range set.Files {
		b, err := os.ReadFile(f)
		if err != nil {
			releaseAll(x, out)
			return nil, err
		}
		p, err := x.Prepare(filepath.Base(f), b)
		if err != nil {
			releaseAll(x, out)
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func releaseAll(x *extract.Extractor, ps []*schema.Prepared) {
	for _, p := range ps {
		x.Release(p)
	}
}

// inferAll runs Infer over ps in batches of the Extractor's size and
// returns img/s.
func inferAll(ctx context.Context, x *extract.Extractor, ps []*schema.Prepared) (float64, error) {
	bs := x.BatchSize()
	t := time.Now()
	for i := 0; i < len(ps); i += bs {
		if _, err := x.Infer(ctx, ps[i:min(i+bs, len(ps))]); err != nil {
			return 0, err
		}
	}
	return float64(len(ps)) / time.Since(t).Seconds(), nil
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
	if err := e.phase("model-only", func() error { return runModelOnly(ctx, e, rep) }); err != nil {
		return nil, fmt.Errorf("model-only: %w", err)
	}
	sets, err := e.imageSets()
	if err != nil {
		return nil, err
	}
	rep.Sets = sets
	for _, set := range sets {
		n := set.Count()
		if set.large() {
			n = min(n, e.cfg.decodeLarge)
		}
		decodeSets := []*imageSet{set}
		if set.large() {
			// Progressive copies: decode rows only (fast mode reads their
			// 1/8-scale scans alone; exact mode is at its slowest).
			p, err := progressiveCopy(set, n)
			if err != nil {
				return nil, err
			}
			decodeSets = append(decodeSets, p)
		}
		for _, ds := range decodeSets {
			var row decodeRow
			err := e.phase("decode "+ds.Name, func() (err error) { row, err = runDecode(e, ds, n); return err })
			if err != nil {
				return nil, fmt.Errorf("decode %s: %w", ds.Name, err)
			}
			rep.Decode = append(rep.Decode, row)
		}
	}
	rep.Python = &pythonReport{Python: e.cfg.python}
	py := setupPython(ctx, e, rep.Python)
	if py != nil {
		defer os.Remove(py.model)
	}
	fx, _, err := e.fastExtractor()
	if err != nil {
		return nil, err
	}
	for _, set := range sets {
		if err := endToEnd(ctx, e, rep, set, e.x, "exact", py); err != nil {
			return nil, err
		}
		// Fast decoding is for large photos; on 640x480 it changes little.
		// Its vectors are not Pillow's, so no Python comparison.
		if set.large() {
			if err := endToEnd(ctx, e, rep, set, fx, "fast", nil); err != nil {
				return nil, err
			}
		}
	}
	return rep, nil
}

// endToEnd runs runEndToEnd as a phase and adds its rows to rep, with the
// CPU bound from the same decode mode's Prepare rate.
func endToEnd(ctx context.Context, e *env, rep *extractReport, set *imageSet, x *extract.Extractor, decode string, py *python) error {
	var row e2eRow
	var prow *pythonRow
	err := e.phase("end-to-end "+e2eRow{Set: set.Name, Decode: decode}.label(), func() (err error) {
		row, prow, err = runEndToEnd(ctx, e, set, x, decode, py)
		return err
	})
	if err != nil {
		return err
	}
	for _, d := range rep.Decode {
		prep := d.PrepareMed
		if decode == "fast" {
			prep = d.PrepareFastMed
		}
		if d.Set == set.Name && prep > 0 {
			row.Bound = 1 / (1 + row.ModelMed/(prep*float64(runtime.NumCPU())))
		}
	}
	rep.EndToEnd = append(rep.EndToEnd, row)
	if prow != nil {
		rep.Python.Sets = append(rep.Python.Sets, *prow)
	}
	return nil
}
