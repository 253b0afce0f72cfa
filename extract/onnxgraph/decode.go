package onnxgraph

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

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
