package main

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/cpu"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"
	"github.com/imgvec/imgvec/extract"
	"github.com/imgvec/imgvec/extract/onnxgraph"
)

func newDoctorCmd() *cobra.Command {
	var seconds float64
	var devices string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Report the ONNX Runtime library, its providers, the devices and a short img/s probe per device",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if seconds <= 0 || seconds > 600 {
				return wiring.Usagef("doctor: --seconds %g: want a value in (0, 600]", seconds)
			}
			w := cmd.OutOrStdout()
			lib, err := extract.LibraryPath()
			if err != nil {
				return err
			}
			if err := extract.InitRuntime(); err != nil {
				return err
			}
			fmt.Fprintf(w, "onnx runtime  %s, version %s (imgvec is tested with %s)\n", lib, extract.RuntimeVersion(), extract.ORTVersion)
			fmt.Fprintf(w, "cpu           %d cores, %s, VNNI %t\n", runtime.NumCPU(), runtime.GOARCH, cpu.X86.HasAVX512VNNI || cpu.X86.HasAVXVNNI)
			if gpus := extract.NVIDIAGPUs(); gpus != "" {
				fmt.Fprintf(w, "gpus          %s\n", gpus)
			} else {
				fmt.Fprintf(w, "gpus          none found (no nvidia-smi)\n")
			}
			probe, err := probeModel()
			if err != nil {
				return err
			}
			for _, s := range strings.Split(devices, ",") {
				dev, err := extract.ParseDevice(s)
				if err != nil {
					return wiring.Usage(err)
				}
				rate, err := probeDevice(cmd.Context(), probe, dev, time.Duration(seconds*float64(time.Second)))
				if err != nil {
					// One line: why this device cannot run.
					fmt.Fprintf(w, "%-13s unavailable: %v\n", dev, err)
					continue
				}
				fmt.Fprintf(w, "%-13s ok: %.1f img/s (generated tiny VGG19, batch 16, %gs)\n", dev, rate, seconds)
			}
			return nil
		},
	}
	cmd.Flags().Float64Var(&seconds, "seconds", 10, "length of each device's img/s probe")
	cmd.Flags().StringVar(&devices, "device", "cpu,cuda:0", "devices to probe, comma-separated")
	return cmd
}

// probeModel is the tiny VGG19 (random weights) cut at fc7: it needs no
// download and runs on any device.
func probeModel() ([]byte, error) {
	var buf bytes.Buffer
	if err := onnxgraph.VGG19(&buf, onnxgraph.VGGOptions{Naming: onnxgraph.Torchvision, Scale: onnxgraph.Tiny, Seed: 1}); err != nil {
		return nil, fmt.Errorf("doctor: generate probe model: %w", err)
	}
	m, err := onnxgraph.Parse(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("doctor: probe model: %w", err)
	}
	out, _, err := m.Cut("fc7")
	if err != nil {
		return nil, fmt.Errorf("doctor: probe model: %w", err)
	}
	return out, nil
}

// probeDevice runs batches of 16 on dev for d and returns the img/s.
func probeDevice(ctx context.Context, model []byte, dev extract.Device, d time.Duration) (float64, error) {
	s, err := extract.NewSession(model, extract.SessionOptions{Device: dev})
	if err != nil {
		return 0, firstLine(err)
	}
	defer s.Close()
	const batch = 16
	h, w := s.InputSize()
	in, out := make([]float32, batch*3*h*w), make([]float32, batch*s.Dim())
	n, start := 0, time.Now()
	for time.Since(start) < d {
		if err := s.Run(ctx, in, batch, out); err != nil {
			return 0, firstLine(err)
		}
		n += batch
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// firstLine keeps an error to one line (provider errors quote whole logs).
func firstLine(err error) error {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return fmt.Errorf("%s", msg)
}
