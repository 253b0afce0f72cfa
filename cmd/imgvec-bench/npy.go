package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
)

var npyShape = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)

// readNpy reads a 2-D little-endian float32 C-order .npy file (what
// numpy.save writes for np.stack(vecs).astype(np.float32)).
func readNpy(path string) (rows [][]float32, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		return nil, fmt.Errorf("%s: not a .npy file", path)
	}
	var hlen, off int
	switch b[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		if len(b) < 12 {
			return nil, fmt.Errorf("%s: truncated header", path)
		}
		hlen, off = int(binary.LittleEndian.Uint32(b[8:12])), 12
	default:
		return nil, fmt.Errorf("%s: .npy version %d", path, b[6])
	}
	if off+hlen > len(b) {
		return nil, fmt.Errorf("%s: truncated header", path)
	}
	hdr := string(b[off : off+hlen])
	if !strings.Contains(hdr, "'descr': '<f4'") || !strings.Contains(hdr, "'fortran_order': False") {
		return nil, fmt.Errorf("%s: want little-endian float32 C order, header %q", path, hdr)
	}
	m := npyShape.FindStringSubmatch(hdr)
	if m == nil {
		return nil, fmt.Errorf("%s: no shape in header %q", path, hdr)
	}
	var dims []int
	for _, f := range strings.Split(m[1], ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		d, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%s: shape %q", path, m[1])
		}
		dims = append(dims, d)
	}
	if len(dims) != 2 {
		return nil, fmt.Errorf("%s: shape %v, want 2-D", path, dims)
	}
	data := b[off+hlen:]
	if len(data) != 4*dims[0]*dims[1] {
		return nil, fmt.Errorf("%s: %d data bytes for shape %v", path, len(data), dims)
	}
	rows = make([][]float32, dims[0])
	for i := range rows {
		r := make([]float32, dims[1])
		for j := range r {
			r[j] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*(i*dims[1]+j):]))
		}
		rows[i] = r
	}
	return rows, nil
}

// compareVectors returns the largest absolute element difference and the
// smallest cosine similarity between pairs of vectors.
func compareVectors(a, b [][]float32) (maxAbs, minCos float64, err error) {
	if len(a) != len(b) {
		return 0, 0, fmt.Errorf("%d vectors vs %d", len(a), len(b))
	}
	minCos = 1
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return 0, 0, fmt.Errorf("vector %d: dim %d vs %d", i, len(a[i]), len(b[i]))
		}
		var dot, na, nb float64
		for j := range a[i] {
			x, y := float64(a[i][j]), float64(b[i][j])
			maxAbs = math.Max(maxAbs, math.Abs(x-y))
			dot += x * y
			na += x * x
			nb += y * y
		}
		c := 1.0
		if na > 0 && nb > 0 {
			c = dot / math.Sqrt(na*nb)
		} else if na != nb {
			c = 0
		}
		minCos = math.Min(minCos, c)
	}
	return maxAbs, minCos, nil
}
