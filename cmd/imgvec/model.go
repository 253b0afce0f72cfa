package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"

	"github.com/spf13/cobra"

	"github.com/imgvec/imgvec/extract/models"
	"github.com/imgvec/imgvec/extract/onnxgraph"
)

func newModelCmd(_ *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "model", Short: "Inspect, cut, quantize, convert, list and fetch models"}
	cmd.AddCommand(newModelInspectCmd(), newModelCutCmd(), newModelFetchCmd(), newModelListCmd(), newModelQuantizeCmd(), newModelConvertCmd())
	return cmd
}

func readModel(path string) (*onnxgraph.Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	m, err := onnxgraph.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parse model %s: %w", path, err)
	}
	return m, nil
}

func newModelInspectCmd() *cobra.Command {
	var asJSON, all bool
	cmd := &cobra.Command{
		Use:   "inspect MODEL.onnx",
		Short: "List a model's inputs, outputs and candidate feature layers (--all: every tensor)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := readModel(args[0])
			if err != nil {
				return err
			}
			rep := m.Inspect()
			var tensors []onnxgraph.TensorInfo
			if all {
				tensors = m.Tensors()
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if all {
					return enc.Encode(struct {
						onnxgraph.Report
						Tensors []onnxgraph.TensorInfo
					}{rep, tensors})
				}
				return enc.Encode(rep)
			}
			fmt.Fprintf(out, "model %s: IR %d, producer %q, %d nodes, %d initializers", args[0], rep.IRVersion, rep.Producer, rep.Nodes, rep.Initializers)
			if rep.WeightInputs > 0 {
				fmt.Fprintf(out, " (%d also listed as graph inputs)", rep.WeightInputs)
			}
			fmt.Fprintln(out)
			for _, v := range rep.Inputs {
				fmt.Fprintf(out, "input   %s\n", v)
			}
			for _, v := range rep.Outputs {
				fmt.Fprintf(out, "output  %s\n", v)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "LAYER\tDIM\tSHAPE\tOP\tTENSOR")
			for _, l := range rep.Layers {
				fmt.Fprintf(tw, "%s\t%d\t%v\t%s\t%s\n", l.Name, l.Dim, l.Shape, l.Op, l.Tensor)
			}
			if all {
				fmt.Fprintln(tw, "\nTENSOR\tSHAPE\tOP")
				for _, t := range tensors {
					shape := "?"
					if t.Shape != nil {
						shape = fmt.Sprint(t.Shape)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, shape, t.Op)
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&all, "all", false, "also list every tensor the graph computes, with its shape (any of them works as --layer)")
	return cmd
}

func newModelCutCmd() *cobra.Command {
	var layer, pool, out string
	cmd := &cobra.Command{
		Use:   "cut MODEL.onnx --layer fc7 -o OUT.onnx",
		Short: "Write a model whose output is the named layer (fc7, fc6, pool5, avgpool or any tensor name), batch made dynamic, loadable from anywhere",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return wiring.Usagef("cut: -o OUT.onnx is required")
			}
			m, err := readModel(args[0])
			if err != nil {
				return err
			}
			cm, l, err := m.CutModel(layer, onnxgraph.CutOptions{Pool: pool})
			if err != nil {
				return fmt.Errorf("cut %s at %s: %w", args[0], layer, err)
			}
			// External weights are inlined (or, over 2 GiB, copied to a data
			// file beside OUT), so the cut loads without the original.
			data, err := cm.Save(out, filepath.Dir(args[0]))
			if err != nil {
				return fmt.Errorf("cut %s at %s: %w", args[0], layer, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: output %s (%s, %d-d, tensor %s)\n", out, l.Name, l.Op, l.Dim, l.Tensor)
			if data != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "weights in %s (keep it beside the model)\n", data)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&layer, "layer", "fc7", "layer alias or tensor name to cut at")
	cmd.Flags().StringVar(&pool, "pool", "", "pool a token output [N,T,D]: cls or mean")
	cmd.Flags().StringVarP(&out, "out", "o", "", "output .onnx file")
	return cmd
}

func newModelConvertCmd() *cobra.Command {
	var out string
	var fp16 bool
	cmd := &cobra.Command{
		Use:   "convert MODEL.onnx --fp16 -o OUT.onnx",
		Short: "Write a float16 copy of a model (weights and compute in float16, input and output float32): for GPUs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case out == "":
				return wiring.Usagef("convert: -o OUT.onnx is required")
			case !fp16:
				return wiring.Usagef("convert: say what to convert to (--fp16)")
			}
			m, err := readModel(args[0])
			if err != nil {
				return err
			}
			h, err := m.Float16()
			if err != nil {
				return fmt.Errorf("convert %s: %w", args[0], err)
			}
			if _, err := h.Save(out, filepath.Dir(args[0])); err != nil {
				return fmt.Errorf("convert %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (float16; input and output float32)\n", out)
			return nil
		},
	}
	cmd.Flags().BoolVar(&fp16, "fp16", false, "float16 weights and compute")
	cmd.Flags().StringVarP(&out, "out", "o", "", "output .onnx file")
	return cmd
}

func newModelFetchCmd() *cobra.Command {
	var o models.Options
	cmd := &cobra.Command{
		Use:   "fetch PRESET|URL",
		Short: "Download a model (vgg19 = the ONNX Model Zoo VGG19), verify its sha256, cache and cut it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := args[0]
			if ref == "vgg19" {
				ref = models.Default
			}
			r, err := models.FetchWith(cmd.Context(), ref, o)
			if err != nil {
				return err
			}
			how := "cached"
			if r.Downloaded {
				how = "downloaded"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s (sha256 %s)\ncut at %s (%d-d): %s\n", how, r.Source, r.SHA256, r.Layer.Name, r.Layer.Dim, r.Path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.SHA256, "sha256", "", "expected sha256 of the download (default: the preset's)")
	f.BoolVar(&o.InsecureSkipVerify, "insecure-skip-verify", false, "use a download no sha256 vouches for")
	f.StringVar(&o.CacheDir, "cache-dir", "", "model cache (default $IMGVEC_CACHE_DIR or ~/.cache/imgvec/models)")
	f.StringVar(&o.Layer, "layer", "", "layer to cut at (default: the preset's)")
	return cmd
}

func newModelListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List model presets, their preprocessing and pooling, and whether they are cached",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cache, err := models.DefaultCacheDir()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "PRESET\tLAYER\tDIM\tCACHED\tPREPROCESS\tPOOL\tDESCRIPTION")
			for _, p := range models.Presets() {
				_, ok := models.Cached(cache, p.Name, "")
				pool := p.Pool
				if pool == "" {
					pool = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%t\t%s\t%s\t%s\n", p.Name, p.Layer, p.Dim, ok, p.Preprocess, pool, p.Description)
			}
			return tw.Flush()
		},
	}
}
