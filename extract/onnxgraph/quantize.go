package onnxgraph

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Range is the calibrated value range of an activation tensor.
type Range struct {
	Min, Max float32
	// Means, when set, is the mean of each channel (axis 1) of a node's
	// data input (see QuantInputs): QuantizeStatic corrects that node's
	// bias for the mean shift its weights' rounding causes.
	Means []float32
}

// QuantOptions tunes QuantizeStatic and QuantizeDynamic.
type QuantOptions struct {
	// ReduceRange quantizes weights to 7 bits ([-63, 63]) so that the
	// u8×s8 pair sums of CPUs without VNNI cannot saturate.
	ReduceRange bool
}

// quantOps are the nodes whose weights are quantized.
func quantizable(a *analysis, n *Node) bool {
	switch n.OpType {
	case "Conv":
		return a.inits[input(n, 1)] != nil && a.inits[input(n, 1)].DataType == Float
	case "Gemm":
		return a.inits[input(n, 1)] != nil && a.inits[input(n, 1)].DataType == Float && len(a.inits[input(n, 1)].Dims) == 2 &&
			n.attrInt("transA", 0) == 0 && attrFloat(n, "alpha", 1) == 1 && attrFloat(n, "beta", 1) == 1
	case "MatMul":
		w := a.inits[input(n, 1)]
		return w != nil && w.DataType == Float && len(w.Dims) == 2
	}
	return false
}

func attrFloat(n *Node, name string, def float32) float32 {
	if a := n.Attr(name); a != nil {
		return a.F
	}
	return def
}

// passThrough ops keep their input's values (a subset of them): their
// output shares the input's quantization range, as ONNX Runtime's QDQ
// fusions want (MaxPool, Flatten, Reshape between Q/DQ pairs).
func passThrough(op string) bool {
	switch op {
	case "MaxPool", "Flatten", "Reshape", "Dropout", "Identity", "Squeeze", "Unsqueeze":
		return true
	}
	return false
}

// QuantTensors lists the activation tensors QuantizeStatic needs a Range
// for: the data input of every Conv, Gemm and MatMul with a float weight
// initializer, and its output (the following Relu's output where a Relu is
// its only consumer). Tensors that only pass another's values on (MaxPool,
// Flatten...) are not listed: they share their source's range.
func (m *Model) QuantTensors() []string {
	a := analyse(m.Graph)
	seen := map[string]bool{}
	var out []string
	add := func(t string) {
		t = a.rangeSource(t)
		if t != "" && !seen[t] && a.consts[t] == nil {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, i := range a.order {
		n := a.g.Nodes[i]
		if !quantizable(a, n) {
			continue
		}
		add(input(n, 0))
		add(a.quantOutput(n))
	}
	return out
}

// QuantInputs lists the data input of every node QuantizeStatic
// quantizes: the tensors whose channel means (Range.Means) correct the
// nodes' biases.
func (m *Model) QuantInputs() []string {
	a := analyse(m.Graph)
	var out []string
	for _, i := range a.order {
		if n := a.g.Nodes[i]; quantizable(a, n) && a.consts[input(n, 0)] == nil && !slices.Contains(out, input(n, 0)) {
			out = append(out, input(n, 0))
		}
	}
	return out
}

// rangeSource follows pass-through producers back to the tensor whose range t shares.
func (a *analysis) rangeSource(t string) string {
	for step := 0; step < 16; step++ {
		i, ok := a.producer[t]
		if !ok || !passThrough(a.g.Nodes[i].OpType) {
			return t
		}
		t = input(a.g.Nodes[i], 0)
	}
	return t
}

// quantOutput is the tensor after n that gets a Q/DQ pair: the output of
// a Relu that is its only consumer, else its own output.
func (a *analysis) quantOutput(n *Node) string {
	if len(n.Outputs) == 0 {
		return ""
	}
	out := n.Outputs[0]
	if cs := a.consumers[out]; len(cs) == 1 {
		if c := a.g.Nodes[cs[0]]; c.OpType == "Relu" && len(c.Outputs) == 1 {
			return c.Outputs[0]
		}
	}
	return out
}

// WithOutputs returns a copy of m whose graph outputs are its own and the
// named tensors (float, shape unknown): the calibration model.
func (m *Model) WithOutputs(names []string) *Model {
	g := *m.Graph
	g.Outputs = append([]*ValueInfo(nil), g.Outputs...)
	have := map[string]bool{}
	for _, o := range g.Outputs {
		have[o.Name] = true
	}
	for _, n := range names {
		if !have[n] {
			g.Outputs = append(g.Outputs, &ValueInfo{Name: n, ElemType: Float})
			have[n] = true
		}
	}
	return &Model{IRVersion: m.IRVersion, ProducerName: m.ProducerName, Opsets: m.Opsets, Graph: &g, fields: m.fields}
}

// newTensorRaw builds an initializer from little-endian raw data.
func newTensorRaw(name string, dtype int32, dims []int64, raw []byte) *Tensor {
	var b []byte
	b = putPackedInt64s(b, 1, dims)
	b = putVarint(b, 2, uint64(dtype))
	b = putString(b, 8, name)
	b = putBytes(b, 9, raw)
	t, err := parseTensor(b)
	if err != nil {
		panic(err) // our own encoding
	}
	return t
}

func newTensorFloats(name string, dims []int64, v []float32) *Tensor {
	raw := make([]byte, 0, 4*len(v))
	for _, f := range v {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
	}
	return newTensorRaw(name, Float, dims, raw)
}

func newTensorInt32s(name string, dims []int64, v []int32) *Tensor {
	raw := make([]byte, 0, 4*len(v))
	for _, x := range v {
		raw = binary.LittleEndian.AppendUint32(raw, uint32(x))
	}
	return newTensorRaw(name, Int32, dims, raw)
}

// ActivationParams is the asymmetric uint8 scale and zero point of r
// (widened to include 0, so that 0 is exact).
func ActivationParams(r Range) (scale float32, zero uint8) {
	lo, hi := min(float64(r.Min), 0), max(float64(r.Max), 0)
	if !(hi > lo) || math.IsInf(hi-lo, 0) || math.IsNaN(hi-lo) {
		return 1, 0
	}
	s := (hi - lo) / 255
	z := math.Round(-lo / s)
	return float32(s), uint8(max(0, min(255, z)))
}

// quantizeWeights quantizes w to symmetric int8 per output channel: axis 0
// of a Conv weight [M,C,kh,kw] or a transposed Gemm weight [N,K], axis 1 of
// a MatMul or plain Gemm weight [K,N]. It returns the int8 values and one
// scale per channel.
func quantizeWeights(w []float32, dims []int64, axis int, qmax float64) ([]byte, []float32) {
	channels := int(dims[axis])
	inner := 1 // elements between two channels' consecutive values
	for _, d := range dims[axis+1:] {
		inner *= int(d)
	}
	chanOf := func(i int) int { return (i / inner) % channels }
	absMax := make([]float64, channels)
	for i, v := range w {
		c := chanOf(i)
		absMax[c] = max(absMax[c], math.Abs(float64(v)))
	}
	scales := make([]float32, channels)
	for c, m := range absMax {
		scales[c] = 1
		if m > 0 {
			scales[c] = float32(m / qmax)
		}
	}
	q := make([]byte, len(w))
	for i, v := range w {
		x := math.Round(float64(v) / float64(scales[chanOf(i)]))
		q[i] = byte(int8(max(-qmax, min(qmax, x))))
	}
	return q, scales
}

// quantWriter collects the nodes and initializers a rewrite adds; qmax
// bounds the int8 weights it writes.
type quantWriter struct {
	used  map[string]bool
	nodes []*Node
	inits []*Tensor
	qmax  float64
}

// startQuantize is the start that QuantizeStatic and QuantizeDynamic share:
// refuse a default opset below minOpset (need says what needs it), analyse
// the graph, and set up the writer with weights in [-127, 127], or
// [-63, 63] with o.ReduceRange.
func (m *Model) startQuantize(minOpset int64, need string, o QuantOptions) (*analysis, *quantWriter, error) {
	if v := m.defaultOpset(); v < minOpset {
		return nil, nil, fmt.Errorf("onnxgraph: quantize: opset %d; %s needs opset %d or later (re-export the model)", v, need, minOpset)
	}
	qw := &quantWriter{used: usedNames(m.Graph), qmax: 127}
	if o.ReduceRange {
		qw.qmax = 63
	}
	return analyse(m.Graph), qw, nil
}

func (qw *quantWriter) name(base string) string { return uniqueName(qw.used, base) }

func (qw *quantWriter) node(op string, ins []string, out string, attrs ...*Attr) {
	qw.nodes = append(qw.nodes, &Node{Name: qw.name(out + "_node"), OpType: op, Inputs: ins, Outputs: []string{out}, Attrs: attrs})
}

// QuantizeStatic returns a copy of m in QDQ form: every Conv, Gemm and
// MatMul with a float weight initializer reads its weight through
// DequantizeLinear of symmetric per-output-channel int8 values, its bias
// (when an initializer) through DequantizeLinear of int32 values at scale
// input scale × weight scale, and its data input and output (see
// QuantTensors) through a QuantizeLinear/DequantizeLinear pair with the
// asymmetric uint8 parameters of ranges. Graph outputs stay float. ONNX
// Runtime fuses the patterns into integer kernels (QLinearConv, QGemm).
// The default opset must be at least 13 (per-axis DequantizeLinear).
func (m *Model) QuantizeStatic(ranges map[string]Range, o QuantOptions) (*Model, error) {
	a, qw, err := m.startQuantize(13, "per-channel quantization", o)
	if err != nil {
		return nil, err
	}
	g := m.Graph
	// The activation Q/DQ pairs: tensor -> its dequantized name, and the
	// scale of each (the bias scale needs the input's).
	actScale := map[string]float32{}
	dq := map[string]string{}
	needQDQ := map[string]bool{}
	params := func(t string) (float32, uint8, error) {
		r, ok := ranges[a.rangeSource(t)]
		if !ok {
			return 0, 0, fmt.Errorf("onnxgraph: quantize: no calibrated range for tensor %q", t)
		}
		s, z := ActivationParams(r)
		return s, z, nil
	}
	for _, i := range a.order {
		n := g.Nodes[i]
		if quantizable(a, n) {
			needQDQ[input(n, 0)] = true
			if out := a.quantOutput(n); len(a.consumers[out]) > 0 {
				needQDQ[out] = true
			}
		}
	}
	// Pass-through ops between quantized tensors get Q/DQ too, with their
	// source's parameters, so that ONNX Runtime can drop them in pairs.
	for t := range needQDQ {
		for s := t; ; {
			i, ok := a.producer[s]
			if !ok || !passThrough(g.Nodes[i].OpType) {
				break
			}
			s = input(g.Nodes[i], 0)
			needQDQ[s] = true
		}
	}
	emitQDQ := func(t string) error {
		if _, done := dq[t]; done || !needQDQ[t] {
			return nil
		}
		s, z, err := params(t)
		if err != nil {
			return err
		}
		sn, zn := qw.name(t+"_scale"), qw.name(t+"_zero_point")
		qw.inits = append(qw.inits, newTensorFloats(sn, nil, []float32{s}), newTensorRaw(zn, Uint8, nil, []byte{z}))
		qn, dn := qw.name(t+"_quantized"), qw.name(t+"_dequantized")
		qw.node("QuantizeLinear", []string{t, sn, zn}, qn)
		qw.node("DequantizeLinear", []string{qn, sn, zn}, dn)
		dq[t], actScale[t] = dn, s
		return nil
	}
	replaced := map[string]bool{} // float initializers now read through DQ
	for _, i := range a.order {
		n := g.Nodes[i]
		// Graph inputs have no producer: their pairs go before their first
		// consumer; a node's output pair right after it.
		for _, in := range n.Inputs {
			if _, produced := a.producer[in]; !produced {
				if err := emitQDQ(in); err != nil {
					return nil, err
				}
			}
		}
		nn := *n
		nn.raw = nil
		nn.Inputs = append([]string(nil), n.Inputs...)
		for k, in := range nn.Inputs {
			if d, ok := dq[in]; ok {
				nn.Inputs[k] = d
			}
		}
		if quantizable(a, n) {
			bias, err := qw.weights(a, &nn, n, actScale[input(n, 0)], ranges[input(n, 0)].Means)
			if err != nil {
				return nil, err
			}
			replaced[input(n, 1)] = true
			if bias {
				replaced[n.Inputs[2]] = true
			}
		}
		qw.nodes = append(qw.nodes, &nn)
		for _, out := range n.Outputs {
			if err := emitQDQ(out); err != nil {
				return nil, err
			}
		}
	}
	return m.withQuantized(qw, replaced), nil
}

// withQuantized is m with qw's nodes and new initializers; the float
// initializers in replaced are dropped (with their graph inputs, which old
// exporters list too) unless a node still reads them.
func (m *Model) withQuantized(qw *quantWriter, replaced map[string]bool) *Model {
	g := m.Graph
	stillUsed := map[string]bool{}
	for _, n := range qw.nodes {
		for _, in := range n.Inputs {
			stillUsed[in] = true
		}
	}
	g2 := *g
	g2.Nodes = qw.nodes
	g2.Initializers = nil
	for _, t := range g.Initializers {
		if !replaced[t.Name] || stillUsed[t.Name] {
			g2.Initializers = append(g2.Initializers, t)
		}
	}
	g2.Initializers = append(g2.Initializers, qw.inits...)
	g2.Inputs = nil
	for _, v := range g.Inputs {
		if !replaced[v.Name] || stillUsed[v.Name] {
			g2.Inputs = append(g2.Inputs, v)
		}
	}
	return &Model{IRVersion: m.IRVersion, ProducerName: m.ProducerName, Opsets: m.Opsets, Graph: &g2, fields: m.fields}
}

// weights rewrites nn (a copy of n) to read its weight, and its bias when
// an initializer, through DequantizeLinear of int8/int32 values. inScale is
// the data input's activation scale; means, when it has one value per
// input channel, its channel means, by which the bias is corrected (see
// biasShift). bias reports whether the bias was quantized.
func (qw *quantWriter) weights(a *analysis, nn, n *Node, inScale float32, means []float32) (bias bool, err error) {
	wt := a.inits[input(n, 1)]
	w, err := wt.Floats()
	if err != nil {
		return false, fmt.Errorf("onnxgraph: quantize %s: %w", n.Name, err)
	}
	axis := 0
	if n.OpType == "MatMul" || (n.OpType == "Gemm" && n.attrInt("transB", 0) == 0) {
		axis = 1
	}
	q, scales := quantizeWeights(w, wt.Dims, axis, qw.qmax)
	channels := int64(len(scales))
	qn, sn, zn, dn := qw.name(wt.Name+"_quantized"), qw.name(wt.Name+"_scale"), qw.name(wt.Name+"_zero_point"), qw.name(wt.Name+"_dequantized")
	qw.inits = append(qw.inits, newTensorRaw(qn, Int8, wt.Dims, q), newTensorFloats(sn, []int64{channels}, scales),
		newTensorRaw(zn, Int8, []int64{channels}, make([]byte, channels)))
	qw.node("DequantizeLinear", []string{qn, sn, zn}, dn, intA("axis", int64(axis)))
	nn.Inputs[1] = dn
	if len(n.Inputs) <= 2 || inScale == 0 {
		return false, nil
	}
	bt := a.inits[n.Inputs[2]]
	if bt == nil || len(bt.Dims) != 1 || bt.Dims[0] != channels {
		return false, nil
	}
	b, err := bt.Floats()
	if err != nil {
		return false, fmt.Errorf("onnxgraph: quantize %s bias: %w", n.Name, err)
	}
	if shift := biasShift(n, w, q, scales, wt.Dims, axis, means); shift != nil {
		for c := range b {
			b[c] -= float32(shift[c])
		}
	}
	bq, bs := make([]int32, len(b)), make([]float32, len(b))
	for c, v := range b {
		bs[c] = inScale * scales[c]
		bq[c] = int32(max(math.MinInt32, min(math.MaxInt32, math.Round(float64(v)/float64(bs[c])))))
	}
	bqn, bsn, bzn, bdn := qw.name(bt.Name+"_quantized"), qw.name(bt.Name+"_scale"), qw.name(bt.Name+"_zero_point"), qw.name(bt.Name+"_dequantized")
	qw.inits = append(qw.inits, newTensorInt32s(bqn, bt.Dims, bq), newTensorFloats(bsn, []int64{channels}, bs),
		newTensorInt32s(bzn, []int64{channels}, make([]int32, channels)))
	qw.node("DequantizeLinear", []string{bqn, bsn, bzn}, bdn, intA("axis", 0))
	nn.Inputs[2] = bdn
	return true, nil
}

// biasShift is, per output channel, the mean change of n's output that
// rounding its weight w to q×scales causes on inputs whose channel means
// are means: Σ (dequantized - float weight) × the mean of the input
// channel the weight reads. Without the correction the rounding error's
// mean part (large after a Relu, whose outputs are all ≥ 0) adds up layer
// after layer. Nil where means does not fit the weight (grouped Conv, no
// means).
func biasShift(n *Node, w []float32, q []byte, scales []float32, dims []int64, axis int, means []float32) []float64 {
	// Conv [M,C,kh,kw] and transposed Gemm [N,K]: the input channel is axis
	// 1; MatMul and plain Gemm [K,N]: axis 0.
	inAxis := 1
	if axis == 1 {
		inAxis = 0
	}
	if len(means) == 0 || int64(len(means)) != dims[inAxis] || (n.OpType == "Conv" && n.attrInt("group", 1) != 1) {
		return nil
	}
	outCh, inCh := int(dims[axis]), int(dims[inAxis])
	outInner, inInner := 1, 1
	for _, d := range dims[axis+1:] {
		outInner *= int(d)
	}
	for _, d := range dims[inAxis+1:] {
		inInner *= int(d)
	}
	shift := make([]float64, outCh)
	for i, v := range w {
		o, c := (i/outInner)%outCh, (i/inInner)%inCh
		d := float64(int8(q[i]))*float64(scales[o]) - float64(v)
		shift[o] += d * float64(means[c])
	}
	return shift
}

// QuantizeDynamic returns a copy of m whose Gemm and MatMul nodes with a
// float weight initializer (the Linear layers) compute in int8 as ONNX
// Runtime's quantize_dynamic does: DynamicQuantizeLinear of the input
// (uint8, range measured per run), MatMulInteger with the weight as
// symmetric per-column int8 [K, N], then the product of the scales and the
// bias in float. Convolutions stay float. Tensor names are kept.
func (m *Model) QuantizeDynamic(o QuantOptions) (*Model, error) {
	a, qw, err := m.startQuantize(11, "dynamic quantization", o)
	if err != nil {
		return nil, err
	}
	g := m.Graph
	replaced := map[string]bool{}
	for _, i := range a.order {
		n := g.Nodes[i]
		if n.OpType == "Conv" || !quantizable(a, n) || len(n.Outputs) != 1 {
			qw.nodes = append(qw.nodes, n)
			continue
		}
		wt := a.inits[input(n, 1)]
		w, err := wt.Floats()
		if err != nil {
			return nil, fmt.Errorf("onnxgraph: quantize %s: %w", n.Name, err)
		}
		k, cols := wt.Dims[0], wt.Dims[1]
		if n.OpType == "Gemm" && n.attrInt("transB", 0) != 0 {
			// MatMulInteger wants [K, N].
			k, cols = cols, k
			tw := make([]float32, len(w))
			for r := range cols {
				for c := range k {
					tw[c*cols+r] = w[r*k+c]
				}
			}
			w = tw
		}
		dims := []int64{k, cols}
		q, scales := quantizeWeights(w, dims, 1, qw.qmax)
		base := n.Outputs[0]
		qn, sn, zn := qw.name(wt.Name+"_quantized"), qw.name(wt.Name+"_scale"), qw.name(wt.Name+"_zero_point")
		qw.inits = append(qw.inits, newTensorRaw(qn, Int8, dims, q), newTensorFloats(sn, []int64{cols}, scales),
			newTensorRaw(zn, Int8, []int64{cols}, make([]byte, cols)))
		xq, xs, xz := qw.name(base+"_input_quantized"), qw.name(base+"_input_scale"), qw.name(base+"_input_zero_point")
		qw.nodes = append(qw.nodes, &Node{Name: qw.name(base + "_quantize_input"), OpType: "DynamicQuantizeLinear",
			Inputs: []string{input(n, 0)}, Outputs: []string{xq, xs, xz}})
		yi, yf, s := qw.name(base+"_int32"), qw.name(base+"_float"), qw.name(base+"_scale")
		qw.node("MatMulInteger", []string{xq, qn, xz, zn}, yi)
		qw.node("Cast", []string{yi}, yf, intA("to", int64(Float)))
		qw.node("Mul", []string{xs, sn}, s)
		replaced[wt.Name] = true
		if len(n.Inputs) > 2 && n.Inputs[2] != "" {
			y0 := qw.name(base + "_unbiased")
			qw.node("Mul", []string{yf, s}, y0)
			qw.node("Add", []string{y0, n.Inputs[2]}, base)
		} else {
			qw.node("Mul", []string{yf, s}, base)
		}
	}
	return m.withQuantized(qw, replaced), nil
}
