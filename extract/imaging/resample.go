package imaging

import (
	"errors"
	"fmt"
	"image"
	"math"
	"strconv"
	"strings"
	"sync"
)

// Spec names a preprocessing: resize (the shorter side to Resize, or to
// exactly ResizeHeight×ResizeWidth) with a Pillow filter, an optional center
// crop, then x = v·rescale and (x - Mean) / Std per channel, CHW float32.
// The zero values of the fields after Std give torchvision's recipe:
// Resize(Resize) with PIL bilinear, CenterCrop(Crop) with round-half-even
// offsets, ToTensor (float32(v)/255), Normalize(Mean, Std).
type Spec struct {
	Resize, Crop int // shorter side; square crop (0: see below)
	Mean, Std    [3]float32

	// Filter is the resampling filter (default Bilinear).
	Filter Filter
	// ResizeHeight×ResizeWidth, when set (Resize 0), is an exact resize
	// (Hugging Face size {height, width}).
	ResizeHeight, ResizeWidth int
	// CropHeight×CropWidth, when set (Crop 0), is a crop of any shape.
	CropHeight, CropWidth int
	// FloorCrop places the crop at floor((n - crop) / 2) as transformers'
	// center_crop does, instead of torchvision's round-half-even.
	FloorCrop bool
	// Rescale, when set, computes x = float32(float64(v) * Rescale) as
	// transformers' rescale does (1 = no rescaling); 0 is float32(v) / 255.
	Rescale float64
	// FastJPEG decodes JPEGs at a reduced DCT scale first (DecodeOptions.Spec,
	// Pillow's Image.draft): several times faster on photos much larger
	// than the resize, and no longer bit-exact to the full decode.
	FastJPEG bool
}

// ImageNet is the torchvision ImageNet recipe used by VGG19:
// Resize(256), CenterCrop(224), Normalize(mean=[0.485,0.456,0.406], std=[0.229,0.224,0.225]).
var ImageNet = Spec{
	Resize: 256,
	Crop:   224,
	Mean:   [3]float32{0.485, 0.456, 0.406},
	Std:    [3]float32{0.229, 0.224, 0.225},
}

// maxCrop bounds the sizes of a Spec so that a bad Spec cannot ask for an
// absurd output buffer.
const maxCrop = 8192

// torchvision reports whether s is the plain torchvision recipe (every
// extension at its zero value): its Version keeps the original form.
func (s Spec) torchvision() bool {
	return s.Filter == Bilinear && s.ResizeHeight == 0 && s.ResizeWidth == 0 && s.CropHeight == 0 &&
		s.CropWidth == 0 && !s.FloorCrop && s.Rescale == 0
}

// Version returns a stable string naming the preprocessing, e.g.
// "tv-resize256-crop224-pilbilinear-mean0.485,0.456,0.406-std0.229,0.224,0.225-v1".
// It is part of the model identity: any change in the output of
// ResizeCrop/Preprocess for the same input must change this string (bump the
// trailing version); FastJPEG appends "-jpegdraft". Equal parameters give
// equal strings, however the Spec was made (a recipe name or a
// preprocessor_config.json).
func (s Spec) Version() string {
	if s.FastJPEG {
		exact := s
		exact.FastJPEG = false
		return exact.Version() + "-jpegdraft"
	}
	f := func(v [3]float32) string {
		p := make([]string, 3)
		for i, x := range v {
			p[i] = strconv.FormatFloat(float64(x), 'g', -1, 32)
		}
		return strings.Join(p, ",")
	}
	if s.torchvision() {
		return fmt.Sprintf("tv-resize%d-crop%d-pilbilinear-mean%s-std%s-v1", s.Resize, s.Crop, f(s.Mean), f(s.Std))
	}
	resize := fmt.Sprintf("short%d", s.Resize)
	if s.Resize == 0 {
		resize = fmt.Sprintf("%dx%d", s.ResizeHeight, s.ResizeWidth)
	}
	ch, cw := s.cropSize()
	crop := "none"
	if ch > 0 {
		crop = fmt.Sprintf("%dx%d", ch, cw)
		if s.FloorCrop {
			crop += "floor"
		}
	}
	rescale := "div255"
	if s.Rescale != 0 {
		rescale = strconv.FormatFloat(s.Rescale, 'g', -1, 64)
	}
	return fmt.Sprintf("pp-resize%s-pil%s-crop%s-rescale%s-mean%s-std%s-v2", resize, s.Filter, crop, rescale, f(s.Mean), f(s.Std))
}

// cropSize is the crop's height and width, 0 when there is none.
func (s Spec) cropSize() (h, w int) {
	if s.Crop > 0 {
		return s.Crop, s.Crop
	}
	return s.CropHeight, s.CropWidth
}

// OutputSize is the height and width of the tensor Preprocess writes.
func (s Spec) OutputSize() (h, w int) {
	if h, w = s.cropSize(); h > 0 {
		return h, w
	}
	return s.ResizeHeight, s.ResizeWidth
}

func (s Spec) validate() error {
	in := func(v int) bool { return v > 0 && v <= maxCrop }
	ch, cw := s.cropSize()
	switch {
	case s.Resize != 0 && (s.ResizeHeight != 0 || s.ResizeWidth != 0):
		return fmt.Errorf("imaging: invalid spec: both a shorter-side resize %d and an exact one %dx%d", s.Resize, s.ResizeHeight, s.ResizeWidth)
	case s.Resize == 0 && !(in(s.ResizeHeight) && in(s.ResizeWidth)):
		return fmt.Errorf("imaging: invalid spec: resize %d, %dx%d (want 0 < size <= %d)", s.Resize, s.ResizeHeight, s.ResizeWidth, maxCrop)
	case s.Resize != 0 && !in(s.Resize):
		return fmt.Errorf("imaging: invalid spec: resize %d (want 0 < resize <= %d)", s.Resize, maxCrop)
	case s.Crop != 0 && (s.CropHeight != 0 || s.CropWidth != 0):
		return fmt.Errorf("imaging: invalid spec: both crop %d and %dx%d", s.Crop, s.CropHeight, s.CropWidth)
	case ch == 0 && cw == 0 && s.Resize != 0:
		return fmt.Errorf("imaging: invalid spec: a shorter-side resize %d needs a crop (the output size would vary)", s.Resize)
	case (ch != 0 || cw != 0) && !(in(ch) && in(cw)):
		return fmt.Errorf("imaging: invalid spec: crop %dx%d (want 0 < crop <= %d)", ch, cw, maxCrop)
	case s.Resize != 0 && (ch > s.Resize || cw > s.Resize), s.Resize == 0 && (ch > s.ResizeHeight || cw > s.ResizeWidth):
		return fmt.Errorf("imaging: invalid spec: crop %dx%d larger than the resize (padding is not supported)", ch, cw)
	case s.Filter < Bilinear || s.Filter > Hamming:
		return fmt.Errorf("imaging: invalid spec: filter %d", s.Filter)
	case s.Rescale < 0 || math.IsNaN(s.Rescale) || math.IsInf(s.Rescale, 0):
		return fmt.Errorf("imaging: invalid spec: rescale %v", s.Rescale)
	}
	for _, v := range s.Std {
		if v == 0 || math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("imaging: invalid spec: std %v", s.Std)
		}
	}
	return nil
}

// ResizedSize returns the size the resize gives a w×h image: exactly
// ResizeWidth×ResizeHeight, or the shorter side s.Resize and the longer
// int(s.Resize*long/short) (torchvision's and transformers' rule).
func (s Spec) ResizedSize(w, h int) (nw, nh int) {
	if s.Resize == 0 {
		return s.ResizeWidth, s.ResizeHeight
	}
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

// offset places a crop of c in n: torchvision's rounding or transformers'
// floor division.
func (s Spec) offset(n, c int) int {
	if s.FloorCrop {
		return (n - c) >> 1 // Python's // on possibly negative values floors
	}
	return cropOffset(n, c)
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

type coeffKey struct {
	f               Filter
	in, out, off, n int
}

// coeffCache caches weights per (size, window). Photo collections have few
// distinct sizes; the cache is dropped whole when it grows past maxCached.
var coeffCache struct {
	sync.Mutex
	m map[coeffKey]*coeffs
}

const maxCached = 256

func getCoeffs(f Filter, in, out, off, n int) *coeffs {
	key := coeffKey{f, in, out, off, n}
	coeffCache.Lock()
	c := coeffCache.m[key]
	coeffCache.Unlock()
	if c != nil {
		return c
	}
	c = computeCoeffs(f, in, out, off, n)
	coeffCache.Lock()
	if coeffCache.m == nil || len(coeffCache.m) >= maxCached {
		coeffCache.m = make(map[coeffKey]*coeffs)
	}
	coeffCache.m[key] = c
	coeffCache.Unlock()
	return c
}

// computeCoeffs follows Pillow's precompute_coeffs + normalize_coeffs_8bpc
// for filter f with an antialiasing scale, but only for outputs
// off..off+n-1 (every output's weights are independent). Explicit float64
// conversions keep the compiler from fusing multiply-adds, so the doubles
// match C's.
func computeCoeffs(f Filter, in, out, off, n int) *coeffs {
	fsupport, filter := f.kernel()
	scale := float64(in) / float64(out)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support := float64(fsupport * filterscale)
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
			v := filter(float64(float64(x+xmin)-center+0.5) * ss)
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
	w := img.window()
	if !w.In(image.Rect(0, 0, img.Width, img.Height)) {
		return fmt.Errorf("imaging: window %v outside the %dx%d image", w, img.Width, img.Height)
	}
	if int64(w.Dx())*int64(w.Dy())*3 > int64(len(img.Pix)) {
		return fmt.Errorf("imaging: %dx%d image has %d bytes, want %d", w.Dx(), w.Dy(), len(img.Pix), w.Dx()*w.Dy()*3)
	}
	return nil
}

// sourceWindow is the part of a W×H image that s's resize and crop read:
// the source rows of the vertical pass and the source columns of the
// horizontal pass that the crop's outputs use (the whole image for the
// nearest filter, whose coordinates are not windowed).
func (s Spec) sourceWindow(W, H int) image.Rectangle {
	ch, cw := s.OutputSize()
	nw, nh := s.ResizedSize(W, H)
	left, top := s.offset(nw, cw), s.offset(nh, ch)
	if s.Filter == Nearest && !(nw == W && nh == H) || left < 0 || top < 0 || left+cw > nw || top+ch > nh {
		return image.Rect(0, 0, W, H)
	}
	span := func(in, out, off, n int) (lo, hi int) {
		if in == out {
			return off, off + n
		}
		c := getCoeffs(s.Filter, in, out, off, n)
		lo, hi = in, 0
		for i := 0; i < n; i++ {
			l, cnt := int(c.bounds[2*i]), int(c.bounds[2*i+1])
			if cnt > 0 {
				lo, hi = min(lo, l), max(hi, l+cnt)
			}
		}
		if hi < lo {
			return 0, 0
		}
		return lo, hi
	}
	if nw == W && nh == H {
		return image.Rect(left, top, left+cw, top+ch)
	}
	x0, x1 := span(W, nw, left, cw)
	y0, y1 := span(H, nh, top, ch)
	return image.Rect(x0, y0, x1, y1)
}

// ResizeCrop returns the uint8 result of the spec's resize and crop: an
// OutputSize() RGB image, bit-exact with Pillow 11's Image.resize followed
// by crop (torchvision's Resize + CenterCrop, or transformers' resize +
// center_crop).
func ResizeCrop(img RGB, s Spec) (RGB, error) {
	if err := s.validate(); err != nil {
		return RGB{}, err
	}
	h, w := s.OutputSize()
	out := RGB{Width: w, Height: h, Pix: make([]byte, 3*w*h)}
	if err := resizeCrop(img, s, out.Pix); err != nil {
		return RGB{}, err
	}
	return out, nil
}

var errDst = errors.New("imaging: destination too small")

// resizeCrop writes the OutputSize() crop into dst (len >= 3*h*w).
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
	ch, cw := s.OutputSize()
	if len(dst) < 3*ch*cw {
		return errDst
	}
	W, H := img.Width, img.Height
	nw, nh := s.ResizedSize(W, H)
	left, top := s.offset(nw, cw), s.offset(nh, ch)
	if left < 0 || top < 0 || left+cw > nw || top+ch > nh {
		return fmt.Errorf("imaging: crop %dx%d does not fit resized %dx%d", cw, ch, nw, nh)
	}
	// Pix may hold only a window of the image: (x, y) is at
	// 3*((y-win.Min.Y)*stride/3 + x-win.Min.X).
	win := img.window()
	if need := s.sourceWindow(W, H); !need.In(win) {
		return fmt.Errorf("imaging: the image holds %v, the spec reads %v", win, need)
	}
	stride, wx, wy := 3*win.Dx(), win.Min.X, win.Min.Y
	if nw == W && nh == H { // Pillow copies: only the crop is left
		for y := 0; y < ch; y++ {
			r := img.Pix[stride*(top+y-wy)+3*(left-wx):]
			copy(dst[3*cw*y:3*cw*(y+1)], r[:3*cw])
		}
		return nil
	}
	if s.Filter == Nearest {
		nearest(dst, img, nw, nh, left, top, cw, ch)
		return nil
	}
	needH, needV := nw != W, nh != H

	// Source rows the vertical pass needs (or the cropped rows if there is none).
	var vc *coeffs
	rowLo, rowHi := top, top+ch
	if needV {
		vc = getCoeffs(s.Filter, H, nh, top, ch)
		rowLo, rowHi = H, 0
		for i := 0; i < ch; i++ {
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
		hc := getCoeffs(s.Filter, W, nw, left, cw)
		tmpBuf := getBuf(3 * cw * (rowHi - rowLo))
		defer putBuf(tmpBuf)
		tmp = tmpBuf
		horizontal(tmp, img.Pix[stride*(rowLo-wy):], stride, wx, rowHi-rowLo, hc, cw)
	} else {
		tmp = img.Pix[stride*(rowLo-wy) : stride*(rowHi-wy)]
		tmpStride, tmpX0 = stride, 3*(left-wx)
	}

	if needV {
		vertical(dst, tmp, tmpStride, tmpX0, rowLo, vc, cw, ch)
		return nil
	}
	for y := 0; y < ch; y++ {
		r := tmp[(top+y-rowLo)*tmpStride+tmpX0:]
		copy(dst[3*cw*y:3*cw*(y+1)], r[:3*cw])
	}
	return nil
}

// nearest is Pillow's NEAREST resize (ImagingScaleAffine): source
// coordinates accumulate in double from the first output pixel, start at
// half a step, and truncate; only the crop window is written.
func nearest(dst []byte, img RGB, nw, nh, left, top, cw, ch int) {
	coords := func(in, out, off, n int) []int {
		step := float64(in) / float64(out)
		idx := make([]int, n)
		v := float64(step * 0.5)
		for x := 0; x < off+n; x++ {
			if x >= off {
				i := int(v) // v >= 0
				idx[x-off] = min(i, in-1)
			}
			v += step
		}
		return idx
	}
	xs, ys := coords(img.Width, nw, left, cw), coords(img.Height, nh, top, ch)
	for y, sy := range ys {
		row := img.Pix[3*img.Width*sy:]
		o := dst[3*cw*y : 3*cw*(y+1)]
		for x, sx := range xs {
			copy(o[3*x:3*x+3], row[3*sx:3*sx+3])
		}
	}
}

// horizontal resamples rows rows of src (stride srcStride, whose first
// column is source column x0) into tmp, cw columns each.
func horizontal(tmp, src []byte, srcStride, x0, rows int, c *coeffs, cw int) {
	const half = 1 << (precisionBits - 1)
	ks := c.ksize
	for y := 0; y < rows; y++ {
		row := src[y*srcStride : (y+1)*srcStride]
		o := tmp[y*3*cw : (y+1)*3*cw]
		for x := 0; x < cw; x++ {
			xmin, cnt := int(c.bounds[2*x])-x0, int(c.bounds[2*x+1])
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

func vertical(dst, tmp []byte, stride, x0, rowLo int, c *coeffs, cw, ch int) {
	const half = 1 << (precisionBits - 1)
	ks := c.ksize
	acc := make([]int32, 3*cw)
	for y := 0; y < ch; y++ {
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

// Preprocess writes the normalised 3×H×W CHW float32 tensor of img
// (H×W = s.OutputSize()) into dst (len(dst) >= 3*H*W): ResizeCrop, then
// each pixel through s.Levels.
func Preprocess(img RGB, s Spec, dst []float32) error {
	if err := s.validate(); err != nil {
		return err
	}
	h, w := s.OutputSize()
	n := h * w
	if len(dst) < 3*n {
		return fmt.Errorf("imaging: dst has %d floats, want %d", len(dst), 3*n)
	}
	buf := getBuf(3 * n)
	defer putBuf(buf)
	if err := resizeCrop(img, s, buf); err != nil {
		return err
	}
	lut := s.Levels()
	r, g, b := dst[:n], dst[n:2*n], dst[2*n:3*n]
	for i := 0; i < n; i++ {
		p := buf[3*i : 3*i+3 : 3*i+3]
		r[i] = lut[p[0]]
		g[i] = lut[256+int(p[1])]
		b[i] = lut[512+int(p[2])]
	}
	return nil
}

// PreprocessPixels writes the H×W×3 RGB crop of img (before
// normalisation; H×W = s.OutputSize()) into dst (len(dst) >= 3*H*W): what
// Preprocess normalises, for a model that normalises in its graph
// (onnxgraph.PixelInput with s.Levels).
func PreprocessPixels(img RGB, s Spec, dst []byte) error {
	if err := s.validate(); err != nil {
		return err
	}
	h, w := s.OutputSize()
	if len(dst) < 3*h*w {
		return fmt.Errorf("imaging: dst has %d bytes, want %d", len(dst), 3*h*w)
	}
	return resizeCrop(img, s, dst[:3*h*w])
}

// Levels is the normalised value of every 8-bit level of each channel:
// Levels()[256*c+v] is x = float32(v)/255 (torchvision's ToTensor) or
// float32(float64(v)*Rescale) (transformers' rescale), then
// (x - Mean[c]) / Std[c] in float32.
func (s Spec) Levels() []float32 {
	lut := make([]float32, 3*256)
	for c := 0; c < 3; c++ {
		m, sd := s.Mean[c], s.Std[c]
		for v := 0; v < 256; v++ {
			x := float32(v) / 255
			if s.Rescale != 0 {
				x = float32(float64(v) * s.Rescale)
			}
			lut[256*c+v] = (x - m) / sd
		}
	}
	return lut
}
