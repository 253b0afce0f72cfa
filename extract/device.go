package extract

import (
	"fmt"
	"strconv"
	"strings"
)

// Device selects where inference runs.
type Device struct {
	Kind string // "cpu", "cuda" or "tensorrt"
	ID   int    // GPU ordinal for cuda/tensorrt
}

func (d Device) String() string {
	if d.Kind == "cpu" || d.Kind == "" {
		return "cpu"
	}
	return fmt.Sprintf("%s:%d", d.Kind, d.ID)
}

// ParseDevice parses "cpu", "cuda", "cuda:N", "tensorrt" or "tensorrt:N".
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
			if err != nil || n < 0 {
				return Device{}, fmt.Errorf("parse device %q: ordinal must be a non-negative integer", s)
			}
			d.ID = n
		}
		return d, nil
	}
	return Device{}, fmt.Errorf("parse device %q: want cpu, cuda[:N] or tensorrt[:N]", s)
}
