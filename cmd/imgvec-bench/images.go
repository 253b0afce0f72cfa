package main

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"

	"golang.org/x/sync/errgroup"
)

// imageSet is one generated set of JPEGs in its own directory.
type imageSet struct {
	Name   string   `json:"name"` // "640x480", "4000x3000"
	Width  int      `json:"width"`
	Height int      `json:"height"`
	Dir    string   `json:"-"`
	Files  []string `json:"-"` // absolute paths, sorted (the folder source's key order)
	Bytes  int64    `json:"bytes"`
	GenSec float64  `json:"generate_s"`
}

func (s *imageSet) Count() int { return len(s.Files) }

// large reports a 12 MP-class set: fewer of its images are decoded alone
// (--decode-large), and it also runs end-to-end with fast decoding.
func (s *imageSet) large() bool { return s.Width*s.Height > 4_000_000 }

// makeImageSet writes n photo-like w×h JPEGs (quality 90) into dir/NAME,
// reusing files already there (same name = same parameters and seed).
func makeImageSet(dir string, w, h, n int) (*imageSet, error) {
	name := fmt.Sprintf("%dx%d", w, h)
	s := &imageSet{Name: name, Width: w, Height: h, Dir: filepath.Join(dir, name)}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, err
	}
	s.Files = make([]string, n)
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range n {
		p := filepath.Join(s.Dir, fmt.Sprintf("img-%04d.jpg", i))
		s.Files[i] = p
		if _, err := os.Stat(p); err == nil {
			continue
		}
		g.Go(func() error {
			var buf bytes.Buffer
			if err := jpeg.Encode(&buf, synthPhoto(w, h, uint64(i)+uint64(w)*7919), &jpeg.Options{Quality: 90}); err != nil {
				return err
			}
			tmp := p + ".tmp"
			if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
				return err
			}
			return os.Rename(tmp, p)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("generate %s images: %w", name, err)
	}
	sort.Strings(s.Files)
	for _, p := range s.Files {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		s.Bytes += st.Size()
	}
	return s, nil
}

// progressiveCopy rewrites the first n images of s as progressive JPEGs
// with jpegtran (lossless: the same coefficients, in jpegtran's multi-scan
// script, as web images often are) into a set of their own, named
// "NAME progressive".
func progressiveCopy(s *imageSet, n int) (*imageSet, error) {
	tool, err := exec.LookPath("jpegtran")
	if err != nil {
		return nil, fmt.Errorf("progressive copies need jpegtran (make setup installs libjpeg-turbo-progs): %w", err)
	}
	p := &imageSet{Name: s.Name + " progressive", Width: s.Width, Height: s.Height, Dir: s.Dir + "-progressive"}
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return nil, err
	}
	for _, f := range s.Files[:min(n, len(s.Files))] {
		dst := filepath.Join(p.Dir, filepath.Base(f))
		if _, err := os.Stat(dst); err != nil {
			if out, err := exec.Command(tool, "-progressive", "-outfile", dst+".tmp", f).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("jpegtran %s: %v: %s", f, err, out)
			}
			if err := os.Rename(dst+".tmp", dst); err != nil {
				return nil, err
			}
		}
		st, err := os.Stat(dst)
		if err != nil {
			return nil, err
		}
		p.Files = append(p.Files, dst)
		p.Bytes += st.Size()
	}
	return p, nil
}

// synthPhoto is a deterministic photo-like image: smooth colour gradients, a
// wavy texture whose phase depends on seed (so every image differs), soft
// blobs, and per-pixel noise. Separable tables keep a 12 MP image at well
// under a second.
func synthPhoto(w, h int, seed uint64) *image.RGBA {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	ph := rng.Float64() * 2 * math.Pi
	fxk, fyk := 20+rng.Float64()*30, 15+rng.Float64()*30
	// sin(a(x) + b(y)) = sin a cos b + cos a sin b
	sa, ca := make([]float64, w), make([]float64, w)
	gx := make([]float64, w)
	for x := range w {
		fx := float64(x) / float64(w)
		sa[x], ca[x] = math.Sincos(fxk*fx + ph)
		gx[x] = fx
	}
	sb, cb := make([]float64, h), make([]float64, h)
	gy := make([]float64, h)
	for y := range h {
		fy := float64(y) / float64(h)
		sb[y], cb[y] = math.Sincos(fyk*fy + 2*math.Cos(7*fy))
		gy[y] = fy
	}
	base := [3]float64{60 + rng.Float64()*120, 60 + rng.Float64()*120, 60 + rng.Float64()*120}
	slopeX := [3]float64{rng.Float64()*120 - 60, rng.Float64()*120 - 60, rng.Float64()*120 - 60}
	slopeY := [3]float64{rng.Float64()*120 - 60, rng.Float64()*120 - 60, rng.Float64()*120 - 60}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	var state = seed*0x9e3779b97f4a7c15 + 1
	for y := range h {
		row := img.Pix[y*img.Stride : y*img.Stride+4*w]
		fy := gy[y]
		for x := range w {
			t := 22 * (sa[x]*cb[y] + ca[x]*sb[y])
			// xorshift noise, roughly ±6
			state ^= state << 13
			state ^= state >> 7
			state ^= state << 17
			fx := gx[x]
			o := 4 * x
			for c := range 3 {
				n := float64(int((state>>(c*16))&0xff)-128) / 21
				v := base[c] + slopeX[c]*fx + slopeY[c]*fy + t*(0.6+0.2*float64(c)) + n
				if v < 0 {
					v = 0
				} else if v > 255 {
					v = 255
				}
				row[o+c] = uint8(v)
			}
			row[o+3] = 255
		}
	}
	return img
}
