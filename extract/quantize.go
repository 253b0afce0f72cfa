package extract

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/imgvec/imgvec/extract/imaging"
	"github.com/imgvec/imgvec/extract/onnxgraph"
)

// CalibrateOptions says how activation ranges are measured. By default
// each range is the one, among the min/max range scaled by 1/100 to 1,
// whose uint8 quantization of a sample of the activations has the least
// squared error (rounding plus clipping): on the full-size VGG19 it gives
// the int8 model's fc7 vectors half the error of min/max.
type CalibrateOptions struct {
	// Percentile, when in (50, 100), clips each range to the values at
	// Percentile and 100-Percentile of a sample of the activations (e.g.
	// 99.999) instead.
	Percentile float64
	// MinMax takes each range's plain min and max instead.
	MinMax bool
	// IntraOpThreads as in SessionOptions.
	IntraOpThreads int
}

// maxSample bounds the activations kept per tensor and image for the
// percentile method.
const maxSample = 1 << 14

// Calibrate runs m on each preprocessed image (3×H×W float32, spec's
// output) with the tensors m.QuantTensors() and m.QuantInputs() name as
// extra outputs, and returns for QuantizeStatic the ranges of the first and
// the channel means (Range.Means) of the second.
func Calibrate(ctx context.Context, m *onnxgraph.Model, images [][]float32, spec imaging.Spec, o CalibrateOptions) (map[string]onnxgraph.Range, error) {
	if err := InitRuntime(); err != nil {
		return nil, err
	}
	if len(images) == 0 {
		return nil, errors.New("calibrate: no images")
	}
	rep := m.Inspect()
	if len(rep.Inputs) != 1 {
		return nil, fmt.Errorf("calibrate: model has %d inputs; want one image input", len(rep.Inputs))
	}
	names, inputs := m.QuantTensors(), m.QuantInputs()
	for _, t := range inputs {
		if !slices.Contains(names, t) {
			names = append(names, t)
		}
	}
	data, err := m.WithOutputs(names).Bytes()
	if err != nil {
		return nil, fmt.Errorf("calibrate: encode model: %w", err)
	}
	so, err := sessionOptions(SessionOptions{IntraOpThreads: o.IntraOpThreads})
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(data, []string{rep.Inputs[0].Name}, names, so)
	if err != nil {
		return nil, fmt.Errorf("calibrate: create session: %w", err)
	}
	defer sess.Destroy()
	h, w := spec.OutputSize()
	ranges := make(map[string]onnxgraph.Range, len(names))
	samples := make(map[string][]float32, len(names))
	sums := make(map[string][]float64, len(inputs))
	for k, img := range images {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		in, err := ort.NewTensor(ort.NewShape(1, 3, int64(h), int64(w)), img)
		if err != nil {
			return nil, fmt.Errorf("calibrate: input tensor: %w", err)
		}
		outs := make([]ort.Value, len(names))
		err = sess.Run([]ort.Value{in}, outs)
		in.Destroy()
		if err != nil {
			return nil, fmt.Errorf("calibrate: run image %d: %w", k, err)
		}
		for i, v := range outs {
			t, ok := v.(*ort.Tensor[float32])
			if !ok {
				v.Destroy()
				return nil, fmt.Errorf("calibrate: tensor %s is not float32", names[i])
			}
			vals := t.GetData()
			r, seen := ranges[names[i]]
			if !seen {
				r = onnxgraph.Range{Min: float32(math.Inf(1)), Max: float32(math.Inf(-1))}
			}
			for _, x := range vals {
				r.Min, r.Max = min(r.Min, x), max(r.Max, x)
			}
			ranges[names[i]] = r
			if slices.Contains(inputs, names[i]) {
				sums[names[i]] = addChannelSums(sums[names[i]], vals, t.GetShape())
			}
			if !o.MinMax {
				step := max(1, len(vals)/maxSample)
				for j := 0; j < len(vals); j += step {
					samples[names[i]] = append(samples[names[i]], vals[j])
				}
			}
			v.Destroy()
		}
	}
	if o.Percentile != 0 && (o.Percentile <= 50 || o.Percentile >= 100) {
		return nil, fmt.Errorf("calibrate: percentile %g: want a value in (50, 100)", o.Percentile)
	}
	for name, s := range samples {
		switch {
		case o.Percentile > 0:
			slices.Sort(s)
			at := func(p float64) float32 { return s[min(len(s)-1, int(p/100*float64(len(s))))] }
			ranges[name] = onnxgraph.Range{Min: at(100 - o.Percentile), Max: at(o.Percentile)}
		default:
			ranges[name] = mseRange(s, ranges[name])
		}
	}
	for name, sum := range sums {
		r := ranges[name]
		r.Means = make([]float32, len(sum))
		for c, v := range sum {
			r.Means[c] = float32(v / float64(len(images)))
		}
		ranges[name] = r
	}
	return ranges, nil
}

// addChannelSums adds to sums (one per channel, axis 1 of shape [1, C,
// ...]) the mean of each channel of one image's activations vals.
func addChannelSums(sums []float64, vals []float32, shape ort.Shape) []float64 {
	if len(shape) < 2 || shape[1] <= 0 {
		return sums
	}
	channels := int(shape[1])
	if sums == nil {
		sums = make([]float64, channels)
	}
	inner := len(vals) / channels
	for c := range channels {
		var s float64
		for _, v := range vals[c*inner : (c+1)*inner] {
			s += float64(v)
		}
		sums[c] += s / float64(inner)
	}
	return sums
}

// mseRange is the range, r scaled by one of 100 factors in (0, 1], whose
// asymmetric uint8 quantization of sample has the least squared error.
func mseRange(sample []float32, r onnxgraph.Range) onnxgraph.Range {
	best, bestErr := r, math.Inf(1)
	for k := 100; k > 0; k-- {
		c := onnxgraph.Range{Min: r.Min * float32(k) / 100, Max: r.Max * float32(k) / 100}
		scale, zero := onnxgraph.ActivationParams(c)
		s, z := float64(scale), float64(zero)
		var sum float64
		for _, x := range sample {
			q := max(0, min(255, math.Round(float64(x)/s)+z))
			d := (q-z)*s - float64(x)
			sum += d * d
		}
		if sum < bestErr {
			best, bestErr = c, sum
		}
	}
	return best
}

// Cosine is the cosine similarity of a and b (0 when either is zero).
func Cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

// NeighbourOverlap is the mean, over every vector, of the share of its k
// nearest neighbours (by cosine, itself excluded) that a and b agree on:
// 1 when two models rank a collection alike.
func NeighbourOverlap(a, b [][]float32, k int) float64 {
	n := len(a)
	if n < 2 {
		return 1
	}
	k = min(k, n-1)
	top := func(vs [][]float32, i int) []int {
		idx := make([]int, 0, n-1)
		sims := make([]float64, n)
		for j := range vs {
			if j != i {
				idx = append(idx, j)
				sims[j] = Cosine(vs[i], vs[j])
			}
		}
		slices.SortStableFunc(idx, func(x, y int) int {
			switch {
			case sims[x] > sims[y]:
				return -1
			case sims[x] < sims[y]:
				return 1
			}
			return 0
		})
		return idx[:k]
	}
	var sum float64
	for i := range a {
		ta, tb := top(a, i), top(b, i)
		common := 0
		for _, x := range ta {
			if slices.Contains(tb, x) {
				common++
			}
		}
		sum += float64(common) / float64(k)
	}
	return sum / float64(n)
}
