//go:build fullscale

// The full-size model test is part of `make bench` (bench-fullscale), not
// of `make test`: it writes and cuts ~575 MB models and takes minutes.

package onnxgraph

import (
	"bufio"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFullScaleVGG19 generates the ~575 MB VGG19 in each naming, finds and
// cuts fc7 and runs the cut model in ONNX Runtime with batches 1 and 3.
func TestFullScaleVGG19(t *testing.T) {
	dir := t.TempDir()
	for _, n := range namings {
		t.Run(n.String(), func(t *testing.T) {
			path := filepath.Join(dir, "vgg19-"+n.String()+".onnx")
			start := time.Now()
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := VGG19(f, VGGOptions{Naming: n, Scale: Full, Seed: 1}); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			genTime := time.Since(start)

			start = time.Now()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			r := m.Inspect()
			l, ok := r.Layer("fc7")
			if !ok || l.Tensor != wantLayers[n]["fc7"] || l.Dim != 4096 {
				t.Fatalf("fc7 = %+v (%v)", l, r.LayerNames())
			}
			if p5, _ := r.Layer("pool5"); p5.Dim != 25088 {
				t.Errorf("pool5 = %+v", p5)
			}
			cutPath := filepath.Join(dir, "vgg19-"+n.String()+".fc7.onnx")
			cf, err := os.Create(cutPath)
			if err != nil {
				t.Fatal(err)
			}
			bw := bufio.NewWriterSize(cf, 1<<20)
			cl, err := m.CutTo(bw, "fc7")
			if err != nil {
				t.Fatal(err)
			}
			if err := bw.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := cf.Close(); err != nil {
				t.Fatal(err)
			}
			cutTime := time.Since(start)
			fi, _ := os.Stat(path)
			ci, _ := os.Stat(cutPath)
			t.Logf("%s: generate %v (%d bytes), read+parse+inspect+cut %v (%d bytes)", n, genTime.Round(time.Millisecond), fi.Size(), cutTime.Round(time.Millisecond), ci.Size())
			data, m = nil, nil

			cut, err := os.ReadFile(cutPath)
			if err != nil {
				t.Fatal(err)
			}
			var row []float32
			for _, batch := range []int{1, 3} {
				start = time.Now()
				v, shape := runModel(t, cut, inputName[n], naturalImage(224, batch), []int64{int64(batch), 3, 224, 224}, cl.Tensor)
				t.Logf("%s: ONNX Runtime batch %d: %v", n, batch, time.Since(start).Round(time.Millisecond))
				checkFeatures(t, v, shape, batch, 4096)
				if batch == 1 {
					row = v
				} else if i, ok := close32(v[:4096], row, 1e-4); !ok {
					t.Errorf("batch 3 row 0 differs from batch 1 at %d", i)
				}
			}
		})
	}
}
