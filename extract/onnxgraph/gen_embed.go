package onnxgraph

import (
	"bufio"
	"fmt"
	"io"
)

// EmbedStyle picks the output layout of a generated embedding model.
type EmbedStyle int

const (
	// Pooled is a CLIP/EfficientNet-style export: pixel_values → patch
	// Conv → GlobalAveragePool ("pooled", [N,C,1,1]) → Flatten → MatMul
	// projection → graph output "image_embeds" [batch, 16].
	Pooled EmbedStyle = iota
	// Tokens is a ViT/DINOv2-style export: pixel_values → patch Conv →
	// tokens → graph outputs "last_hidden_state" [batch, 196, 8] and
	// "pooler_output" [batch, 8] (the first token through Tanh).
	Tokens
)

// Embedding writes a tiny 224×224 image-embedding model in the given style
// with deterministic random weights (IR 8, opset 17, input "pixel_values"
// [batch,3,224,224], dynamic batch).
func Embedding(w io.Writer, style EmbedStyle, seed uint64) error {
	g := &Graph{Name: "main_graph"}
	b := &builder{g: g, seed: mix(seed + 0x7654321)}
	batch := Dim{Param: "batch", Value: -1}
	g.Inputs = []*ValueInfo{{Name: "pixel_values", ElemType: Float, Shape: []Dim{batch, {Value: 3}, {Value: 224}, {Value: 224}}}}
	const width, patch = 8, 16
	b.weight("patch.weight", []int64{width, 3, patch, patch}, heBound(3*patch*patch))
	b.weight("patch.bias", []int64{width}, 0.1)
	b.node("Conv", "/patch/Conv", []string{"pixel_values", "patch.weight", "patch.bias"}, "/patch/Conv_output_0",
		ints("kernel_shape", patch, patch), ints("strides", patch, patch))
	var version string
	switch style {
	case Pooled:
		version = "embed-pooled-tiny"
		b.node("GlobalAveragePool", "/pool/GlobalAveragePool", []string{"/patch/Conv_output_0"}, "pooled")
		b.node("Flatten", "/Flatten", []string{"pooled"}, "/Flatten_output_0", intA("axis", 1))
		b.weight("proj.weight", []int64{width, 16}, heBound(width))
		b.node("MatMul", "/proj/MatMul", []string{"/Flatten_output_0", "proj.weight"}, "image_embeds")
		g.Outputs = []*ValueInfo{{Name: "image_embeds", ElemType: Float, Shape: []Dim{batch, {Value: 16}}}}
	case Tokens:
		version = "embed-tokens-tiny"
		g.Initializers = append(g.Initializers, newTensorInt64("tokens_shape", []int64{3}, []int64{0, width, -1}))
		b.node("Reshape", "/Reshape", []string{"/patch/Conv_output_0", "tokens_shape"}, "/Reshape_output_0")
		b.node("Transpose", "/Transpose", []string{"/Reshape_output_0"}, "/Transpose_output_0", ints("perm", 0, 2, 1))
		b.node("Tanh", "/norm/Tanh", []string{"/Transpose_output_0"}, "last_hidden_state")
		g.Initializers = append(g.Initializers, newTensorInt64("cls_index", nil, []int64{0}))
		b.node("Gather", "/pooler/Gather", []string{"last_hidden_state", "cls_index"}, "/pooler/Gather_output_0", intA("axis", 1))
		b.node("Tanh", "/pooler/Tanh", []string{"/pooler/Gather_output_0"}, "pooler_output")
		g.Outputs = []*ValueInfo{
			{Name: "last_hidden_state", ElemType: Float, Shape: []Dim{batch, {Param: "sequence_length", Value: -1}, {Value: width}}},
			{Name: "pooler_output", ElemType: Float, Shape: []Dim{batch, {Value: width}}},
		}
	default:
		return fmt.Errorf("onnxgraph: unknown embedding style %d", style)
	}
	m := newModel(8, 17, version, g)
	bw := bufio.NewWriter(w)
	if _, err := m.WriteTo(bw); err != nil {
		return fmt.Errorf("onnxgraph: write %s: %w", version, err)
	}
	return bw.Flush()
}
