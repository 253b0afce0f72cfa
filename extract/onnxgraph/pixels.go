package onnxgraph

import "fmt"

// PixelLevels is the length of PixelInput's table: 256 values per channel.
const PixelLevels = 3 * 256

// PixelInput returns a copy of m whose image input takes 8-bit RGB pixels,
// uint8 [N, H, W, 3] (interleaved, as decoders and resamplers produce
// them), instead of float [N, 3, H, W], and normalises them in the graph:
// Cast to int32, Add the channel's offset in the table (0, 256, 512),
// Gather the float from table (table[256*c+v] is channel c's value for
// pixel v), Transpose to [N, 3, H, W]. A table filled by the same float32
// arithmetic as the CPU preprocessing gives the model bit for bit the
// input it had; the caller sends a quarter of the bytes (the point on a
// GPU). The input keeps its name; m must have one image input, float
// [N, 3, H, W].
func (m *Model) PixelInput(table []float32) (*Model, error) {
	if len(table) != PixelLevels {
		return nil, fmt.Errorf("pixel input: table has %d values, want %d", len(table), PixelLevels)
	}
	g := m.Graph
	inits := map[string]bool{}
	for _, t := range g.Initializers {
		inits[t.Name] = true
	}
	var image *ValueInfo
	for _, v := range g.Inputs {
		if inits[v.Name] {
			continue
		}
		if image != nil {
			return nil, fmt.Errorf("pixel input: the model has more than one input (%s, %s)", image.Name, v.Name)
		}
		image = v
	}
	if image == nil || image.ElemType != Float || len(image.Shape) != 4 || image.Shape[1].Value != 3 {
		return nil, fmt.Errorf("pixel input: want one image input, float [N, 3, H, W]")
	}
	used := usedNames(g)
	nchw := uniqueName(used, image.Name+"_nchw")
	var (
		index   = uniqueName(used, image.Name+"_index")
		offset  = uniqueName(used, image.Name+"_channel_offset")
		shifted = uniqueName(used, image.Name+"_table_index")
		levels  = uniqueName(used, image.Name+"_levels")
		values  = uniqueName(used, image.Name+"_nhwc")
	)
	node := func(op string, in []string, out string, attrs ...*Attr) *Node {
		return &Node{Name: uniqueName(used, out+"_"+op), OpType: op, Inputs: in, Outputs: []string{out}, Attrs: attrs}
	}
	g2 := *g
	g2.Nodes = []*Node{
		node("Cast", []string{image.Name}, index, intA("to", int64(Int32))),
		node("Add", []string{index, offset}, shifted),
		node("Gather", []string{levels, shifted}, values, intA("axis", 0)),
		node("Transpose", []string{values}, nchw, ints("perm", 0, 3, 1, 2)),
	}
	for _, n := range g.Nodes {
		nn := *n
		nn.Inputs = append([]string(nil), n.Inputs...)
		renamed := false
		for k, in := range nn.Inputs {
			if in == image.Name {
				nn.Inputs[k], renamed = nchw, true
			}
		}
		if renamed {
			nn.raw = nil
		}
		g2.Nodes = append(g2.Nodes, &nn)
	}
	g2.Initializers = append([]*Tensor{
		newTensorInt32s(offset, []int64{3}, []int32{0, 256, 512}),
		newTensorFloats(levels, []int64{PixelLevels}, table),
	}, g.Initializers...)
	g2.Inputs = nil
	for _, v := range g.Inputs {
		if v == image {
			s := image.Shape
			v = &ValueInfo{Name: image.Name, ElemType: Uint8, Shape: []Dim{s[0], s[2], s[3], {Value: 3}}}
		}
		g2.Inputs = append(g2.Inputs, v)
	}
	return &Model{IRVersion: m.IRVersion, ProducerName: m.ProducerName, Opsets: m.Opsets, Graph: &g2, fields: m.fields}, nil
}
