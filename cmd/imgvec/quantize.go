package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/cpu"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"
	"github.com/imgvec/imgvec/extract"
	"github.com/imgvec/imgvec/extract/imaging"
	"github.com/imgvec/imgvec/extract/onnxgraph"
	"github.com/imgvec/imgvec/schema"
)

func newModelQuantizeCmd() *cobra.Command {
	var out, dir, method, layer, preprocess string
	var percentile float64
	var maxImages, threads int
	var reduceRange, minMax bool
	cmd := &cobra.Command{
		Use:   "quantize MODEL.onnx -o OUT.onnx --calibrate DIR",
		Short: "Write an int8 model (static QDQ calibrated on DIR's images, or --method dynamic) and compare it with the original",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case out == "":
				return wiring.Usagef("quantize: -o OUT.onnx is required")
			case dir == "":
				return wiring.Usagef("quantize: --calibrate DIR is required (its images calibrate the ranges and measure the result)")
			case method != "static" && method != "dynamic":
				return wiring.Usagef("quantize: --method %q: want static or dynamic", method)
			case percentile != 0 && (percentile <= 50 || percentile >= 100):
				return wiring.Usagef("quantize: --percentile %g: want a value in (50, 100), or 0 for the least-error ranges", percentile)
			case percentile != 0 && minMax:
				return wiring.Usagef("quantize: --percentile and --min-max: pick one")
			}
			spec, err := extract.ParsePreprocess(preprocess)
			if err != nil {
				return wiring.Usage(err)
			}
			ctx := cmd.Context()
			if err := extract.InitRuntime(); err != nil {
				return err
			}
			m, err := readModel(args[0])
			if err != nil {
				return err
			}
			names, data, tensors, err := calibrationImages(dir, spec, maxImages)
			if err != nil {
				return err
			}
			vnni := cpu.X86.HasAVX512VNNI || cpu.X86.HasAVXVNNI || runtime.GOARCH != "amd64"
			qo := onnxgraph.QuantOptions{ReduceRange: reduceRange}
			var q *onnxgraph.Model
			if method == "dynamic" {
				q, err = m.QuantizeDynamic(qo)
			} else {
				var ranges map[string]onnxgraph.Range
				ranges, err = extract.Calibrate(ctx, m, tensors, spec, extract.CalibrateOptions{Percentile: percentile, MinMax: minMax, IntraOpThreads: threads})
				if err == nil {
					q, err = m.QuantizeStatic(ranges, qo)
				}
			}
			if err != nil {
				return fmt.Errorf("quantize %s: %w", args[0], err)
			}
			if _, err := q.Save(out, filepath.Dir(args[0])); err != nil {
				return fmt.Errorf("quantize %s: %w", args[0], err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote %s (%s int8; %d images of %s)\n", out, method, len(names), dir)
			cmp, err := compareModels(ctx, args[0], out, layer, preprocess, threads, names, data)
			if err != nil {
				return err
			}
			cmp.print(w)
			if !vnni && !reduceRange && method == "static" {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: this CPU has no VNNI: ONNX Runtime's u8×s8 kernels may saturate; measured min cosine %.5f (use --reduce-range if it is too low)\n", cmp.minCos)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "out", "o", "", "output .onnx file")
	f.StringVar(&dir, "calibrate", "", "folder of images to calibrate activation ranges on and to compare the models with")
	f.StringVar(&method, "method", "static", "static (QDQ int8 Conv/Gemm/MatMul, calibrated) or dynamic (int8 Linear layers only)")
	f.Float64Var(&percentile, "percentile", 0, "clip activation ranges at this percentile (e.g. 99.999) instead of the least-error ranges")
	f.BoolVar(&minMax, "min-max", false, "take activation ranges as the plain min/max instead of the least-error ranges")
	f.BoolVar(&reduceRange, "reduce-range", false, "7-bit weights, for CPUs without VNNI")
	f.IntVar(&maxImages, "max-images", 200, "use at most this many images of DIR")
	f.StringVar(&layer, "layer", "fc7", "layer the comparison reads")
	f.StringVar(&preprocess, "preprocess", "imagenet", "preprocessing of the calibration images (as --preprocess)")
	f.IntVar(&threads, "threads", 0, "ONNX Runtime intra-op threads; 0 = number of CPUs")
	return cmd
}

// calibrationImages reads up to limit images of dir (sorted by path; files
// that do not decode are skipped) and preprocesses them with spec.
func calibrationImages(dir string, spec imaging.Spec, limit int) (names []string, data [][]byte, tensors [][]float32, err error) {
	var paths []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("calibration images %s: %w", dir, err)
	}
	slices.Sort(paths)
	h, w := spec.OutputSize()
	for _, p := range paths {
		if len(names) == limit {
			break
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("calibration image: %w", err)
		}
		img, _, err := imaging.Decode(p, b, imaging.DecodeOptions{})
		if err != nil {
			continue
		}
		t := make([]float32, 3*h*w)
		err = imaging.Preprocess(img, spec, t)
		img.Release()
		if err != nil {
			continue
		}
		names, data, tensors = append(names, p), append(data, b), append(tensors, t)
	}
	if len(names) == 0 {
		return nil, nil, nil, fmt.Errorf("calibration images %s: no image decodes", dir)
	}
	return names, data, tensors, nil
}

// comparison is the original and the quantized model measured in one run.
type comparison struct {
	size, qsize    int64
	rate, qrate    float64 // img/s, model only
	minCos, meanCs float64
	overlap        float64 // top-10 neighbour overlap
	images         int
}

func (c comparison) print(w io.Writer) {
	fmt.Fprintf(w, "size         %.1f MB -> %.1f MB (%.2fx smaller)\n", float64(c.size)/1e6, float64(c.qsize)/1e6, float64(c.size)/float64(c.qsize))
	fmt.Fprintf(w, "img/s        %.1f -> %.1f (%.2fx, model only, batch 16, same run)\n", c.rate, c.qrate, c.qrate/c.rate)
	fmt.Fprintf(w, "cosine       min %.5f, mean %.5f (to the original's vectors, %d images)\n", c.minCos, c.meanCs, c.images)
	fmt.Fprintf(w, "top-10 overlap %.3f\n", c.overlap)
}

// compareModels embeds the images with both models at layer and measures
// their speed, the cosine of their vectors and their neighbour overlap.
func compareModels(ctx context.Context, orig, quant, layer, preprocess string, threads int, names []string, data [][]byte) (comparison, error) {
	var c comparison
	// The quantized graph keeps tensor names, not the Gemm nodes a layer
	// alias is found by: both read the tensor the alias names in the original.
	om, err := readModel(orig)
	if err != nil {
		return c, err
	}
	l, err := om.Resolve(layer)
	if err != nil {
		return c, fmt.Errorf("compare at %s: %w", layer, err)
	}
	var vecs [2][][]float32
	var rates [2]float64
	for i, path := range []string{orig, quant} {
		m, err := extract.LoadModel(ctx, path, l.Tensor, extract.LoadOptions{Preprocess: preprocess})
		if err != nil {
			return c, err
		}
		x, err := extract.New(m, extract.Options{Session: extract.SessionOptions{IntraOpThreads: threads}})
		if err != nil {
			return c, err
		}
		vecs[i], rates[i], err = embedTimed(ctx, x, names, data)
		x.Close()
		if err != nil {
			return c, err
		}
	}
	for i, p := range []string{orig, quant} {
		fi, err := os.Stat(p)
		if err != nil {
			return c, err
		}
		if i == 0 {
			c.size = fi.Size()
		} else {
			c.qsize = fi.Size()
		}
	}
	c.rate, c.qrate, c.images, c.minCos = rates[0], rates[1], len(names), 1
	for i := range vecs[0] {
		cs := extract.Cosine(vecs[0][i], vecs[1][i])
		c.minCos = min(c.minCos, cs)
		c.meanCs += cs / float64(len(names))
	}
	c.overlap = extract.NeighbourOverlap(vecs[0], vecs[1], 10)
	return c, nil
}

// embedTimed embeds every image in batches of x.BatchSize() and returns the
// vectors and the model-only rate (Infer time).
func embedTimed(ctx context.Context, x *extract.Extractor, names []string, data [][]byte) ([][]float32, float64, error) {
	var out [][]float32
	var infer time.Duration
	for lo := 0; lo < len(names); lo += x.BatchSize() {
		hi := min(len(names), lo+x.BatchSize())
		var batch []*schema.Prepared
		for i := lo; i < hi; i++ {
			p, err := x.Prepare(names[i], data[i])
			if err != nil {
				return nil, 0, err
			}
			batch = append(batch, p)
		}
		t0 := time.Now()
		res, err := x.Infer(ctx, batch)
		infer += time.Since(t0)
		for _, p := range batch {
			x.Release(p)
		}
		if err != nil {
			return nil, 0, err
		}
		for _, r := range res {
			if r.Err != nil {
				return nil, 0, r.Err
			}
			out = append(out, r.Vector)
		}
	}
	return out, float64(len(names)) / infer.Seconds(), nil
}
