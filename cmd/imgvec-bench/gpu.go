package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/extract"
	"github.com/imgvec/imgvec/extract/onnxgraph"
	"github.com/imgvec/imgvec/schema"
)

// ---- imgvec-bench gpu: GPU throughput (make bench-gpu) ----

// gpuReport is what the gpu command measured.
type gpuReport struct {
	Device   string      `json:"device"`
	GPUs     string      `json:"gpus"` // nvidia-smi, "" without a driver
	ORTLib   string      `json:"ort_lib"`
	Model    modelInfo   `json:"model"`
	Variants []string    `json:"variants"`
	Rows     []gpuRow    `json:"rows"`
	Cosines  []gpuCosine `json:"cosines"`
}

// gpuRow is one measurement: img/s of a variant at a batch size, model
// only (random input, no decode) or end to end (JPEG files through the
// backfill pipeline into a sink that keeps nothing).
type gpuRow struct {
	What      string  `json:"what"` // "model-only" or "end-to-end 640x480" ...
	Variant   string  `json:"variant"`
	Batch     int     `json:"batch"`
	Images    int     `json:"images"`
	ImgPerSec float64 `json:"img_per_s"`
}

// gpuCosine compares a variant's vectors with fp32's on the same images.
type gpuCosine struct {
	Variant string  `json:"variant"`
	Images  int     `json:"images"`
	Min     float64 `json:"min"`
	Mean    float64 `json:"mean"`
}

// gpuVariant is one way of running the model.
type gpuVariant struct {
	name string
	fp16 bool
	opts extract.Options
}

var gpuVariants = []gpuVariant{
	{name: "fp32", opts: extract.Options{Session: extract.SessionOptions{NoTF32: true}}},
	{name: "tf32"},
	{name: "fp16", fp16: true},
	{name: "tf32+uint8", opts: extract.Options{PixelUpload: true}},
}

// errNoGPU is a preflight failure: one line, said before anything slow.
var errNoGPU = errors.New("no usable GPU")

// gpuPreflight checks, in seconds, that dev can run a model at all: a
// driver, the CUDA build of ONNX Runtime, a session on the tiny model.
func gpuPreflight(root string, dev extract.Device) (gpus, lib string, err error) {
	gpus = extract.NVIDIAGPUs()
	if dev.Kind == "cpu" {
		lib, err = extract.LibraryPath()
		return gpus, lib, err
	}
	if gpus == "" {
		return "", "", fmt.Errorf("%w: no NVIDIA driver (nvidia-smi is missing or fails); run this on a GPU machine, or with --device cpu (BENCH_GPU_DEVICE=cpu) for the CPU smoke test", errNoGPU)
	}
	if lib, err = extract.LibraryPath(); err != nil {
		return gpus, "", err
	}
	model, err := os.ReadFile(filepath.Join(root, tinyModelFile))
	if err != nil {
		return gpus, lib, err
	}
	m, err := onnxgraph.Parse(model)
	if err != nil {
		return gpus, lib, err
	}
	cut, _, err := m.Cut("fc7")
	if err != nil {
		return gpus, lib, err
	}
	s, err := extract.NewSession(cut, extract.SessionOptions{Device: dev})
	if err != nil {
		msg, _, _ := strings.Cut(err.Error(), "\n")
		return gpus, lib, fmt.Errorf("%w: %s (library %s)", errNoGPU, msg, lib)
	}
	return gpus, lib, s.Close()
}

func runGPU(ctx context.Context, e *env) (*gpuReport, error) {
	cfg := e.cfg
	devs, err := extract.ParseDevices(cfg.device)
	if err != nil {
		return nil, err
	}
	rep := &gpuReport{Device: cfg.device}
	if rep.GPUs, rep.ORTLib, err = gpuPreflight(e.root, devs[0]); err != nil {
		return nil, err
	}
	e.logf("device %s; GPUs: %s; ONNX Runtime %s", cfg.device, rep.GPUs, rep.ORTLib)
	path, info, err := resolveModel(e.root, cfg.model, e.logf)
	if err != nil {
		return nil, err
	}
	m, err := extract.LoadModel(ctx, path, "fc7", extract.LoadOptions{})
	if err != nil {
		return nil, err
	}
	info.Layer, info.Dim, info.CutBytes, info.SHA256 = m.Layer, m.Dim, len(m.Bytes), m.SHA256
	rep.Model = info
	half, err := float16Model(m)
	if err != nil {
		return nil, err
	}

	batches, budget := []int{32, 64, 128}, 3*time.Second
	small, large := 1536, 192 // enough JPEGs for a few seconds at GPU rates
	if cfg.quick {
		batches, budget, small, large = []int{2, 4, 8}, 100*time.Millisecond, 8, 2
	}
	var sets []*imageSet
	for _, sz := range [][3]int{{640, 480, small}, {4000, 3000, large}} {
		e.logf("generating %d %dx%d JPEGs ...", sz[2], sz[0], sz[1])
		s, err := makeImageSet(e.work, sz[0], sz[1], sz[2])
		if err != nil {
			return nil, err
		}
		sets = append(sets, s)
	}

	// One extractor per variant, all kept open: the cosines compare them
	// on the same prepared images.
	xs := make([]*extract.Extractor, len(gpuVariants))
	defer func() {
		for _, x := range xs {
			if x != nil {
				x.Close()
			}
		}
	}()
	maxB := batches[len(batches)-1]
	for i, v := range gpuVariants {
		mv := m
		if v.fp16 {
			mv = half
		}
		o := v.opts
		o.Devices, o.BatchSize, o.Session.IntraOpThreads = devs, maxB, cfg.threads
		t0 := time.Now()
		if xs[i], err = extract.New(mv, o); err != nil {
			return nil, fmt.Errorf("%s: %w", v.name, err)
		}
		rep.Variants = append(rep.Variants, v.name)
		e.logf("%s: session(s) on %s in %.1fs", v.name, cfg.device, time.Since(t0).Seconds())
	}

	for i, v := range gpuVariants {
		x := xs[i]
		in := randomInput(maxB, v.opts.PixelUpload)
		for _, b := range batches {
			// Untimed: a first run at a new size grows the arena and, on
			// CUDA, searches cuDNN's convolution algorithms for the shape.
			if _, err := x.Infer(ctx, in[:b]); err != nil {
				return nil, fmt.Errorf("%s warm-up at batch %d: %w", v.name, b, err)
			}
			rate, err := timedRate(budget, func() (int, error) {
				_, err := x.Infer(ctx, in[:b])
				return b, err
			})
			if err != nil {
				return nil, fmt.Errorf("%s model-only batch %d: %w", v.name, b, err)
			}
			rep.Rows = append(rep.Rows, gpuRow{What: "model-only", Variant: v.name, Batch: b, ImgPerSec: rate})
			e.logf("%s model-only batch %d: %.1f img/s", v.name, b, rate)
		}
	}

	if rep.Cosines, err = gpuCosines(ctx, xs, sets[0]); err != nil {
		return nil, err
	}

	for _, set := range sets {
		for i, v := range gpuVariants {
			for _, b := range batches {
				// A first pass warms the page cache and the decoders' pools.
				emb := batchOf{xs[i], b}
				if b == batches[0] {
					if _, _, err := syncOnce(ctx, set.Dir, &memSink{}, emb, connector.KindBackfill); err != nil {
						return nil, err
					}
				}
				sink := &memSink{}
				el, run, err := syncOnce(ctx, set.Dir, sink, emb, connector.KindBackfill)
				if err != nil {
					return nil, err
				}
				if sink.written != set.Count() {
					return nil, fmt.Errorf("end-to-end %s %s: wrote %d of %d images (failed %d)", set.Name, v.name, sink.written, set.Count(), run.Failed)
				}
				rate := float64(set.Count()) / el.Seconds()
				rep.Rows = append(rep.Rows, gpuRow{What: "end-to-end " + set.Name, Variant: v.name, Batch: b, Images: set.Count(), ImgPerSec: rate})
				e.logf("%s end-to-end %s batch %d: %.1f img/s", v.name, set.Name, b, rate)
			}
		}
	}
	return rep, nil
}

// float16Model is m converted to float16 (imgvec model convert --fp16), in
// memory; its model id is its own.
func float16Model(m *extract.Model) (*extract.Model, error) {
	g, err := onnxgraph.Parse(m.Bytes)
	if err != nil {
		return nil, err
	}
	h, err := g.Float16()
	if err != nil {
		return nil, fmt.Errorf("float16: %w", err)
	}
	half := *m
	if half.Bytes, err = h.Bytes(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(half.Bytes)
	half.SHA256 = hex.EncodeToString(sum[:])
	return &half, nil
}

// batchOf runs an Extractor's pipeline at another batch size (at most its
// own): one session serves every batch size.
type batchOf struct {
	*extract.Extractor
	n int
}

func (b batchOf) BatchSize() int { return b.n }

// randomInput is n images of random input: N(0,1) floats, or random pixels.
func randomInput(n int, pixels bool) []*schema.Prepared {
	if !pixels {
		return randomBatch(n, 3*224*224)
	}
	rng := rand.New(rand.NewPCG(42, 8))
	out := make([]*schema.Prepared, n)
	for i := range out {
		p := make([]byte, 3*224*224)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		out[i] = &schema.Prepared{Key: fmt.Sprintf("random-%d", i), Pixels: p}
	}
	return out
}

// timedRate calls fn (which returns the images it ran) until budget has
// passed, at least twice, and returns images per second.
func timedRate(budget time.Duration, fn func() (int, error)) (float64, error) {
	n, start := 0, time.Now()
	for i := 0; i < 2 || time.Since(start) < budget; i++ {
		k, err := fn()
		if err != nil {
			return 0, err
		}
		n += k
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// gpuCosines compares every variant's vectors with fp32's (xs[0]) on up to
// 64 images of set.
func gpuCosines(ctx context.Context, xs []*extract.Extractor, set *imageSet) ([]gpuCosine, error) {
	sub := *set
	sub.Files = set.Files[:min(64, len(set.Files))]
	vecs := make([][]schema.VectorResult, len(xs))
	for i, x := range xs {
		ps, err := prepareAll(x, &sub)
		if err != nil {
			return nil, err
		}
		vecs[i], err = x.Infer(ctx, ps)
		releaseAll(x, ps)
		if err != nil {
			return nil, fmt.Errorf("%s on %s: %w", gpuVariants[i].name, set.Name, err)
		}
	}
	var out []gpuCosine
	for i := 1; i < len(xs); i++ {
		c := gpuCosine{Variant: gpuVariants[i].name, Images: len(sub.Files), Min: 1}
		for k, r := range vecs[i] {
			ref := vecs[0][k]
			if r.Err != nil || ref.Err != nil {
				return nil, fmt.Errorf("cosine %s: %v %v", sub.Files[k], r.Err, ref.Err)
			}
			var dot float64
			for j := range r.Vector {
				dot += float64(r.Vector[j]) * float64(ref.Vector[j])
			}
			c.Min = math.Min(c.Min, dot)
			c.Mean += dot / float64(len(vecs[i]))
		}
		out = append(out, c)
	}
	return out, nil
}

// writeGPU prints the table: one line per measurement and batch size, one
// column per variant.
func writeGPU(w io.Writer, g *gpuReport) {
	p := func(f string, a ...any) { fmt.Fprintf(w, f+"\n", a...) }
	p("")
	p("== gpu: %s ==", g.Device)
	gpus := g.GPUs
	if gpus == "" {
		gpus = "none found"
	}
	p("GPUs: %s", gpus)
	p("ONNX Runtime library: %s", g.ORTLib)
	p("model: %s cut at %s (%d-d), %d bytes", g.Model.Path, g.Model.Layer, g.Model.Dim, g.Model.CutBytes)
	p("img/s (fp32 = TF32 off; tf32 = the default; fp16 = model convert --fp16; +uint8 = --upload uint8)")
	head := fmt.Sprintf("%-22s %5s", "", "batch")
	for _, v := range g.Variants {
		head += fmt.Sprintf(" %11s", v)
	}
	p("%s", head)
	type cell struct {
		what, variant string
		batch         int
	}
	rate := map[cell]float64{}
	var whats []string
	var batches []int
	for _, r := range g.Rows {
		rate[cell{r.What, r.Variant, r.Batch}] = r.ImgPerSec
		if !slices.Contains(whats, r.What) {
			whats = append(whats, r.What)
		}
		if !slices.Contains(batches, r.Batch) {
			batches = append(batches, r.Batch)
		}
	}
	for _, what := range whats {
		for _, b := range batches {
			line := fmt.Sprintf("%-22s %5d", what, b)
			for _, v := range g.Variants {
				line += fmt.Sprintf(" %11.1f", rate[cell{what, v, b}])
			}
			p("%s", line)
		}
	}
	for _, c := range g.Cosines {
		p("cosine to fp32, %s (%d images of 640x480): min %.6f, mean %.6f", c.Variant, c.Images, c.Min, c.Mean)
	}
}
