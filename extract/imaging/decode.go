package imaging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/png"
	"io"
	"strings"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"

	"github.com/imgvec/imgvec/schema"
)

// DefaultMaxPixels is Pillow's Image.MAX_IMAGE_PIXELS.
const DefaultMaxPixels = 89_478_485

// DefaultMaxBytes is the default input size cap (512 MiB).
const DefaultMaxBytes = 512 << 20

// DecodeOptions bounds and tunes Decode. The zero value is the default.
type DecodeOptions struct {
	// MaxPixels is the pixel budget (width*height), checked from the header
	// before any full decode. 0 means DefaultMaxPixels; < 0 means no limit.
	MaxPixels int64
	// MaxBytes caps the input size. 0 means DefaultMaxBytes; < 0 means no limit.
	MaxBytes int64
	// IgnoreOrientation skips EXIF orientation. By default (false) the
	// orientation is applied, as a photo viewer does; note that the plain
	// torchvision recipe (Image.open(p).convert("RGB")) does not apply it.
	IgnoreOrientation bool
	// Spec, when set (its Resize or ResizeHeight), is the preprocessing the
	// image is decoded for. A baseline JPEG shown as stored is then decoded
	// only where Spec's resize and crop read it (RGB.Window), which changes
	// no output byte. With Spec.FastJPEG a JPEG is decoded at 1/2, 1/4 or
	// 1/8 scale in the DCT domain (libjpeg-turbo's scaled IDCT): the
	// smallest of those that keeps the image at least as large as Spec's
	// resize gives it, as Pillow's Image.draft chooses — no longer Pillow's
	// full decode — a baseline file also in the window only, a progressive
	// one at 1/8 without the scans that scale does not read. Other formats
	// are decoded in full.
	Spec Spec
}

// Info describes the decoded input.
type Info struct {
	Format        string // "jpeg", "png", "gif", "webp", "bmp", "tiff"
	Width, Height int    // as stored, before orientation
	Orientation   int    // EXIF orientation 1..8 as read (1 when absent), applied unless IgnoreOrientation
}

func (o DecodeOptions) maxPixels() int64 {
	switch {
	case o.MaxPixels == 0:
		return DefaultMaxPixels
	case o.MaxPixels < 0:
		return -1
	}
	return o.MaxPixels
}

func (o DecodeOptions) maxBytes() int64 {
	switch {
	case o.MaxBytes == 0:
		return DefaultMaxBytes
	case o.MaxBytes < 0:
		return -1
	}
	return o.MaxBytes
}

func fail(name string, class schema.FailureClass, err error, format string, args ...any) error {
	return &schema.ItemError{
		Item:   name,
		Stage:  "decode",
		Class:  class,
		Reason: fmt.Sprintf(format, args...),
		Err:    err,
	}
}

// sniff returns the supported format of b, or "" and a description of what
// the bytes look like.
func sniff(b []byte) (format, looksLike string) {
	switch {
	case len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF:
		return "jpeg", ""
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "png", ""
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return "gif", ""
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "webp", ""
	case len(b) >= 14 && b[0] == 'B' && b[1] == 'M':
		return "bmp", ""
	case bytes.HasPrefix(b, []byte("II*\x00")), bytes.HasPrefix(b, []byte("MM\x00*")):
		return "tiff", ""
	}
	head := b[:min(len(b), 512)]
	lower := strings.ToLower(string(head))
	switch {
	case len(b) >= 12 && string(b[4:8]) == "ftyp":
		brand := string(b[8:12])
		switch brand {
		case "heic", "heix", "hevc", "heim", "heis", "mif1", "msf1":
			return "", "HEIC/HEIF (ftyp " + brand + ")"
		case "avif", "avis":
			return "", "AVIF (ftyp " + brand + ")"
		}
		return "", fmt.Sprintf("an ISO media file (ftyp %q)", brand)
	case strings.Contains(lower, "<svg"):
		return "", "SVG"
	case bytes.HasPrefix(b, []byte("%PDF")):
		return "", "PDF"
	case bytes.HasPrefix(b, []byte{0xFF, 0x0A}), bytes.HasPrefix(b, []byte("\x00\x00\x00\x0cJXL ")):
		return "", "JPEG XL"
	case bytes.HasPrefix(b, []byte("\x00\x00\x01\x00")):
		return "", "ICO"
	case bytes.HasPrefix(b, []byte("8BPS")):
		return "", "PSD"
	case strings.HasPrefix(strings.TrimSpace(lower), "<?xml"):
		return "", "XML"
	case isText(head):
		return "", "text"
	}
	return "", "unknown binary data"
}

func isText(b []byte) bool {
	for _, c := range b {
		if c < 0x09 || (c > 0x0d && c < 0x20) || c == 0x7f {
			return false
		}
	}
	return true
}

// Decode decodes one image to packed RGB exactly as Pillow's
// Image.open(...).convert("RGB") would (see the package doc for the
// exceptions), then applies EXIF orientation unless opts.IgnoreOrientation.
//
// name only labels errors. Decode never panics: every failure is a
// *schema.ItemError with Stage "decode" and one of the classes empty,
// truncated, decode, unsupported_format, too_large.
func Decode(name string, data []byte, opts DecodeOptions) (img RGB, info Info, err error) {
	defer func() {
		if r := recover(); r != nil {
			img.Release()
			img, info = RGB{}, Info{}
			err = fail(name, schema.FailDecode, nil, "decoder panicked: %v", r)
		}
	}()
	if len(data) == 0 {
		return RGB{}, Info{}, fail(name, schema.FailEmpty, nil, "file is empty")
	}
	if mb := opts.maxBytes(); mb >= 0 && int64(len(data)) > mb {
		return RGB{}, Info{}, fail(name, schema.FailTooLarge, nil, "%d bytes exceeds the %d byte limit", len(data), mb)
	}
	format, looks := sniff(data)
	if format == "" {
		return RGB{}, Info{}, fail(name, schema.FailUnsupportedFormat, nil, "not a supported image format (looks like %s)", looks)
	}
	d := decoder{name: name, data: data, maxPixels: opts.maxPixels(), info: Info{Format: format, Orientation: 1}, opts: opts}
	switch format {
	case "jpeg":
		img, err = d.jpeg()
	case "png":
		img, err = d.png()
	case "gif":
		img, err = d.gif()
	case "webp":
		img, err = d.webp()
	case "bmp":
		img, err = d.std(bmp.DecodeConfig, bmp.Decode)
	case "tiff":
		d.info.Orientation = tiffOrientation(data)
		img, err = d.std(tiff.DecodeConfig, tiff.Decode)
	}
	if err != nil {
		img.Release()
		return RGB{}, Info{}, err
	}
	if !opts.IgnoreOrientation {
		img = orient(img, d.info.Orientation)
	}
	return img, d.info, nil
}

type decoder struct {
	name      string
	data      []byte
	maxPixels int64
	info      Info
	opts      DecodeOptions
}

// forSpec reports whether the image is decoded for a preprocessing.
func (o DecodeOptions) forSpec() bool { return o.Spec.Resize > 0 || o.Spec.ResizeHeight > 0 }

// transposed reports whether the orientation applied swaps width and height.
func (d *decoder) transposed() bool {
	return !d.opts.IgnoreOrientation && d.info.Orientation >= 5 && d.info.Orientation <= 8
}

// draftScale is the DCT scaling denominator (1, 2, 4 or 8) for a w×h
// stored image: Pillow's Image.draft rule, the largest s with
// min(w // tw, h // th) >= s, where tw×th is the resize target in stored
// orientation.
func (d *decoder) draftScale(w, h int) int {
	if !d.opts.forSpec() || !d.opts.Spec.FastJPEG {
		return 1
	}
	transposed := d.transposed()
	dw, dh := w, h
	if transposed {
		dw, dh = h, w
	}
	tw, th := d.opts.Spec.ResizedSize(dw, dh)
	if transposed {
		tw, th = th, tw
	}
	if tw <= 0 || th <= 0 {
		return 1
	}
	scale := min(w/tw, h/th)
	for _, s := range []int{8, 4, 2} {
		if scale >= s {
			return s
		}
	}
	return 1
}

// budget records the stored size and checks the pixel budget.
func (d *decoder) budget(w, h int) error {
	if w <= 0 || h <= 0 {
		return fail(d.name, schema.FailDecode, nil, "%s header has invalid size %dx%d", d.info.Format, w, h)
	}
	d.info.Width, d.info.Height = w, h
	if d.maxPixels >= 0 && int64(w)*int64(h) > d.maxPixels {
		return fail(d.name, schema.FailTooLarge, nil, "%s is %dx%d = %d pixels, over the %d pixel budget",
			d.info.Format, w, h, int64(w)*int64(h), d.maxPixels)
	}
	return nil
}

// decodeErr classifies a decoder error. truncated reports whether the
// container itself shows the data was cut short.
func (d *decoder) decodeErr(err error, truncated bool) error {
	if truncated || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "unexpected EOF") {
		return fail(d.name, schema.FailTruncated, err, "%s data ends early (file truncated)", d.info.Format)
	}
	return fail(d.name, schema.FailDecode, err, "cannot decode %s", d.info.Format)
}

func (d *decoder) std(cfg func(io.Reader) (image.Config, error), dec func(io.Reader) (image.Image, error)) (RGB, error) {
	c, err := cfg(bytes.NewReader(d.data))
	if err != nil {
		return RGB{}, d.decodeErr(err, false)
	}
	if err := d.budget(c.Width, c.Height); err != nil {
		return RGB{}, err
	}
	m, err := dec(bytes.NewReader(d.data))
	if err != nil {
		return RGB{}, d.decodeErr(err, false)
	}
	return d.convert(m)
}

func (d *decoder) png() (RGB, error) {
	o, complete := pngChunks(d.data)
	d.info.Orientation = o
	c, err := png.DecodeConfig(bytes.NewReader(d.data))
	if err != nil {
		return RGB{}, d.decodeErr(err, !complete)
	}
	if err := d.budget(c.Width, c.Height); err != nil {
		return RGB{}, err
	}
	m, err := png.Decode(bytes.NewReader(d.data))
	if err != nil {
		return RGB{}, d.decodeErr(err, !complete)
	}
	return d.convert(m)
}

func (d *decoder) webp() (RGB, error) {
	o, fw, fh, complete := webpInfo(d.data)
	d.info.Orientation = o
	c, err := webp.DecodeConfig(bytes.NewReader(d.data))
	if err != nil {
		return RGB{}, d.decodeErr(err, !complete)
	}
	if err := d.budget(c.Width, c.Height); err != nil {
		return RGB{}, err
	}
	// The decoder allocates from the frame headers, which need not agree
	// with the canvas size DecodeConfig reports.
	if d.maxPixels >= 0 && int64(fw)*int64(fh) > d.maxPixels {
		return RGB{}, fail(d.name, schema.FailTooLarge, nil, "webp frame is %dx%d, over the %d pixel budget", fw, fh, d.maxPixels)
	}
	m, err := decodeWebP(d.data)
	if err != nil {
		return RGB{}, d.decodeErr(err, !complete)
	}
	return m, nil
}

// gif decodes the first frame. Go's decoder zeroes the palette entry of the
// transparent index, while Pillow's convert("RGB") keeps the palette colour;
// so the transparency flag is cleared in a copy before decoding, and the
// frame is placed on a canvas of the logical screen size filled with the
// transparent index (or 0), as Pillow does for frame 0.
func (d *decoder) gif() (RGB, error) {
	b := d.data
	if len(b) < 13 {
		return RGB{}, fail(d.name, schema.FailTruncated, nil, "gif header ends early (file truncated)")
	}
	sw, sh := int(binary.LittleEndian.Uint16(b[6:8])), int(binary.LittleEndian.Uint16(b[8:10]))
	if err := d.budget(sw, sh); err != nil {
		return RGB{}, err
	}
	patched, trns, fw, fh, err := gifPatch(b)
	if err != nil {
		return RGB{}, fail(d.name, schema.FailTruncated, err, "gif ends before its first frame (file truncated)")
	}
	if d.maxPixels >= 0 && int64(fw)*int64(fh) > d.maxPixels {
		return RGB{}, fail(d.name, schema.FailTooLarge, nil, "gif frame is %dx%d, over the %d pixel budget", fw, fh, d.maxPixels)
	}
	m, err := gif.Decode(bytes.NewReader(patched))
	if err != nil {
		return RGB{}, d.decodeErr(err, false)
	}
	pm, ok := m.(*image.Paletted)
	if !ok {
		return d.convert(m)
	}
	bg := 0
	if trns >= 0 {
		bg = trns
	}
	var pal [256][3]byte
	for i, c := range pm.Palette {
		if i < 256 {
			pal[i] = rgbOf(c)
		}
	}
	out := RGB{Width: sw, Height: sh, Pix: getBuf(3 * sw * sh)}
	fill := pal[bg&0xff]
	for i := 0; i < len(out.Pix); i += 3 {
		out.Pix[i], out.Pix[i+1], out.Pix[i+2] = fill[0], fill[1], fill[2]
	}
	r := pm.Rect.Intersect(image.Rect(0, 0, sw, sh))
	for y := r.Min.Y; y < r.Max.Y; y++ {
		src := pm.Pix[pm.PixOffset(r.Min.X, y):pm.PixOffset(r.Max.X, y)]
		dst := out.Pix[3*(y*sw+r.Min.X):]
		for i, v := range src {
			c := pal[v]
			dst[3*i], dst[3*i+1], dst[3*i+2] = c[0], c[1], c[2]
		}
	}
	return out, nil
}

// gifPatch walks a GIF up to its first image descriptor. It returns a copy
// with the transparency flag of the Graphic Control Extensions cleared, the
// transparent index (-1 if none) and the first frame's size.
func gifPatch(b []byte) (patched []byte, trns, fw, fh int, err error) {
	errShort := errors.New("gif: unexpected EOF")
	trns = -1
	p := 13
	if flags := b[10]; flags&0x80 != 0 {
		p += 3 << ((flags & 7) + 1)
	}
	out := append([]byte(nil), b...)
	for {
		if p >= len(out) {
			return nil, 0, 0, 0, errShort
		}
		switch out[p] {
		case 0x21: // extension
			if p+2 > len(out) {
				return nil, 0, 0, 0, errShort
			}
			label := out[p+1]
			p += 2
			if label == 0xF9 && p+5 <= len(out) && out[p] == 4 {
				if out[p+1]&1 != 0 {
					trns = int(out[p+4])
					out[p+1] &^= 1
				} else {
					trns = -1
				}
			}
			for { // sub-blocks
				if p >= len(out) {
					return nil, 0, 0, 0, errShort
				}
				n := int(out[p])
				p += 1 + n
				if n == 0 {
					break
				}
			}
		case 0x2C: // image descriptor
			if p+10 > len(out) {
				return nil, 0, 0, 0, errShort
			}
			fw = int(binary.LittleEndian.Uint16(out[p+5 : p+7]))
			fh = int(binary.LittleEndian.Uint16(out[p+7 : p+9]))
			return out, trns, fw, fh, nil
		default: // trailer or garbage: let the decoder report it
			return out, trns, 0, 0, nil
		}
	}
}
