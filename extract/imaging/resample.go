package imaging

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
)

// Spec names a torchvision-style preprocessing: Resize(Resize) on the
// shorter side with PIL bilinear, CenterCrop(Crop), ToTensor, Normalize(Mean, Std).
type Spec struct {
	Resize, Crop int
	Mean, Std    [3]float32
}

// ImageNet is the torchvision ImageNet recipe used by VGG19:
// Resize(256), CenterCrop(224), Normalize(mean=[0.485,0.456,0.406], std=[0.229,0.224,0.225]).
var ImageNet = Spec{
	Resize: 256,
	Crop:   224,
	Mean:   [3]float32{0.485, 0.456, 0.406},
	Std:    [3]float32{0.229, 0.224, 0.225},
}

// maxCrop bounds Spec.Crop and Spec.Resize so that a bad Spec cannot ask for
// an absurd output buffer.
const maxCrop = 8192

// Version returns a stable string naming the preprocessing, e.g.
// "tv-resize256-crop224-pilbilinear-mean0.485,0.456,0.406-std0.229,0.224,0.225-v1".
// It is part of the model identity: any change in the output of
// ResizeCrop/Preprocess for the same input must change this string (bump the
// trailing version).
func (s Spec) Version() string {
	f := func(v [3]float32) string {
		p := make([]string, 3)
		for i, x := range v {
			p[i] = strconv.FormatFloat(float64(x), 'g', -1, 32)
		}
		return strings.Join(p, ",")
	}
	return fmt.Sprintf("tv-resize%d-crop%d-pilbilinear-mean%s-std%s-v1", s.Resize, s.Crop, f(s.Mean), f(s.Std))
}

func (s Spec) validate() error {
	if s.Resize <= 0 || s.Crop <= 0 || s.Resize > maxCrop || s.Crop > maxCrop {
		return fmt.Errorf("imaging: invalid spec: resize %d, crop %d (want 0 < crop <= resize <= %d)", s.Resize, s.Crop, maxCrop)
	}
	if s.Crop > s.Resize {
		return fmt.Errorf("imaging: invalid spec: crop %d larger than resize %d (padding is not supported)", s.Crop, s.Resize)
	}
	for _, v := range s.Std {
		if v == 0 || math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("imaging: invalid spec: std %v", s.Std)
		}
	}
	return nil
}

// ResizedSize returns the size torchvision's Resize(s.Resize) gives a w×h
// image: the shorter side becomes s.Resize, the longer int(s.Resize*long/short).
func (s Spec) ResizedSize(w, h int) (nw, nh int) {
	short, long := w, h
	if w > h {
		short, long = h, w
	}
	newShort := s.Resize
	// Python: int(size * long / short) with true (float64) division.
	newLong := int(float64(newShort*long) / float64(short))
	if w <= h {
		return newShort, newLong
	}
	return newLong, newShort
}

// cropOffset is torchvision's int(round((n - crop) / 2.0)); Python's round
// rounds half to even.
func cropOffset(n, crop int) int {
	return int(math.RoundToEven(float64(n-crop) / 2.0))
}

// precisionBits is Pillow's PRECISION_BITS (32 - 8 - 2).
const precisionBits = 22

// coeffs holds fixed-point bilinear weights for a window [off, off+n) of the
// outputs of one resampling axis (inSize -> outSize).
type coeffs struct {
	ksize  int
	bounds []int32 // per output: first source index, tap count
	k      []int32 // per output: ksize weights
}

type coeffKey struct{ in, out, off, n int }

// coeffCache caches weights per (size, window). Photo collections have few
// distinct sizes; the cache is dropped whole when it grows past maxCached.
var coeffCache struct {
	sync.Mutex
	m map[coeffKey]*coeffs
}

const maxCached = 256

func getCoeffs(in, out, off, n int) *coeffs {
	key := coeffKey{in, out, off, n}
	coeffCache.Lock()
	c := coeffCache.m[key]
	coeffCache.Unlock()
	if c != nil {
		return c
	}
	c = computeCoeffs(in, out, off, n)
	coeffCache.Lock()
	if coeffCache.m == nil || len(coeffCache.m) >= maxCached {
		coeffCache.m = make(map[coeffKey]*coeffs)
	}
	coeffCache.m[key] = c
	coeffCache.Unlock()
	return c
}

// computeCoeffs follows Pillow's precompute_coeffs + normalize_coeffs_8bpc
// for the bilinear (triangle, support 1) filter with an antialiasing scale,
// but only for outputs off..off+n-1 (every output's weights are independent).
// Explicit float64 conversions keep the compiler from fusing multiply-adds,
// so the doubles match C's.
func computeCoeffs(in, out, off, n int) *coeffs {
	scale := float64(in) / float64(out)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support := 1.0 * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	c := &coeffs{ksize: ksize, bounds: make([]int32, 2*n), k: make([]int32, n*ksize)}
	w := make([]float64, ksize)
	ss := 1.0 / filterscale
	for i := 0; i < n; i++ {
		xx := off + i
		center := float64(float64(xx)+0.5) * scale
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > in {
			xmax = in
		}
		xmax -= xmin
		if xmax > ksize { // cannot happen; keeps indexing provably in range
			xmax = ksize
		}
		ww := 0.0
		for x := 0; x < xmax; x++ {
			t := float64(float64(x+xmin)-center+0.5) * ss
			if t < 0 {
				t = -t
			}
			v := 0.0
			if t < 1 {
				v = 1 - t
			}
			w[x] = v
			ww += v
		}
		k := c.k[i*ksize : (i+1)*ksize]
		for x := 0; x < xmax; x++ {
			v := w[x]
			if ww != 0 {
				v /= ww
			}
			f := float64(v * (1 << precisionBits))
			if v < 0 {
				k[x] = int32(-0.5 + f)
			} else {
				k[x] = int32(0.5 + f)
			}
		}
		c.bounds[2*i] = int32(xmin)
		c.bounds[2*i+1] = int32(xmax)
	}
	return c
}

func clip8(v int32) byte {
	v >>= precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return byte(v)
}

func (img RGB) check() error {
	if img.Width <= 0 || img.Height <= 0 {
		return fmt.Errorf("imaging: empty image %dx%d", img.Width, img.Height)
	}
	if int64(img.Width)*int64(img.Height)*3 > int64(len(img.Pix)) {
		return fmt.Errorf("imaging: %dx%d image has %d bytes, want %d", img.Width, img.Height, len(img.Pix), img.Width*img.Height*3)
	}
	return nil
}

// ResizeCrop returns the uint8 result of torchvision Resize(s.Resize) with
// PIL bilinear + CenterCrop(s.Crop): a s.Crop×s.Crop RGB image, bit-exact
// with Pillow 11's Image.resize(BILINEAR) followed by crop.
func ResizeCrop(img RGB, s Spec) (RGB, error) {
	if err := s.validate(); err != nil {
		return RGB{}, err
	}
	out := RGB{Width: s.Crop, Height: s.Crop, Pix: make([]byte, 3*s.Crop*s.Crop)}
	if err := resizeCrop(img, s, out.Pix); err != nil {
		return RGB{}, err
	}
	return out, nil
}

var errDst = errors.New("imaging: destination too small")

// resizeCrop writes the s.Crop×s.Crop crop into dst (len >= 3*Crop*Crop).
//
// Pillow resizes horizontally first into an 8-bit intermediate holding the
// source rows the vertical pass reads, then vertically; a pass is skipped when
// its dimension is unchanged. Every output value of either pass depends only
// on its own weights and inputs, so computing just the crop window — the
// crop's columns of the source rows the crop's rows need — gives the same bytes.
func resizeCrop(img RGB, s Spec, dst []byte) error {
	if err := img.check(); err != nil {
		return err
	}
	if len(dst) < 3*s.Crop*s.Crop {
		return errDst
	}
	W, H := img.Width, img.Height
	nw, nh := s.ResizedSize(W, H)
	cw := s.Crop
	left, top := cropOffset(nw, cw), cropOffset(nh, cw)
	if left < 0 || top < 0 || left+cw > nw || top+cw > nh {
		return fmt.Errorf("imaging: crop %d does not fit resized %dx%d", cw, nw, nh)
	}
	needH, needV := nw != W, nh != H

	// Source rows the vertical pass needs (or the cropped rows if there is none).
	var vc *coeffs
	rowLo, rowHi := top, top+cw
	if needV {
		vc = getCoeffs(H, nh, top, cw)
		rowLo, rowHi = H, 0
		for i := 0; i < cw; i++ {
			lo, cnt := int(vc.bounds[2*i]), int(vc.bounds[2*i+1])
			if cnt == 0 {
				continue
			}
			rowLo = min(rowLo, lo)
			rowHi = max(rowHi, lo+cnt)
		}
		if rowHi < rowLo {
			rowLo, rowHi = 0, 0
		}
	}

	// tmp: rows [rowLo,rowHi) of the horizontally resampled image, crop
	// columns only, stride 3*cw. Without a horizontal pass, read the source.
	var tmp []byte
	tmpStride, tmpX0 := 3*cw, 0
	if needH {
		hc := getCoeffs(W, nw, left, cw)
		tmpBuf := getBuf(3 * cw * (rowHi - rowLo))
		defer putBuf(tmpBuf)
		tmp = tmpBuf
		horizontal(tmp, img.Pix, 3*W, rowLo, rowHi, hc, cw)
	} else {
		tmp = img.Pix[3*W*rowLo : 3*W*rowHi]
		tmpStride, tmpX0 = 3*W, 3*left
	}

	if needV {
		vertical(dst, tmp, tmpStride, tmpX0, rowLo, vc, cw)
		return nil
	}
	for y := 0; y < cw; y++ {
		r := tmp[(top+y-rowLo)*tmpStride+tmpX0:]
		copy(dst[3*cw*y:3*cw*(y+1)], r[:3*cw])
	}
	return nil
}

func horizontal(tmp, src []byte, srcStride, rowLo, rowHi int, c *coeffs, cw int) {
	const half = 1 << (precisionBits - 1)
	ks := c.ksize
	for y := rowLo; y < rowHi; y++ {
		row := src[y*srcStride : (y+1)*srcStride]
		o := tmp[(y-rowLo)*3*cw : (y-rowLo+1)*3*cw]
		for x := 0; x < cw; x++ {
			xmin, cnt := int(c.bounds[2*x]), int(c.bounds[2*x+1])
			k := c.k[x*ks : x*ks+cnt]
			p := row[3*xmin : 3*(xmin+cnt)]
			s0, s1, s2 := int32(half), int32(half), int32(half)
			// Integer sums: the order of the taps does not change the result.
			for len(k) >= 4 && len(p) >= 12 {
				w0, w1, w2, w3 := k[0], k[1], k[2], k[3]
				s0 += int32(p[0])*w0 + int32(p[3])*w1 + int32(p[6])*w2 + int32(p[9])*w3
				s1 += int32(p[1])*w0 + int32(p[4])*w1 + int32(p[7])*w2 + int32(p[10])*w3
				s2 += int32(p[2])*w0 + int32(p[5])*w1 + int32(p[8])*w2 + int32(p[11])*w3
				k, p = k[4:], p[12:]
			}
			for len(k) > 0 && len(p) >= 3 {
				w := k[0]
				s0 += int32(p[0]) * w
				s1 += int32(p[1]) * w
				s2 += int32(p[2]) * w
				k, p = k[1:], p[3:]
			}
			o[3*x], o[3*x+1], o[3*x+2] = clip8(s0), clip8(s1), clip8(s2)
		}
	}
}

func vertical(dst, tmp []byte, stride, x0, rowLo int, c *coeffs, cw int) {
	const half = 1 << (precisionBits - 1)
	ks := c.ksize
	acc := make([]int32, 3*cw)
	for y := 0; y < cw; y++ {
		ymin, cnt := int(c.bounds[2*y]), int(c.bounds[2*y+1])
		k := c.k[y*ks : y*ks+cnt]
		for i := range acc {
			acc[i] = half
		}
		for j, w := range k {
			off := (ymin+j-rowLo)*stride + x0
			r := tmp[off : off+len(acc)]
			a := acc[:len(r)]
			for i, v := range r {
				a[i] += int32(v) * w
			}
		}
		o := dst[3*cw*y : 3*cw*(y+1)]
		o = o[:len(acc)]
		for i, v := range acc {
			o[i] = clip8(v)
		}
	}
}

// Preprocess writes the normalised 3×Crop×Crop CHW float32 tensor of img into
// dst (len(dst) >= 3*Crop*Crop): ResizeCrop, then x = float32(v)/255,
// (x - Mean[c]) / Std[c] in float32, as torchvision's ToTensor + Normalize.
func Preprocess(img RGB, s Spec, dst []float32) error {
	if err := s.validate(); err != nil {
		return err
	}
	n := s.Crop * s.Crop
	if len(dst) < 3*n {
		return fmt.Errorf("imaging: dst has %d floats, want %d", len(dst), 3*n)
	}
	buf := getBuf(3 * n)
	defer putBuf(buf)
	if err := resizeCrop(img, s, buf); err != nil {
		return err
	}
	var lut [3][256]float32
	for c := 0; c < 3; c++ {
		m, sd := s.Mean[c], s.Std[c]
		for v := 0; v < 256; v++ {
			x := float32(v) / 255
			lut[c][v] = (x - m) / sd
		}
	}
	r, g, b := dst[:n], dst[n:2*n], dst[2*n:3*n]
	for i := 0; i < n; i++ {
		p := buf[3*i : 3*i+3 : 3*i+3]
		r[i] = lut[0][p[0]]
		g[i] = lut[1][p[1]]
		b[i] = lut[2][p[2]]
	}
	return nil
}
