package extract

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// Device selects where inference runs.
type Device struct {
	Kind string // "cpu", "cuda" or "tensorrt"
	ID   int    // GPU ordinal for cuda/tensorrt
}

// Bounds of a --device list: a machine with more GPUs than MaxDevices runs
// several processes.
const (
	MaxDevices = 16
	MaxOrdinal = 255
)

func (d Device) String() string {
	if d.Kind == "cpu" || d.Kind == "" {
		return "cpu"
	}
	return fmt.Sprintf("%s:%d", d.Kind, d.ID)
}

// ParseDevice parses "cpu", "cuda", "cuda:N", "tensorrt" or "tensorrt:N"
// (N at most MaxOrdinal).
func ParseDevice(s string) (Device, error) {
	kind, id, hasID := strings.Cut(strings.ToLower(strings.TrimSpace(s)), ":")
	switch kind {
	case "", "cpu":
		if hasID {
			return Device{}, fmt.Errorf("parse device %q: cpu takes no ordinal", s)
		}
		return Device{Kind: "cpu"}, nil
	case "cuda", "gpu", "tensorrt", "trt":
		d := Device{Kind: "cuda"}
		if kind == "tensorrt" || kind == "trt" {
			d.Kind = "tensorrt"
		}
		if hasID {
			n, err := strconv.Atoi(id)
			if err != nil || n < 0 || n > MaxOrdinal {
				return Device{}, fmt.Errorf("parse device %q: ordinal must be a whole number from 0 to %d", s, MaxOrdinal)
			}
			d.ID = n
		}
		return d, nil
	}
	return Device{}, fmt.Errorf("parse device %q: want cpu, cuda[:N] or tensorrt[:N]", s)
}

// ParseDevices parses a comma-separated device list ("cuda:0,cuda:1"):
// one session per entry. The entries are of one kind (their vectors agree
// only then), a GPU appears once, and there are at most MaxDevices; "cpu"
// may repeat (several CPU sessions share the cores, which tests use to run
// the multi-device path without a GPU).
func ParseDevices(s string) ([]Device, error) {
	parts := strings.Split(s, ",")
	if len(parts) > MaxDevices {
		return nil, fmt.Errorf("parse devices %q: %d devices, at most %d", s, len(parts), MaxDevices)
	}
	devs := make([]Device, 0, len(parts))
	for i, p := range parts {
		if strings.TrimSpace(p) == "" && len(parts) > 1 {
			return nil, fmt.Errorf("parse devices %q: entry %d is empty", s, i+1)
		}
		d, err := ParseDevice(p)
		if err != nil {
			return nil, err
		}
		for _, prev := range devs {
			switch {
			case prev.Kind != d.Kind:
				return nil, fmt.Errorf("parse devices %q: %s and %s are of different kinds; use one kind", s, prev, d)
			case d.Kind != "cpu" && prev.ID == d.ID:
				return nil, fmt.Errorf("parse devices %q: %s is listed twice", s, d)
			}
		}
		devs = append(devs, d)
	}
	return devs, nil
}

// NVIDIAGPUs lists the NVIDIA GPUs with their memory and driver version on
// one line (from nvidia-smi), "" where there is no driver.
func NVIDIAGPUs() string {
	out, err := exec.Command("nvidia-smi", "--query-gpu=index,name,memory.total,driver_version", "--format=csv,noheader").Output()
	if err != nil {
		return ""
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", "; ")), " ")
}
