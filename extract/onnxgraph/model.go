package onnxgraph

import (
	"errors"
	"fmt"
	"io"
	"math"
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
