package onnxgraph

import (
	"fmt"
	"strings"
)

// Value describes a graph input or output.
type Value struct {
	Name     string
	ElemType string // "float", "int64", ...
	Shape    []Dim  // nil when the model does not say
}

func (v Value) String() string {
	ds := make([]string, len(v.Shape))
	for i, d := range v.Shape {
		ds[i] = d.String()
	}
	return fmt.Sprintf("%s %s [%s]", v.Name, v.ElemType, strings.Join(ds, ","))
}

// Layer is a candidate feature layer found in the graph.
type Layer struct {
	Name   string  // fc6, fc7, fc8 (fc9...), pool5, avgpool
	Tensor string  // graph tensor that holds the layer's output
	Op     string  // op that computes the layer: Gemm, MatMul, MaxPool, GlobalAveragePool
	Dim    int     // features per image (product of Shape[1:]); 0 when unknown
	Shape  []int64 // shape with the batch dim as -1; unknown dims are -1 too
	Pool   string  // how a token output was pooled (CutModel); "" otherwise
}

// Report is what Inspect finds in a model.
type Report struct {
	IRVersion    int64
	Producer     string
	Opsets       []Opset
	Inputs       []Value // graph inputs that are not initializers (the image input)
	Outputs      []Value
	Layers       []Layer // candidate feature layers, in graph order
	Nodes        int
	Initializers int
	WeightInputs int // initializers that are also listed as graph inputs (old exporters)
}

// Layer returns the candidate layer with the given name (case-insensitive).
func (r Report) Layer(name string) (Layer, bool) {
	for _, l := range r.Layers {
		if strings.EqualFold(l.Name, name) {
			return l, true
		}
	}
	return Layer{}, false
}

// analysis holds the indexes that Inspect and Cut share.
type analysis struct {
	g         *Graph
	producer  map[string]int   // tensor -> node index
	consumers map[string][]int // tensor -> node indexes
	inits     map[string]*Tensor
	consts    map[string]*Tensor // initializers and Constant outputs
	order     []int              // node indexes in topological order
	pos       map[int]int        // node index -> position in order
	shapes    map[string][]int64 // inferred shapes; -1 = unknown or symbolic
}

func analyse(g *Graph) *analysis {
	a := &analysis{
		g:         g,
		producer:  map[string]int{},
		consumers: map[string][]int{},
		inits:     map[string]*Tensor{},
		consts:    map[string]*Tensor{},
		pos:       map[int]int{},
		shapes:    map[string][]int64{},
	}
	for _, t := range g.Initializers {
		a.inits[t.Name] = t
		a.consts[t.Name] = t
	}
	for i, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o != "" {
				a.producer[o] = i
			}
		}
		for _, in := range n.Inputs {
			if in != "" {
				a.consumers[in] = append(a.consumers[in], i)
			}
		}
		if n.OpType == "Constant" && len(n.Outputs) == 1 {
			if at := n.Attr("value"); at != nil && at.T != nil {
				a.consts[n.Outputs[0]] = at.T
			}
		}
		// A quantized weight (QuantizeStatic) is a constant of its shape.
		if n.OpType == "DequantizeLinear" && len(n.Outputs) == 1 {
			if t := a.inits[input(n, 0)]; t != nil {
				a.consts[n.Outputs[0]] = t
			}
		}
	}
	a.order = a.topo()
	for p, i := range a.order {
		a.pos[i] = p
	}
	a.inferShapes()
	return a
}

// topo sorts the nodes (Kahn); nodes in a cycle keep their file order.
func (a *analysis) topo() []int {
	nodes := a.g.Nodes
	indeg := make([]int, len(nodes))
	for i, n := range nodes {
		for _, in := range n.Inputs {
			if p, ok := a.producer[in]; ok && p != i {
				indeg[i]++
			}
		}
	}
	var order, queue []int
	for i := range nodes {
		if indeg[i] == 0 {
			queue = append(queue, i)
		}
	}
	done := make([]bool, len(nodes))
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		done[i] = true
		order = append(order, i)
		for _, o := range nodes[i].Outputs {
			for _, c := range a.consumers[o] {
				if c == i {
					continue
				}
				indeg[c]--
				if indeg[c] == 0 {
					queue = append(queue, c)
				}
			}
		}
	}
	for i := range nodes {
		if !done[i] {
			order = append(order, i)
		}
	}
	return order
}

func dimsOf(v *ValueInfo) []int64 {
	if v.Shape == nil {
		return nil
	}
	s := make([]int64, len(v.Shape))
	for i, d := range v.Shape {
		s[i] = -1
		if d.Param == "" && d.Value >= 0 {
			s[i] = d.Value
		}
	}
	return s
}

func prod(s []int64) int64 {
	p := int64(1)
	for _, v := range s {
		if v < 0 {
			return -1
		}
		p *= v
	}
	return p
}

// inferShapes propagates shapes through the ops a feature extractor uses;
// anything else takes the shape the model declares, if any.
func (a *analysis) inferShapes() {
	declared := map[string][]int64{}
	for _, vs := range [][]*ValueInfo{a.g.ValueInfo, a.g.Outputs} {
		for _, v := range vs {
			if s := dimsOf(v); s != nil {
				declared[v.Name] = s
			}
		}
	}
	for _, v := range a.g.Inputs {
		if s := dimsOf(v); s != nil {
			a.shapes[v.Name] = s
		}
	}
	for name, t := range a.consts {
		a.shapes[name] = t.Dims
	}
	for _, i := range a.order {
		n := a.g.Nodes[i]
		if len(n.Outputs) == 0 {
			continue
		}
		s := a.inferNode(n)
		if s == nil {
			s = declared[n.Outputs[0]]
		}
		if s != nil {
			a.shapes[n.Outputs[0]] = s
		}
	}
}

func (a *analysis) in(n *Node, k int) []int64 {
	if k >= len(n.Inputs) {
		return nil
	}
	return a.shapes[n.Inputs[k]]
}

func (a *analysis) inferNode(n *Node) []int64 {
	x := a.in(n, 0)
	switch n.OpType {
	case "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Dropout", "Identity", "BatchNormalization",
		"LRN", "Softmax", "LogSoftmax", "Clip", "Elu", "Selu", "HardSigmoid", "HardSwish", "Erf",
		"Add", "Sub", "Mul", "Div", "Sqrt", "Neg", "Abs", "Exp", "Log", "Pow", "Cast", "InstanceNormalization",
		"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear":
		if x == nil {
			return nil
		}
		if y := a.in(n, 1); len(y) > len(x) {
			return nil
		}
		return x
	case "Conv":
		w := a.in(n, 1)
		if len(x) != 4 || len(w) != 4 {
			return nil
		}
		return []int64{x[0], w[0], a.window(n, x[2], w[2], 0), a.window(n, x[3], w[3], 1)}
	case "MaxPool", "AveragePool":
		k := n.attrInts("kernel_shape")
		if len(x) != 4 || len(k) != 2 {
			return nil
		}
		return []int64{x[0], x[1], a.window(n, x[2], k[0], 0), a.window(n, x[3], k[1], 1)}
	case "GlobalAveragePool", "GlobalMaxPool":
		if len(x) < 3 {
			return nil
		}
		s := []int64{x[0], x[1]}
		for range x[2:] {
			s = append(s, 1)
		}
		return s
	case "Flatten":
		if x == nil {
			return nil
		}
		axis := n.attrInt("axis", 1)
		if axis < 0 {
			axis += int64(len(x))
		}
		if axis < 0 || axis > int64(len(x)) {
			return nil
		}
		return []int64{prod(x[:axis]), prod(x[axis:])}
	case "Reshape":
		t := a.consts[input(n, 1)]
		if t == nil || x == nil {
			return nil
		}
		want, err := t.Int64s()
		if err != nil {
			return nil
		}
		out := make([]int64, len(want))
		neg := -1
		for i, v := range want {
			switch {
			case v == 0 && n.attrInt("allowzero", 0) == 0 && i < len(x):
				out[i] = x[i]
			case v == -1:
				neg = i
				out[i] = -1
			default:
				out[i] = v
			}
		}
		if neg >= 0 {
			total := prod(x)
			rest := int64(1)
			for i, v := range out {
				if i != neg {
					if v < 0 {
						rest = -1
						break
					}
					rest *= v
				}
			}
			if total > 0 && rest > 0 {
				out[neg] = total / rest
			}
		}
		return out
	case "Transpose":
		perm := n.attrInts("perm")
		if x == nil || len(perm) != len(x) {
			return nil
		}
		out := make([]int64, len(x))
		for i, p := range perm {
			if p < 0 || p >= int64(len(x)) {
				return nil
			}
			out[i] = x[p]
		}
		return out
	case "Gemm":
		w := a.in(n, 1)
		if len(x) != 2 || len(w) != 2 {
			return nil
		}
		m := x[0]
		if n.attrInt("transA", 0) != 0 {
			m = x[1]
		}
		o := w[1]
		if n.attrInt("transB", 0) != 0 {
			o = w[0]
		}
		return []int64{m, o}
	case "MatMul", "MatMulInteger":
		w := a.in(n, 1)
		if len(x) < 2 || len(w) != 2 {
			return nil
		}
		s := append([]int64{}, x[:len(x)-1]...)
		return append(s, w[1])
	}
	return nil
}

// window computes a Conv/Pool output size along spatial axis ax.
func (a *analysis) window(n *Node, in, k int64, ax int) int64 {
	if in < 0 || k < 0 {
		return -1
	}
	at := func(name string, i int, def int64) int64 {
		v := n.attrInts(name)
		if i < len(v) {
			return v[i]
		}
		return def
	}
	s := at("strides", ax, 1)
	d := at("dilations", ax, 1)
	if s <= 0 {
		return -1
	}
	switch string(attrS(n, "auto_pad")) {
	case "SAME_UPPER", "SAME_LOWER":
		return (in + s - 1) / s
	case "VALID":
		return (in-((k-1)*d+1))/s + 1
	}
	p := at("pads", ax, 0) + at("pads", ax+2, 0)
	span := in + p - ((k-1)*d + 1)
	if span < 0 {
		return -1
	}
	if n.attrInt("ceil_mode", 0) != 0 {
		return (span+s-1)/s + 1
	}
	return span/s + 1
}

func attrS(n *Node, name string) []byte {
	if a := n.Attr(name); a != nil {
		return a.S
	}
	return nil
}

func input(n *Node, k int) string {
	if k < len(n.Inputs) {
		return n.Inputs[k]
	}
	return ""
}

// fc is a fully connected layer found in the graph.
type fc struct {
	node   int    // the Gemm or MatMul
	out    string // FC output (after the bias Add for MatMul)
	tensor string // Relu output if one follows, else out
	dim    int64
}

func (a *analysis) fcs() []fc {
	var r []fc
	for _, i := range a.order {
		n := a.g.Nodes[i]
		var f fc
		switch n.OpType {
		case "Gemm":
			w := a.consts[input(n, 1)]
			if w == nil || len(w.Dims) != 2 || len(n.Outputs) == 0 || n.attrInt("transA", 0) != 0 {
				continue
			}
			f = fc{node: i, out: n.Outputs[0], dim: w.Dims[1]}
			if n.attrInt("transB", 0) != 0 {
				f.dim = w.Dims[0]
			}
		case "MatMul":
			w := a.consts[input(n, 1)]
			if w == nil || len(w.Dims) != 2 || len(n.Outputs) == 0 {
				continue
			}
			f = fc{node: i, out: n.Outputs[0], dim: w.Dims[1]}
			if cs := a.consumers[f.out]; len(cs) == 1 {
				c := a.g.Nodes[cs[0]]
				other := input(c, 1)
				if other == f.out {
					other = input(c, 0)
				}
				if c.OpType == "Add" && a.consts[other] != nil && len(c.Outputs) > 0 {
					f.out = c.Outputs[0]
				}
			}
		default:
			continue
		}
		f.tensor = f.out
		t := f.out
	follow:
		for step := 0; step < 4; step++ {
			cs := a.consumers[t]
			for _, c := range cs {
				if cn := a.g.Nodes[c]; cn.OpType == "Relu" && len(cn.Outputs) > 0 {
					f.tensor = cn.Outputs[0]
					break follow
				}
			}
			if len(cs) != 1 {
				break
			}
			cn := a.g.Nodes[cs[0]]
			if (cn.OpType != "Dropout" && cn.OpType != "Identity") || len(cn.Outputs) == 0 {
				break
			}
			t = cn.Outputs[0]
		}
		// A float16 model (Float16) casts its output back to float: the
		// layer is the cast.
		if cs := a.consumers[f.tensor]; len(cs) == 1 {
			if c := a.g.Nodes[cs[0]]; c.OpType == "Cast" && c.attrInt("to", 0) == int64(Float) && len(c.Outputs) == 1 {
				f.tensor = c.Outputs[0]
			}
		}
		r = append(r, f)
	}
	return r
}

func (a *analysis) layers() []Layer {
	var ls []Layer
	fcs := a.fcs()
	firstFC := len(a.order)
	if len(fcs) > 0 {
		firstFC = a.pos[fcs[0].node]
	}
	// pool5: the last MaxPool before the first FC.
	for p := firstFC - 1; p >= 0; p-- {
		n := a.g.Nodes[a.order[p]]
		if n.OpType == "MaxPool" && len(n.Outputs) > 0 {
			ls = append(ls, a.layer("pool5", n.Outputs[0], n.OpType))
			break
		}
	}
	// avgpool: the last global average pool, through a Flatten/Reshape.
	for p := len(a.order) - 1; p >= 0; p-- {
		n := a.g.Nodes[a.order[p]]
		if n.OpType != "GlobalAveragePool" || len(n.Outputs) == 0 {
			continue
		}
		t := n.Outputs[0]
		if cs := a.consumers[t]; len(cs) == 1 {
			if c := a.g.Nodes[cs[0]]; (c.OpType == "Flatten" || c.OpType == "Reshape" || c.OpType == "Squeeze") && len(c.Outputs) > 0 {
				t = c.Outputs[0]
			}
		}
		ls = append(ls, a.layer("avgpool", t, n.OpType))
		break
	}
	for k, f := range fcs {
		l := a.layer(fmt.Sprintf("fc%d", 6+k), f.tensor, a.g.Nodes[f.node].OpType)
		if l.Dim == 0 || len(l.Shape) != 2 {
			l.Shape, l.Dim = []int64{-1, f.dim}, int(f.dim)
		}
		ls = append(ls, l)
	}
	return ls
}

func (a *analysis) layer(name, tensor, op string) Layer {
	l := Layer{Name: name, Tensor: tensor, Op: op}
	if s := a.shapes[tensor]; len(s) > 0 {
		l.Shape = append([]int64{-1}, s[1:]...)
		if d := prod(s[1:]); d > 0 {
			l.Dim = int(d)
		}
	}
	return l
}

func valueOf(v *ValueInfo) Value {
	return Value{Name: v.Name, ElemType: ElemTypeName(v.ElemType), Shape: v.Shape}
}

// Inspect reports the model's inputs, outputs and candidate feature layers.
func (m *Model) Inspect() Report {
	g := m.Graph
	a := analyse(g)
	r := Report{
		IRVersion:    m.IRVersion,
		Producer:     m.ProducerName,
		Opsets:       m.Opsets,
		Nodes:        len(g.Nodes),
		Initializers: len(g.Initializers),
		Layers:       a.layers(),
	}
	for _, v := range g.Inputs {
		if a.inits[v.Name] != nil {
			r.WeightInputs++
			continue
		}
		r.Inputs = append(r.Inputs, valueOf(v))
	}
	for _, v := range g.Outputs {
		r.Outputs = append(r.Outputs, valueOf(v))
	}
	return r
}
