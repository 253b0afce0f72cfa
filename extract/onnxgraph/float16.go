package onnxgraph

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Float16 returns a copy of m that computes in float16 with float32 inputs
// and outputs: float initializers and Constant values are stored as
// float16, each float graph input is cast to float16 where it enters and
// each float graph output cast back to float where it leaves, Cast nodes
// to float cast to float16 instead, and the value_info of float tensors
// (now float16) is dropped. Initializers whose data is in external files
// are refused. Ops that need float32 inputs (Resize scales) are not
// supported.
func (m *Model) Float16() (*Model, error) {
	g := m.Graph
	g2 := *g
	used := usedNames(g)
	rename := map[string]string{} // graph input/output -> its float16 name inside
	inits := map[string]bool{}
	for _, t := range g.Initializers {
		inits[t.Name] = true
	}
	var head, tail []*Node
	for _, v := range g.Inputs {
		if v.ElemType == Float && !inits[v.Name] {
			h := uniqueName(used, v.Name+"_fp16")
			rename[v.Name] = h
			head = append(head, &Node{Name: uniqueName(used, h+"_cast"), OpType: "Cast", Inputs: []string{v.Name}, Outputs: []string{h}, Attrs: []*Attr{intA("to", int64(Float16))}})
		}
	}
	outRename := map[string]string{}
	for _, v := range g.Outputs {
		if v.ElemType == Float {
			h := uniqueName(used, v.Name+"_fp16")
			outRename[v.Name] = h
			tail = append(tail, &Node{Name: uniqueName(used, h+"_cast"), OpType: "Cast", Inputs: []string{h}, Outputs: []string{v.Name}, Attrs: []*Attr{intA("to", int64(Float))}})
		}
	}
	g2.Nodes = append([]*Node(nil), head...)
	for _, n := range g.Nodes {
		nn := *n
		nn.raw = nil
		nn.Inputs = append([]string(nil), n.Inputs...)
		nn.Outputs = append([]string(nil), n.Outputs...)
		nn.Attrs = append([]*Attr(nil), n.Attrs...)
		for k, in := range nn.Inputs {
			if r, ok := rename[in]; ok {
				nn.Inputs[k] = r
			} else if r, ok := outRename[in]; ok {
				nn.Inputs[k] = r
			}
		}
		for k, out := range nn.Outputs {
			if r, ok := outRename[out]; ok {
				nn.Outputs[k] = r
			}
		}
		switch n.OpType {
		case "Cast":
			if n.attrInt("to", 0) == int64(Float) {
				for k, a := range nn.Attrs {
					if a.Name == "to" {
						nn.Attrs[k] = intA("to", int64(Float16))
					}
				}
			}
		case "Constant":
			for k, a := range nn.Attrs {
				if a.Name == "value" && a.T != nil && a.T.DataType == Float {
					t, err := toFloat16(a.T)
					if err != nil {
						return nil, err
					}
					nn.Attrs[k] = &Attr{Name: "value", Type: AttrTensor, T: t}
				}
			}
		}
		g2.Nodes = append(g2.Nodes, &nn)
	}
	g2.Nodes = append(g2.Nodes, tail...)
	g2.Initializers = nil
	for _, t := range g.Initializers {
		if t.DataType == Float {
			h, err := toFloat16(t)
			if err != nil {
				return nil, err
			}
			t = h
		}
		g2.Initializers = append(g2.Initializers, t)
	}
	// Old exporters list the weights as graph inputs too: they are float16 now.
	g2.Inputs = nil
	for _, v := range g.Inputs {
		if v.ElemType == Float && inits[v.Name] {
			c := *v
			c.raw, c.ElemType = nil, Float16
			v = &c
		}
		g2.Inputs = append(g2.Inputs, v)
	}
	g2.ValueInfo = nil
	for _, v := range g.ValueInfo {
		if v.ElemType != Float {
			g2.ValueInfo = append(g2.ValueInfo, v)
		}
	}
	return &Model{IRVersion: m.IRVersion, ProducerName: m.ProducerName, Opsets: m.Opsets, Graph: &g2, fields: m.fields}, nil
}

// toFloat16 is t with its values rounded to float16.
func toFloat16(t *Tensor) (*Tensor, error) {
	v, err := t.Floats()
	if err != nil {
		return nil, fmt.Errorf("onnxgraph: float16: %w", err)
	}
	raw := make([]byte, 2*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint16(raw[2*i:], float32ToHalf(f))
	}
	return newTensorRaw(t.Name, Float16, t.Dims, raw), nil
}

// float32ToHalf rounds f to the nearest IEEE 754 half (ties to even);
// values beyond the half range become ±Inf, NaN stays NaN.
func float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int((b >> 23) & 0xff)
	mant := b & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp-127 > 15: // overflow
		return sign | 0x7c00
	case exp-127 >= -14: // normal half
		e := uint32(exp-127+15) << 10
		h := e | mant>>13
		rest := mant & 0x1fff
		if rest > 0x1000 || (rest == 0x1000 && h&1 != 0) {
			h++ // may carry into the exponent, up to Inf: still correct
		}
		return sign | uint16(h)
	case exp-127 >= -25: // subnormal half
		m := mant | 0x800000
		shift := uint(-(exp - 127) - 14 + 13) // 14..24
		h := m >> shift
		rest := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rest > half || (rest == half && h&1 != 0) {
			h++
		}
		return sign | uint16(h)
	}
	return sign // underflow to ±0
}
