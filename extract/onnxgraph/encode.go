package onnxgraph

import (
	"encoding/binary"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
)

func newTensorInt64(name string, dims []int64, vals []int64) *Tensor {
	raw := make([]byte, 0, 8*len(vals))
	for _, v := range vals {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(v))
	}
	return newTensorRaw(name, Int64, dims, raw)
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

// tensorEncoder replaces a tensor's encoding when it returns non-nil.
type tensorEncoder func(t *Tensor) *chunks

func (g *Graph) encode(te tensorEncoder) *chunks {
	c := &chunks{}
	for _, n := range g.Nodes {
		c.add(putBytes(nil, 1, n.encode()))
	}
	if g.Name != "" {
		c.add(putString(nil, 2, g.Name))
	}
	for _, t := range g.Initializers {
		tc := (*chunks)(nil)
		if te != nil {
			tc = te(t)
		}
		if tc == nil {
			tc = t.encode()
		}
		c.addMsg(5, tc)
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

func (m *Model) encode() *chunks { return m.encodeWith(nil) }

func (m *Model) encodeWith(te tensorEncoder) *chunks {
	c := &chunks{}
	wroteGraph := false
	for _, f := range m.fields {
		if f.num == 7 {
			if !wroteGraph {
				c.addMsg(7, m.Graph.encode(te))
				wroteGraph = true
			}
			continue
		}
		c.add(f.raw)
	}
	if !wroteGraph {
		c.addMsg(7, m.Graph.encode(te))
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
