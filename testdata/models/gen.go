//go:build ignore

// gen writes the test models. Run from the repository root:
//
//	go run ./testdata/models/gen.go                 # tiny models, committed
//	go run ./testdata/models/gen.go -full           # also full-scale, into testdata/models/generated/
//	go run ./testdata/models/gen.go -out DIR -full  # tiny into DIR, full into DIR/generated
//
// Output is deterministic for a given -seed.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/imgvec/imgvec/extract/onnxgraph"
)

func main() {
	out := flag.String("out", "testdata/models", "directory for the tiny models")
	full := flag.Bool("full", false, "also write the ~575 MB full-scale VGG19 models into OUT/generated (git-ignored)")
	seed := flag.Uint64("seed", 1, "weight seed")
	flag.Parse()

	tiny := []struct {
		file   string
		naming onnxgraph.Naming
	}{
		{"vgg19-tiny.onnx", onnxgraph.Torchvision},
		{"vgg19-zoo-tiny.onnx", onnxgraph.ModelZoo},
		{"vgg19-caffe2-tiny.onnx", onnxgraph.Caffe2},
	}
	for _, m := range tiny {
		write(filepath.Join(*out, m.file), onnxgraph.VGGOptions{Naming: m.naming, Scale: onnxgraph.Tiny, Seed: *seed})
	}
	writeWith(filepath.Join(*out, "embed-tiny.onnx"), "pooled embedding", func(w io.Writer) error {
		return onnxgraph.Embedding(w, onnxgraph.Pooled, *seed)
	})
	writeWith(filepath.Join(*out, "vit-tiny.onnx"), "token outputs", func(w io.Writer) error {
		return onnxgraph.Embedding(w, onnxgraph.Tokens, *seed)
	})
	// Hugging Face / Optimum model folders: the embedding export beside
	// each committed preprocessor_config.json.
	for _, name := range []string{"clip", "convnext", "deit", "dinov2", "siglip", "vit"} {
		writeWith(filepath.Join(*out, "hf", name, "model.onnx"), "model folder", func(w io.Writer) error {
			return onnxgraph.Embedding(w, onnxgraph.Pooled, *seed)
		})
	}
	ext := filepath.Join(*out, "external", "vgg19-tiny.onnx")
	writeWith(ext+".data", "external data", func(data io.Writer) error {
		writeWith(ext, "external weights", func(w io.Writer) error {
			return onnxgraph.VGG19External(w, data, "vgg19-tiny.onnx.data", onnxgraph.VGGOptions{Naming: onnxgraph.Torchvision, Scale: onnxgraph.Tiny, Seed: *seed})
		})
		return nil
	})
	if *full {
		dir := filepath.Join(*out, "generated")
		for _, m := range []struct {
			file   string
			naming onnxgraph.Naming
		}{
			{"vgg19-torchvision.onnx", onnxgraph.Torchvision},
			{"vgg19-7-zoo.onnx", onnxgraph.ModelZoo},
			{"vgg19-caffe2.onnx", onnxgraph.Caffe2},
		} {
			write(filepath.Join(dir, m.file), onnxgraph.VGGOptions{Naming: m.naming, Scale: onnxgraph.Full, Seed: *seed})
		}
	}
}

func write(path string, o onnxgraph.VGGOptions) {
	writeWith(path, fmt.Sprintf("%s %s", o.Naming, o.Scale), func(w io.Writer) error { return onnxgraph.VGG19(w, o) })
}

// writeWith writes path atomically with gen.
func writeWith(path, what string, gen func(w io.Writer) error) {
	start := time.Now()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		fail(err)
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		fail(err)
	}
	if err := gen(f); err != nil {
		f.Close()
		os.Remove(tmp)
		fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		fail(err)
	}
	fi, _ := os.Stat(path)
	fmt.Printf("%s: %s, %d bytes, %v\n", path, what, fi.Size(), time.Since(start).Round(time.Millisecond))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gen:", err)
	os.Exit(1)
}
