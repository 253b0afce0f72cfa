package onnxgraph

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

var externalDir = filepath.Join("..", "..", "testdata", "models", "external")

func TestExternalDataReferences(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(externalDir, "vgg19-tiny.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	m := parse(t, data)
	files, err := m.ExternalFiles()
	if err != nil || len(files) != 1 || files[0] != "vgg19-tiny.onnx.data" {
		t.Fatalf("ExternalFiles = %v, %v", files, err)
	}
	fi, err := os.Stat(filepath.Join(externalDir, files[0]))
	if err != nil {
		t.Fatal(err)
	}
	if n := m.ExternalBytes(); n <= 0 || n > fi.Size() {
		t.Errorf("ExternalBytes %d, data file %d bytes", n, fi.Size())
	}
	// Inspection needs only the graph.
	if l, ok := m.Inspect().Layer("fc7"); !ok || l.Dim != 64 {
		t.Errorf("fc7 = %+v", l)
	}
	// A location outside the model's directory is refused.
	for _, loc := range []string{"../x.data", "/etc/passwd", ""} {
		e := External{Location: loc, hasLocation: loc != ""}
		if _, err := e.path("w"); !errors.Is(err, ErrExternalData) {
			t.Errorf("location %q: %v", loc, err)
		}
	}
}

// Save inlines external weights (same bytes as cutting the inline model),
// or, over the inline limit, writes a data file beside the output that
// loads from there.
func TestSaveExternalModel(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(externalDir, "vgg19-tiny.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	cut, _, err := parse(t, data).CutModel("fc7", CutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := parse(t, gen(t, VGGOptions{Naming: Torchvision, Seed: 1})).Cut("fc7")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "fc7.onnx")
	if dp, err := cut.Save(out, externalDir); err != nil || dp != "" {
		t.Fatalf("Save = %q, %v", dp, err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Errorf("inlined cut (%d bytes) differs from the cut of the inline model (%d bytes)", len(got), len(want))
	}

	inlineLimit = 0
	t.Cleanup(func() { inlineLimit = MaxInline })
	dir := t.TempDir()
	out = filepath.Join(dir, "big.onnx")
	dp, err := cut.Save(out, externalDir)
	if err != nil || dp != out+".data" {
		t.Fatalf("Save over the limit = %q, %v", dp, err)
	}
	saved, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sm := parse(t, saved)
	if files, err := sm.ExternalFiles(); err != nil || len(files) != 1 || files[0] != "big.onnx.data" {
		t.Fatalf("saved model refers to %v, %v", files, err)
	}
	var b bytes.Buffer
	if _, err := sm.WriteInline(&b, dir); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("the model saved with a data file does not hold the same weights")
	}
	// A missing data file is a clear error.
	if err := os.Remove(dp); err != nil {
		t.Fatal(err)
	}
	if _, err := sm.WriteInline(&b, dir); err == nil {
		t.Error("WriteInline without the data file succeeded")
	}
}

func TestTensorsAndResolve(t *testing.T) {
	m := parse(t, gen(t, VGGOptions{Naming: Torchvision}))
	ts := m.Tensors()
	if len(ts) != len(m.Graph.Nodes) || ts[len(ts)-1].Name != "logits" || len(ts[len(ts)-1].Shape) != 2 {
		t.Fatalf("Tensors: %d for %d nodes, last %+v", len(ts), len(m.Graph.Nodes), ts[len(ts)-1])
	}
	if l, err := m.Resolve("logits"); err != nil || l.Dim != 10 {
		t.Errorf("Resolve(logits) = %+v, %v", l, err)
	}
	if got := closest("relu_output", []string{"zzz", "/a/Relu_output_0", "relu_outpu"}, 2); len(got) != 2 || got[0] != "/a/Relu_output_0" || got[1] != "relu_outpu" {
		t.Errorf("closest = %v", got)
	}
}

func TestCutPoolsTokens(t *testing.T) {
	var b bytes.Buffer
	if err := Embedding(&b, Tokens, 1); err != nil {
		t.Fatal(err)
	}
	m := parse(t, b.Bytes())
	if _, _, err := m.CutModel("last_hidden_state", CutOptions{}); !errors.Is(err, ErrTokenOutput) {
		t.Errorf("no pooling: %v", err)
	}
	for _, pool := range []string{PoolCLS, PoolMean} {
		cm, l, err := m.CutModel("last_hidden_state", CutOptions{Pool: pool})
		if err != nil || l.Dim != 8 || l.Pool != pool || len(cm.Graph.Outputs) != 1 {
			t.Fatalf("pool %s: %+v, %v", pool, l, err)
		}
		if _, err := cm.Bytes(); err != nil {
			t.Fatal(err)
		}
	}
}
