package onnxgraph

import (
	"strings"
	"testing"
)

// TestPixelInputStructure: the image input becomes uint8 [N, H, W, 3] under
// its own name (also for old exporters that list the weights as inputs),
// the layers are still found, and bad tables and models are refused. That
// the rewritten model computes the float path's input bit for bit is
// extract's TestPixelUploadBitIdentical.
func TestPixelInputStructure(t *testing.T) {
	table := make([]float32, PixelLevels)
	for _, n := range namings {
		m := parse(t, gen(t, VGGOptions{Naming: n, Scale: Tiny}))
		p, err := m.PixelInput(table)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		b, err := p.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		r := parse(t, b).Inspect()
		in := r.Inputs[0]
		if len(r.Inputs) != 1 || in.Name != inputName[n] || in.ElemType != "uint8" || len(in.Shape) != 4 ||
			in.Shape[1].Value != 224 || in.Shape[2].Value != 224 || in.Shape[3].Value != 3 {
			t.Errorf("%s: inputs %+v, want %s uint8 [N, 224, 224, 3]", n, r.Inputs, inputName[n])
		}
		if _, ok := r.Layer("fc7"); !ok {
			t.Errorf("%s: fc7 not found after the rewrite", n)
		}
		if _, err := p.PixelInput(table); err == nil || !strings.Contains(err.Error(), "want one image input, float") {
			t.Errorf("%s: rewriting twice: %v", n, err)
		}
	}
	m := parse(t, gen(t, VGGOptions{Scale: Tiny}))
	if _, err := m.PixelInput(table[:10]); err == nil {
		t.Error("a short table was accepted")
	}
}
