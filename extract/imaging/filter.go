package imaging

import (
	"fmt"
	"math"
)

// Filter is a Pillow resampling filter. The zero value is Bilinear, the
// torchvision recipe's.
type Filter int

// Pillow's filters. Every one but Nearest is Pillow's two-pass convolution
// (Resample.c) with the filter's support scaled by the downscaling factor;
// Nearest is its affine nearest-neighbour scaling (Geometry.c).
const (
	Bilinear Filter = iota
	Nearest
	Bicubic
	Lanczos
	Box
	Hamming
)

var filterNames = [...]string{Bilinear: "bilinear", Nearest: "nearest", Bicubic: "bicubic", Lanczos: "lanczos", Box: "box", Hamming: "hamming"}

func (f Filter) String() string {
	if f >= 0 && int(f) < len(filterNames) {
		return filterNames[f]
	}
	return fmt.Sprintf("filter(%d)", int(f))
}

// ParseFilter reads a filter name (bilinear, nearest, bicubic, lanczos,
// box, hamming).
func ParseFilter(name string) (Filter, error) {
	for f, n := range filterNames {
		if n == name {
			return Filter(f), nil
		}
	}
	return 0, fmt.Errorf("unknown resampling filter %q (want nearest, bilinear, bicubic, lanczos, box or hamming)", name)
}

// PILFilter maps Pillow's Resampling enum value (what a
// preprocessor_config.json's "resample" holds) to a Filter.
func PILFilter(v int) (Filter, error) {
	switch v {
	case 0:
		return Nearest, nil
	case 1:
		return Lanczos, nil
	case 2:
		return Bilinear, nil
	case 3:
		return Bicubic, nil
	case 4:
		return Box, nil
	case 5:
		return Hamming, nil
	}
	return 0, fmt.Errorf("unknown PIL resample value %d (want 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)", v)
}

// kernel is a convolution filter of Resample.c: its support and function,
// written as Pillow writes them so that the doubles match.
func (f Filter) kernel() (support float64, fn func(float64) float64) {
	switch f {
	case Box:
		return 0.5, func(x float64) float64 {
			if x > -0.5 && x <= 0.5 {
				return 1
			}
			return 0
		}
	case Hamming:
		return 1, func(x float64) float64 {
			if x < 0 {
				x = -x
			}
			if x == 0 {
				return 1
			}
			if x >= 1 {
				return 0
			}
			x = x * math.Pi
			return math.Sin(x) / x * (0.54 + float64(0.46*math.Cos(x)))
		}
	case Bicubic:
		const a = -0.5
		return 2, func(x float64) float64 {
			if x < 0 {
				x = -x
			}
			if x < 1 {
				return float64(float64(float64(float64(a+2)*x)-(a+3))*x*x) + 1
			}
			if x < 2 {
				return float64(float64(float64(float64(float64(x-5)*x)+8)*x)-4) * a
			}
			return 0
		}
	case Lanczos:
		sinc := func(x float64) float64 {
			if x == 0 {
				return 1
			}
			x = x * math.Pi
			return math.Sin(x) / x
		}
		return 3, func(x float64) float64 {
			if -3 <= x && x < 3 {
				return sinc(x) * sinc(x/3)
			}
			return 0
		}
	}
	return 1, func(x float64) float64 { // bilinear (triangle)
		if x < 0 {
			x = -x
		}
		if x < 1 {
			return 1 - x
		}
		return 0
	}
}
