package onnxgraph

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Errors that Parse wraps, for errors.Is.
var (
	ErrNotONNX     = errors.New("not an ONNX model")
	ErrTruncated   = errors.New("truncated ONNX model")
	ErrNoSuchLayer = errors.New("no such layer or tensor")
)

// ONNX TensorProto.DataType values used here.
const (
	Float    int32 = 1
	Uint8    int32 = 2
	Int8     int32 = 3
	Int32    int32 = 6
	Int64    int32 = 7
	String   int32 = 8
	Bool     int32 = 9
	Float16  int32 = 10
	Double   int32 = 11
	BFloat16 int32 = 16
)

// ElemTypeName names an ONNX tensor element type ("float", "int64", ...).
func ElemTypeName(t int32) string {
	names := map[int32]string{0: "undefined", 1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16",
		6: "int32", 7: "int64", 8: "string", 9: "bool", 10: "float16", 11: "double", 12: "uint32",
		13: "uint64", 14: "complex64", 15: "complex128", 16: "bfloat16"}
	if s, ok := names[t]; ok {
		return s
	}
	return fmt.Sprintf("type(%d)", t)
}

// Model is a parsed ONNX ModelProto. Fields this package does not model are
// kept as the raw bytes they were read from and written back unchanged;
// initializer data stays a slice of the input given to Parse, so that input
// must not be modified while the Model is in use.
type Model struct {
	IRVersion    int64
	ProducerName string
	Opsets       []Opset
	Graph        *Graph

	fields []field // all top-level fields in input order; field 7 is re-encoded from Graph
}

// Opset is one opset import.
type Opset struct {
	Domain  string // "" or "ai.onnx" for the default domain
	Version int64
}

// Graph is a parsed GraphProto.
type Graph struct {
	Name         string
	Nodes        []*Node
	Initializers []*Tensor
	Inputs       []*ValueInfo
	Outputs      []*ValueInfo
	ValueInfo    []*ValueInfo

	other []field // doc_string, sparse initializers, annotations... kept raw
}

// Node is a parsed NodeProto.
type Node struct {
	Name    string
	OpType  string
	Domain  string
	Inputs  []string
	Outputs []string
	Attrs   []*Attr

	raw   []byte  // NodeProto payload as read; nil once built or changed
	extra []field // doc_string and other fields not modelled
}

// AttrType values of AttributeProto.type.
const (
	AttrFloat   int32 = 1
	AttrInt     int32 = 2
	AttrString  int32 = 3
	AttrTensor  int32 = 4
	AttrGraph   int32 = 5
	AttrFloats  int32 = 6
	AttrInts    int32 = 7
	AttrStrings int32 = 8
)

// Attr is a parsed AttributeProto. Graph-valued and other exotic attributes
// keep only their raw bytes.
type Attr struct {
	Name   string
	Type   int32
	F      float32
	I      int64
	S      []byte
	Floats []float32
	Ints   []int64
	T      *Tensor

	raw []byte // AttributeProto payload as read; nil when built
}

// Tensor is a parsed TensorProto: its name, type and dims are decoded, its
// data stays the raw bytes of the input.
type Tensor struct {
	Name     string
	DataType int32
	Dims     []int64

	raw      []byte  // TensorProto payload as read
	fields   []field // its fields, for data access
	external bool    // data_location == EXTERNAL

	// generated tensors (VGG19): raw_data produced while writing
	genN int
	gen  func(w io.Writer) error
}

// Dim is one dimension of a tensor shape: a value, a symbolic name, or
// unknown (Value < 0 and Param == "").
type Dim struct {
	Value int64
	Param string
}

func (d Dim) String() string {
	switch {
	case d.Param != "":
		return d.Param
	case d.Value >= 0:
		return fmt.Sprint(d.Value)
	}
	return "?"
}

// ValueInfo is a parsed ValueInfoProto of a tensor.
type ValueInfo struct {
	Name     string
	ElemType int32 // 0 when the type is not a tensor
	Shape    []Dim // nil when the shape is not given

	raw   []byte  // payload as read; nil once built or changed
	extra []field // doc_string and other fields not modelled
}

// NumElements is the product of the tensor's dims, or -1 when a dim is
// negative or the product overflows.
func (t *Tensor) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		if d < 0 || (d > 0 && n > math.MaxInt64/8/d) {
			return -1
		}
		n *= d
	}
	return n
}

// Parse decodes an ONNX model. It returns an error wrapping ErrNotONNX or
// ErrTruncated when data is not a well-formed ONNX ModelProto. data is
// referenced, not copied, by the returned Model.
func Parse(data []byte) (*Model, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("onnxgraph: empty input: %w", ErrNotONNX)
	}
	if hint := sniff(data); hint != "" {
		return nil, fmt.Errorf("onnxgraph: input is %s: %w", hint, ErrNotONNX)
	}
	fs, err := parseFields(data, "onnxgraph: model", 0)
	if err != nil {
		return nil, err
	}
	m := &Model{fields: fs}
	var graphField *field
	for i := range fs {
		f := fs[i]
		switch f.num {
		case 1: // ir_version
			if err := wantVarint(f, "onnxgraph: model ir_version"); err != nil {
				return nil, err
			}
			m.IRVersion = int64(f.v)
		case 2:
			if err := wantBytes(f, "onnxgraph: model producer_name"); err != nil {
				return nil, err
			}
			m.ProducerName = string(f.b)
		case 7:
			if err := wantBytes(f, "onnxgraph: model graph"); err != nil {
				return nil, err
			}
			graphField = &fs[i]
		case 8:
			if err := wantBytes(f, "onnxgraph: model opset_import"); err != nil {
				return nil, err
			}
			op, err := parseOpset(f.b)
			if err != nil {
				return nil, err
			}
			m.Opsets = append(m.Opsets, op)
		}
	}
	if graphField == nil {
		return nil, fmt.Errorf("onnxgraph: no graph in input (%d bytes, %d top-level fields): %w", len(data), len(fs), ErrNotONNX)
	}
	if m.IRVersion <= 0 || m.IRVersion > 100 {
		return nil, fmt.Errorf("onnxgraph: implausible ir_version %d: %w", m.IRVersion, ErrNotONNX)
	}
	g, err := parseGraph(graphField.b)
	if err != nil {
		return nil, err
	}
	m.Graph = g
	return m, nil
}

// sniff recognises common wrong inputs so the error can say what they are.
func sniff(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("version https://git-lfs")):
		return "a Git LFS pointer file, not the model it points to"
	case bytes.HasPrefix(b, []byte("# xet version")):
		return "a Xet pointer file, not the model it points to"
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return "gzip data (unpack the archive first)"
	case bytes.HasPrefix(b, []byte("PK\x03\x04")):
		return "a zip archive"
	case bytes.HasPrefix(b, []byte("\x89PNG")), bytes.HasPrefix(b, []byte{0xff, 0xd8, 0xff}):
		return "an image"
	case bytes.HasPrefix(bytes.TrimLeft(b[:min(len(b), 64)], " \t\r\n"), []byte("<")):
		return "HTML or XML text"
	}
	return ""
}

func parseOpset(b []byte) (Opset, error) {
	fs, err := parseFields(b, "onnxgraph: opset_import", 0)
	if err != nil {
		return Opset{}, err
	}
	var o Opset
	for _, f := range fs {
		switch f.num {
		case 1:
			if err := wantBytes(f, "onnxgraph: opset_import domain"); err != nil {
				return o, err
			}
			o.Domain = string(f.b)
		case 2:
			if err := wantVarint(f, "onnxgraph: opset_import version"); err != nil {
				return o, err
			}
			o.Version = int64(f.v)
		}
	}
	return o, nil
}

func parseGraph(b []byte) (*Graph, error) {
	fs, err := parseFields(b, "onnxgraph: graph", 0)
	if err != nil {
		return nil, err
	}
	g := &Graph{}
	for _, f := range fs {
		switch f.num {
		case 1, 5, 11, 12, 13, 2:
			if err := wantBytes(f, "onnxgraph: graph"); err != nil {
				return nil, err
			}
		}
		switch f.num {
		case 1:
			n, err := parseNode(f.b)
			if err != nil {
				return nil, fmt.Errorf("onnxgraph: node %d: %w", len(g.Nodes), err)
			}
			g.Nodes = append(g.Nodes, n)
		case 2:
			g.Name = string(f.b)
		case 5:
			t, err := parseTensor(f.b)
			if err != nil {
				return nil, fmt.Errorf("onnxgraph: initializer %d: %w", len(g.Initializers), err)
			}
			g.Initializers = append(g.Initializers, t)
		case 11, 12, 13:
			v, err := parseValueInfo(f.b)
			if err != nil {
				return nil, fmt.Errorf("onnxgraph: graph value info: %w", err)
			}
			switch f.num {
			case 11:
				g.Inputs = append(g.Inputs, v)
			case 12:
				g.Outputs = append(g.Outputs, v)
			default:
				g.ValueInfo = append(g.ValueInfo, v)
			}
		default:
			g.other = append(g.other, f)
		}
	}
	return g, nil
}

func parseNode(b []byte) (*Node, error) {
	fs, err := parseFields(b, "node", 0)
	if err != nil {
		return nil, err
	}
	n := &Node{raw: b}
	for _, f := range fs {
		switch f.num {
		case 1, 2, 3, 4, 5, 7:
			if err := wantBytes(f, "node"); err != nil {
				return nil, err
			}
		}
		switch f.num {
		case 1:
			n.Inputs = append(n.Inputs, string(f.b))
		case 2:
			n.Outputs = append(n.Outputs, string(f.b))
		case 3:
			n.Name = string(f.b)
		case 4:
			n.OpType = string(f.b)
		case 5:
			a, err := parseAttr(f.b)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %w", n.OpType, n.Name, err)
			}
			n.Attrs = append(n.Attrs, a)
		case 7:
			n.Domain = string(f.b)
		default:
			n.extra = append(n.extra, f)
		}
	}
	return n, nil
}

func parseAttr(b []byte) (*Attr, error) {
	fs, err := parseFields(b, "attribute", 0)
	if err != nil {
		return nil, err
	}
	a := &Attr{raw: b}
	for _, f := range fs {
		var err error
		switch f.num {
		case 1:
			err = wantBytes(f, "attribute name")
			a.Name = string(f.b)
		case 20:
			err = wantVarint(f, "attribute type")
			a.Type = int32(f.v)
		case 2:
			if f.typ != protowire.Fixed32Type {
				err = fmt.Errorf("attribute %q: f has wire type %d: %w", a.Name, f.typ, ErrNotONNX)
			}
			a.F = math.Float32frombits(uint32(f.v))
		case 3:
			err = wantVarint(f, "attribute i")
			a.I = int64(f.v)
		case 4:
			err = wantBytes(f, "attribute s")
			a.S = f.b
		case 5:
			if err = wantBytes(f, "attribute t"); err == nil {
				a.T, err = parseTensor(f.b)
			}
		case 7:
			a.Floats, err = appendFloats(a.Floats, f, "attribute floats")
		case 8:
			a.Ints, err = appendInt64s(a.Ints, f, "attribute ints")
		}
		if err != nil {
			return nil, err
		}
	}
	return a, nil
}

func parseTensor(b []byte) (*Tensor, error) {
	fs, err := parseFields(b, "tensor", 0)
	if err != nil {
		return nil, err
	}
	t := &Tensor{raw: b, fields: fs}
	for _, f := range fs {
		var err error
		switch f.num {
		case 1:
			t.Dims, err = appendInt64s(t.Dims, f, "tensor dims")
		case 2:
			err = wantVarint(f, "tensor data_type")
			t.DataType = int32(f.v)
		case 8:
			err = wantBytes(f, "tensor name")
			t.Name = string(f.b)
		case 14:
			t.external = f.typ == protowire.VarintType && f.v == 1
		}
		if err != nil {
			return nil, err
		}
	}
	return t, nil
}

func parseValueInfo(b []byte) (*ValueInfo, error) {
	fs, err := parseFields(b, "value info", 0)
	if err != nil {
		return nil, err
	}
	v := &ValueInfo{raw: b}
	for _, f := range fs {
		switch f.num {
		case 1:
			if err := wantBytes(f, "value info name"); err != nil {
				return nil, err
			}
			v.Name = string(f.b)
		case 2:
			if err := wantBytes(f, "value info type"); err != nil {
				return nil, err
			}
			if err := v.parseType(f.b); err != nil {
				return nil, fmt.Errorf("value info %q: %w", v.Name, err)
			}
		default:
			v.extra = append(v.extra, f)
		}
	}
	return v, nil
}

func (v *ValueInfo) parseType(b []byte) error {
	fs, err := parseFields(b, "type", 0)
	if err != nil {
		return err
	}
	for _, f := range fs {
		if f.num != 1 { // tensor_type; other kinds are left opaque
			continue
		}
		if err := wantBytes(f, "tensor type"); err != nil {
			return err
		}
		tfs, err := parseFields(f.b, "tensor type", 0)
		if err != nil {
			return err
		}
		for _, tf := range tfs {
			switch tf.num {
			case 1:
				if err := wantVarint(tf, "elem_type"); err != nil {
					return err
				}
				v.ElemType = int32(tf.v)
			case 2:
				if err := wantBytes(tf, "shape"); err != nil {
					return err
				}
				sfs, err := parseFields(tf.b, "shape", 0)
				if err != nil {
					return err
				}
				v.Shape = []Dim{}
				for _, sf := range sfs {
					if sf.num != 1 {
						continue
					}
					if err := wantBytes(sf, "shape dim"); err != nil {
						return err
					}
					dfs, err := parseFields(sf.b, "dim", 0)
					if err != nil {
						return err
					}
					d := Dim{Value: -1}
					for _, df := range dfs {
						switch {
						case df.num == 1 && df.typ == protowire.VarintType:
							d.Value = int64(df.v)
						case df.num == 2 && df.typ == protowire.BytesType:
							d.Param = string(df.b)
						}
					}
					v.Shape = append(v.Shape, d)
				}
			}
		}
	}
	return nil
}

// Floats returns a float32 tensor's values (raw_data or float_data).
func (t *Tensor) Floats() ([]float32, error) {
	if t.DataType != Float {
		return nil, fmt.Errorf("tensor %q is %s, not float", t.Name, ElemTypeName(t.DataType))
	}
	if t.external {
		return nil, fmt.Errorf("tensor %q: data is stored outside the model file", t.Name)
	}
	n := t.NumElements()
	if n < 0 {
		return nil, fmt.Errorf("tensor %q: bad dims %v", t.Name, t.Dims)
	}
	var out []float32
	for _, f := range t.fields {
		switch f.num {
		case 9: // raw_data
			if int64(len(f.b)) != 4*n {
				return nil, fmt.Errorf("tensor %q: raw_data has %d bytes, want %d", t.Name, len(f.b), 4*n)
			}
			out = make([]float32, n)
			for i := range out {
				out[i] = math.Float32frombits(binary.LittleEndian.Uint32(f.b[4*i:]))
			}
			return out, nil
		case 4:
			var err error
			if out, err = appendFloats(out, f, "tensor float_data"); err != nil {
				return nil, err
			}
		}
	}
	if int64(len(out)) != n {
		return nil, fmt.Errorf("tensor %q: %d values, want %d", t.Name, len(out), n)
	}
	return out, nil
}

// Int64s returns an int64 tensor's values (raw_data or int64_data).
func (t *Tensor) Int64s() ([]int64, error) {
	if t.DataType != Int64 {
		return nil, fmt.Errorf("tensor %q is %s, not int64", t.Name, ElemTypeName(t.DataType))
	}
	if t.external {
		return nil, fmt.Errorf("tensor %q: data is stored outside the model file", t.Name)
	}
	n := t.NumElements()
	if n < 0 {
		return nil, fmt.Errorf("tensor %q: bad dims %v", t.Name, t.Dims)
	}
	var out []int64
	for _, f := range t.fields {
		switch f.num {
		case 9:
			if int64(len(f.b)) != 8*n {
				return nil, fmt.Errorf("tensor %q: raw_data has %d bytes, want %d", t.Name, len(f.b), 8*n)
			}
			out = make([]int64, n)
			for i := range out {
				out[i] = int64(binary.LittleEndian.Uint64(f.b[8*i:]))
			}
			return out, nil
		case 7:
			var err error
			if out, err = appendInt64s(out, f, "tensor int64_data"); err != nil {
				return nil, err
			}
		}
	}
	if int64(len(out)) != n {
		return nil, fmt.Errorf("tensor %q: %d values, want %d", t.Name, len(out), n)
	}
	return out, nil
}

// Attr returns the named attribute or nil.
func (n *Node) Attr(name string) *Attr {
	for _, a := range n.Attrs {
		if a.Name == name {
			return a
		}
	}
	return nil
}

func (n *Node) attrInt(name string, def int64) int64 {
	if a := n.Attr(name); a != nil {
		return a.I
	}
	return def
}

func (n *Node) attrInts(name string) []int64 {
	if a := n.Attr(name); a != nil {
		return a.Ints
	}
	return nil
}

// Initializer returns the named initializer or nil.
func (m *Model) Initializer(name string) *Tensor {
	for _, t := range m.Graph.Initializers {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Encoding.

func newTensorInt64(name string, dims []int64, vals []int64) *Tensor {
	raw := make([]byte, 0, 8*len(vals))
	for _, v := range vals {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(v))
	}
	var b []byte
	b = putPackedInt64s(b, 1, dims)
	b = putVarint(b, 2, uint64(Int64))
	b = putString(b, 8, name)
	b = putBytes(b, 9, raw)
	t, err := parseTensor(b)
	if err != nil {
		panic(err) // our own encoding
	}
	return t
}

func (t *Tensor) encode() *chunks {
	c := &chunks{}
	if t.gen == nil {
		c.add(t.raw)
		return c
	}
	var h []byte
	h = putPackedInt64s(h, 1, t.Dims)
	h = putVarint(h, 2, uint64(t.DataType))
	h = putString(h, 8, t.Name)
	h = protowire.AppendTag(h, 9, protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(t.genN))
	c.add(h)
	c.addGen(t.genN, t.gen)
	return c
}

func (a *Attr) encode() []byte {
	if a.raw != nil {
		return a.raw
	}
	var b []byte
	b = putString(b, 1, a.Name)
	switch a.Type {
	case AttrFloat:
		b = putFloat(b, 2, a.F)
	case AttrInt:
		b = putVarint(b, 3, uint64(a.I))
	case AttrString:
		b = putBytes(b, 4, a.S)
	case AttrTensor:
		b = putBytes(b, 5, a.T.raw)
	case AttrFloats:
		b = putPackedFloats(b, 7, a.Floats)
	case AttrInts:
		b = putPackedInt64s(b, 8, a.Ints)
	}
	b = putVarint(b, 20, uint64(a.Type))
	return b
}

func (n *Node) encode() []byte {
	if n.raw != nil {
		return n.raw
	}
	var b []byte
	for _, s := range n.Inputs {
		b = putString(b, 1, s)
	}
	for _, s := range n.Outputs {
		b = putString(b, 2, s)
	}
	if n.Name != "" {
		b = putString(b, 3, n.Name)
	}
	b = putString(b, 4, n.OpType)
	for _, a := range n.Attrs {
		b = putBytes(b, 5, a.encode())
	}
	if n.Domain != "" {
		b = putString(b, 7, n.Domain)
	}
	for _, f := range n.extra {
		b = append(b, f.raw...)
	}
	return b
}

func (v *ValueInfo) encode() []byte {
	if v.raw != nil {
		return v.raw
	}
	var tt []byte
	tt = putVarint(tt, 1, uint64(v.ElemType))
	if v.Shape != nil {
		var sh []byte
		for _, d := range v.Shape {
			var db []byte
			switch {
			case d.Param != "":
				db = putString(db, 2, d.Param)
			case d.Value >= 0:
				db = putVarint(db, 1, uint64(d.Value))
			}
			sh = putBytes(sh, 1, db)
		}
		tt = putBytes(tt, 2, sh)
	}
	var b []byte
	b = putString(b, 1, v.Name)
	b = putBytes(b, 2, putBytes(nil, 1, tt))
	for _, f := range v.extra {
		b = append(b, f.raw...)
	}
	return b
}

func (g *Graph) encode() *chunks {
	c := &chunks{}
	for _, n := range g.Nodes {
		c.add(putBytes(nil, 1, n.encode()))
	}
	if g.Name != "" {
		c.add(putString(nil, 2, g.Name))
	}
	for _, t := range g.Initializers {
		c.addMsg(5, t.encode())
	}
	for _, f := range g.other {
		c.add(f.raw)
	}
	for _, v := range g.Inputs {
		c.add(putBytes(nil, 11, v.encode()))
	}
	for _, v := range g.Outputs {
		c.add(putBytes(nil, 12, v.encode()))
	}
	for _, v := range g.ValueInfo {
		c.add(putBytes(nil, 13, v.encode()))
	}
	return c
}

func (m *Model) encode() *chunks {
	c := &chunks{}
	wroteGraph := false
	for _, f := range m.fields {
		if f.num == 7 {
			if !wroteGraph {
				c.addMsg(7, m.Graph.encode())
				wroteGraph = true
			}
			continue
		}
		c.add(f.raw)
	}
	if !wroteGraph {
		c.addMsg(7, m.Graph.encode())
	}
	return c
}

// WriteTo writes the model in ONNX protobuf encoding. Unchanged parts are
// written straight from the parsed input.
func (m *Model) WriteTo(w io.Writer) (int64, error) {
	return m.encode().writeTo(w)
}

// Size is the number of bytes WriteTo writes.
func (m *Model) Size() int64 { return int64(m.encode().n) }

// Bytes returns the encoded model.
func (m *Model) Bytes() ([]byte, error) {
	c := m.encode()
	w := &bufWriter{b: make([]byte, 0, c.n)}
	if _, err := c.writeTo(w); err != nil {
		return nil, err
	}
	return w.b, nil
}
