package onnxgraph

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// BatchDim is the symbolic name Cut gives the batch dimension.
const BatchDim = "N"

// Cut returns the encoded model whose only output is layer: a candidate
// layer name from Inspect (fc6, fc7, pool5, avgpool, ...) or a raw tensor
// name. See CutModel for what changes.
func (m *Model) Cut(layer string) (out []byte, l Layer, err error) {
	cm, l, err := m.CutModel(layer, CutOptions{})
	if err != nil {
		return nil, Layer{}, err
	}
	out, err = cm.Bytes()
	return out, l, err
}

// CutTo is Cut writing to w, without holding the result in memory.
func (m *Model) CutTo(w io.Writer, layer string) (Layer, error) {
	cm, l, err := m.CutModel(layer, CutOptions{})
	if err != nil {
		return Layer{}, err
	}
	_, err = cm.WriteTo(w)
	return l, err
}

// Pooling of a token output [N, T, D] (ViT/DINOv2 last_hidden_state).
const (
	PoolCLS  = "cls"  // the first token: Gather index 0 on axis 1
	PoolMean = "mean" // the mean over tokens: ReduceMean on axis 1
)

// ErrTokenOutput is wrapped when a [N, T, D] tensor is cut without a pooling.
var ErrTokenOutput = errors.New("token output needs a pooling")

// CutOptions are CutModel's choices beyond the layer.
type CutOptions struct {
	// Pool reduces a [N, T, D] token tensor to [N, D]: PoolCLS or PoolMean.
	// Required for such a tensor; refused for any other rank.
	Pool string
}

// CutModel returns a model that computes only layer and outputs it as a
// float tensor [N, dim]; it shares data with m and leaves m unchanged.
//
// Nodes the layer does not depend on are dropped, then initializers, graph
// inputs and value_info entries nothing uses any more. A layer of rank other
// than 2 (pool5) is flattened by an added Flatten node. The image inputs'
// batch dimension becomes symbolic (BatchDim); Reshape nodes with a constant
// shape that fixes the batch to 1 are rewritten to copy it (0), or infer it
// (-1) where allowzero is set. IR version, opset imports and every other
// top-level field are kept as they were.
func (m *Model) CutModel(layer string, o CutOptions) (*Model, Layer, error) {
	g := m.Graph
	a := analyse(g)
	target, ok := a.resolve(layer)
	if !ok {
		return nil, Layer{}, a.noSuchLayer(layer)
	}
	shape := a.shapes[target.Tensor]
	switch {
	case o.Pool != "" && o.Pool != PoolCLS && o.Pool != PoolMean:
		return nil, Layer{}, fmt.Errorf("onnxgraph: cut %q: unknown pooling %q (want %s or %s)", layer, o.Pool, PoolCLS, PoolMean)
	case len(shape) == 3 && o.Pool == "":
		return nil, Layer{}, fmt.Errorf("onnxgraph: cut %q: tensor %q is a token output %s [N, tokens, dim]; choose a pooling: %s (the first token) or %s (the token mean): %w",
			layer, target.Tensor, fmtShape(shape), PoolCLS, PoolMean, ErrTokenOutput)
	case len(shape) != 3 && o.Pool != "":
		return nil, Layer{}, fmt.Errorf("onnxgraph: cut %q: pooling %q applies to token outputs [N, tokens, dim]; tensor %q has shape %s",
			layer, o.Pool, target.Tensor, fmtShape(shape))
	}

	// Image inputs: graph inputs that are not initializers. Fix their batch.
	nodes := append([]*Node(nil), g.Nodes...)
	var inits []*Tensor
	var newInputs []*ValueInfo
	batchWasFixed := false
	imageInputs := map[string]*ValueInfo{}
	for _, v := range g.Inputs {
		if a.inits[v.Name] != nil {
			continue
		}
		nv := v
		if len(v.Shape) > 0 && v.Shape[0].Param != BatchDim {
			if v.Shape[0].Param == "" {
				batchWasFixed = true
			}
			nv = &ValueInfo{Name: v.Name, ElemType: v.ElemType, Shape: append([]Dim{{Param: BatchDim, Value: -1}}, v.Shape[1:]...), extra: v.extra}
		}
		imageInputs[v.Name] = nv
	}

	// Reshapes that pin the batch to 1.
	used := usedNames(g)
	if batchWasFixed {
		for i, n := range nodes {
			fixed, ok := a.batchReshape(n)
			if !ok {
				continue
			}
			name := uniqueName(used, n.Inputs[1]+"_dynbatch")
			t := newTensorInt64(name, []int64{int64(len(fixed))}, fixed)
			inits = append(inits, t)
			if m.IRVersion < 4 { // old IR: every initializer is also a graph input
				newInputs = append(newInputs, &ValueInfo{Name: name, ElemType: Int64, Shape: []Dim{{Value: int64(len(fixed))}}})
			}
			c := *n
			c.raw = nil
			c.Inputs = append([]string(nil), n.Inputs...)
			c.Inputs[1] = name
			nodes[i] = &c
		}
	}

	// Pool a token output; flatten a layer that is not [N, dim].
	outName := target.Tensor
	if len(shape) == 3 {
		outName = uniqueName(used, target.Tensor+"_"+o.Pool)
		var n *Node
		if o.Pool == PoolCLS {
			idx := uniqueName(used, "imgvec_cls_index")
			inits = append(inits, newTensorInt64(idx, nil, []int64{0}))
			n = &Node{OpType: "Gather", Inputs: []string{target.Tensor, idx}, Attrs: []*Attr{{Name: "axis", Type: AttrInt, I: 1}}}
		} else {
			n = &Node{OpType: "ReduceMean", Inputs: []string{target.Tensor}, Attrs: []*Attr{{Name: "keepdims", Type: AttrInt, I: 0}}}
			if m.defaultOpset() >= 18 { // axes became an input in opset 18
				axes := uniqueName(used, "imgvec_token_axis")
				inits = append(inits, newTensorInt64(axes, []int64{1}, []int64{1}))
				n.Inputs = append(n.Inputs, axes)
			} else {
				n.Attrs = append(n.Attrs, &Attr{Name: "axes", Type: AttrInts, Ints: []int64{1}})
			}
		}
		n.Name, n.Outputs = uniqueName(used, "imgvec_pool_"+o.Pool), []string{outName}
		nodes = append(nodes, n)
		target.Dim, target.Shape = int(shape[2]), []int64{-1, shape[2]}
		if shape[2] <= 0 {
			target.Dim = 0
		}
	} else if len(shape) != 2 {
		outName = uniqueName(used, target.Tensor+"_flat")
		nodes = append(nodes, &Node{
			Name: uniqueName(used, "imgvec_flatten"), OpType: "Flatten",
			Inputs: []string{target.Tensor}, Outputs: []string{outName},
			Attrs: []*Attr{{Name: "axis", Type: AttrInt, I: 1}},
		})
	}

	// Backward reachability from the output.
	producer := map[string]int{}
	for i, n := range nodes {
		for _, o := range n.Outputs {
			if o != "" {
				producer[o] = i
			}
		}
	}
	keep := make([]bool, len(nodes))
	need := map[string]bool{}
	stack := []string{outName}
	for len(stack) > 0 {
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if need[t] {
			continue
		}
		need[t] = true
		if p, ok := producer[t]; ok && !keep[p] {
			keep[p] = true
			for _, in := range nodes[p].Inputs {
				if in != "" && !need[in] {
					stack = append(stack, in)
				}
			}
		}
	}

	g2 := &Graph{Name: g.Name, other: g.other}
	produced := map[string]bool{}
	for i, n := range nodes {
		if keep[i] {
			g2.Nodes = append(g2.Nodes, n)
			for _, o := range n.Outputs {
				produced[o] = true
			}
		}
	}
	for _, t := range append(append([]*Tensor(nil), g.Initializers...), inits...) {
		if need[t.Name] {
			g2.Initializers = append(g2.Initializers, t)
		}
	}
	hasImage := false
	for _, v := range append(append([]*ValueInfo(nil), g.Inputs...), newInputs...) {
		if !need[v.Name] {
			continue
		}
		if nv, ok := imageInputs[v.Name]; ok {
			v = nv
			hasImage = true
		}
		g2.Inputs = append(g2.Inputs, v)
	}
	if !hasImage {
		return nil, Layer{}, fmt.Errorf("onnxgraph: cut %q: tensor %q does not depend on any graph input", layer, target.Tensor)
	}
	for _, v := range g.ValueInfo {
		if !produced[v.Name] || v.Name == outName {
			continue
		}
		if batchWasFixed && len(v.Shape) > 0 && v.Shape[0].Param == "" {
			continue // its batch of 1 is stale now
		}
		g2.ValueInfo = append(g2.ValueInfo, v)
	}
	dim := Dim{Value: -1}
	if target.Dim > 0 {
		dim = Dim{Value: int64(target.Dim)}
	}
	g2.Outputs = []*ValueInfo{{Name: outName, ElemType: Float, Shape: []Dim{{Param: BatchDim, Value: -1}, dim}}}

	l := target
	l.Tensor = outName
	l.Pool = o.Pool
	l.Shape = []int64{-1, dim.Value}
	return &Model{IRVersion: m.IRVersion, ProducerName: m.ProducerName, Opsets: m.Opsets, Graph: g2, fields: m.fields}, l, nil
}

// batchReshape reports whether n is a Reshape of an activation with batch 1
// to a constant shape that starts with 1, and the shape to use instead.
func (a *analysis) batchReshape(n *Node) ([]int64, bool) {
	if n.OpType != "Reshape" || len(n.Inputs) < 2 {
		return nil, false
	}
	if a.consts[n.Inputs[0]] != nil {
		return nil, false
	}
	x := a.shapes[n.Inputs[0]]
	t := a.consts[n.Inputs[1]]
	if t == nil || len(x) == 0 || x[0] != 1 {
		return nil, false
	}
	vals, err := t.Int64s()
	if err != nil || len(vals) < 2 || vals[0] != 1 {
		return nil, false
	}
	fixed := append([]int64(nil), vals...)
	if n.attrInt("allowzero", 0) == 0 {
		fixed[0] = 0
		return fixed, true
	}
	for _, v := range vals[1:] {
		if v == -1 {
			return nil, false
		}
	}
	fixed[0] = -1
	return fixed, true
}

func usedNames(g *Graph) map[string]bool {
	u := map[string]bool{}
	for _, n := range g.Nodes {
		u[n.Name] = true
		for _, s := range n.Inputs {
			u[s] = true
		}
		for _, s := range n.Outputs {
			u[s] = true
		}
	}
	for _, t := range g.Initializers {
		u[t.Name] = true
	}
	for _, vs := range [][]*ValueInfo{g.Inputs, g.Outputs, g.ValueInfo} {
		for _, v := range vs {
			u[v.Name] = true
		}
	}
	return u
}

func uniqueName(used map[string]bool, base string) string {
	name := base
	for i := 1; used[name]; i++ {
		name = fmt.Sprintf("%s_%d", base, i)
	}
	used[name] = true
	return name
}

// LayerNames lists the candidate layer names of a report, sorted.
func (r Report) LayerNames() []string {
	var s []string
	for _, l := range r.Layers {
		s = append(s, l.Name)
	}
	sort.Strings(s)
	return s
}

// defaultOpset is the model's opset version of the default ONNX domain.
func (m *Model) defaultOpset() int64 {
	for _, o := range m.Opsets {
		if o.Domain == "" || o.Domain == "ai.onnx" {
			return o.Version
		}
	}
	return 0
}

func fmtShape(s []int64) string {
	if s == nil {
		return "[unknown]"
	}
	ds := make([]string, len(s))
	for i, d := range s {
		ds[i] = "?"
		if d >= 0 {
			ds[i] = fmt.Sprint(d)
		}
	}
	return "[" + strings.Join(ds, ",") + "]"
}
