package imaging

import (
	"image"
	"image/color"
)

// rgbOf returns the colour's RGB without compositing alpha, as PIL's
// convert("RGB") drops it: non-premultiplied colours give their channels,
// others their (un-divided) RGBA()>>8.
func rgbOf(c color.Color) [3]byte {
	switch v := c.(type) {
	case nil:
		return [3]byte{}
	case color.NRGBA:
		return [3]byte{v.R, v.G, v.B}
	case color.RGBA:
		return [3]byte{v.R, v.G, v.B}
	case color.NRGBA64:
		return [3]byte{byte(v.R >> 8), byte(v.G >> 8), byte(v.B >> 8)}
	case color.Gray:
		return [3]byte{v.Y, v.Y, v.Y}
	}
	r, g, b, _ := c.RGBA()
	return [3]byte{byte(r >> 8), byte(g >> 8), byte(b >> 8)}
}

// cmykToRGB is Pillow's cmyk2rgb: nk = 255-k; out = CLIP8(nk - MULDIV255(c, nk)).
func cmykToRGB(c, m, y, k byte) (byte, byte, byte) {
	nk := 255 - int(k)
	f := func(v byte) byte {
		t := int(v)*nk + 128
		r := nk - (((t >> 8) + t) >> 8)
		if r < 0 {
			return 0
		}
		return byte(r)
	}
	return f(c), f(m), f(y)
}

// convert turns a decoded image into packed RGB the way PIL's
// convert("RGB") treats the same data: alpha dropped (no compositing),
// 16-bit samples reduced to their high byte, gray replicated, palette looked
// up, CMYK through Pillow's formula.
func (d *decoder) convert(m image.Image) (RGB, error) {
	r := m.Bounds()
	W, H := r.Dx(), r.Dy()
	if err := d.budget(W, H); err != nil {
		return RGB{}, err
	}
	out := RGB{Width: W, Height: H, Pix: getBuf(3 * W * H)}
	p := out.Pix
	switch s := m.(type) {
	// Alpha is dropped, not composited, as PIL's convert("RGB") does; 16-bit
	// samples keep their high (first, big-endian) byte.
	case *image.RGBA:
		copySamples(p, s.Pix[s.PixOffset(r.Min.X, r.Min.Y):], s.Stride, W, H, 4, 1)
	case *image.NRGBA:
		copySamples(p, s.Pix[s.PixOffset(r.Min.X, r.Min.Y):], s.Stride, W, H, 4, 1)
	case *image.RGBA64:
		copySamples(p, s.Pix[s.PixOffset(r.Min.X, r.Min.Y):], s.Stride, W, H, 8, 2)
	case *image.NRGBA64:
		copySamples(p, s.Pix[s.PixOffset(r.Min.X, r.Min.Y):], s.Stride, W, H, 8, 2)
	case *image.Gray:
		copySamples(p, s.Pix[s.PixOffset(r.Min.X, r.Min.Y):], s.Stride, W, H, 1, 0)
	case *image.Gray16:
		// PIL's I;16 -> RGB clamps values > 255 to 255; we take the high byte.
		copySamples(p, s.Pix[s.PixOffset(r.Min.X, r.Min.Y):], s.Stride, W, H, 2, 0)
	case *image.Paletted:
		var pal [256][3]byte
		for i, c := range s.Palette {
			if i < 256 {
				pal[i] = rgbOf(c)
			}
		}
		for y := 0; y < H; y++ {
			row := s.Pix[s.PixOffset(r.Min.X, r.Min.Y+y):]
			o := p[3*W*y : 3*W*(y+1)]
			for x := 0; x < W; x++ {
				c := pal[row[x]]
				o[3*x], o[3*x+1], o[3*x+2] = c[0], c[1], c[2]
			}
		}
	case *image.CMYK:
		for y := 0; y < H; y++ {
			row := s.Pix[s.PixOffset(r.Min.X, r.Min.Y+y):]
			o := p[3*W*y : 3*W*(y+1)]
			for x := 0; x < W; x++ {
				o[3*x], o[3*x+1], o[3*x+2] = cmykToRGB(row[4*x], row[4*x+1], row[4*x+2], row[4*x+3])
			}
		}
	case *image.YCbCr:
		ycbcrToRGB(p, s, r)
	case *image.NYCbCrA:
		ycbcrToRGB(p, &s.YCbCr, r)
	default:
		i := 0
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				c := rgbOf(m.At(x, y))
				p[i], p[i+1], p[i+2] = c[0], c[1], c[2]
				i += 3
			}
		}
	}
	return out, nil
}

// ycbcrToRGB converts with Go's color.YCbCrToRGB and nearest chroma (no
// fancy upsampling): used by the pure-Go JPEG fallback and x/image/webp.
func ycbcrToRGB(p []byte, s *image.YCbCr, r image.Rectangle) {
	i := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			yi, ci := s.YOffset(x, y), s.COffset(x, y)
			p[i], p[i+1], p[i+2] = color.YCbCrToRGB(s.Y[yi], s.Cb[ci], s.Cr[ci])
			i += 3
		}
	}
}

// copySamples writes W×H packed RGB pixels into p from pix (rows stride
// bytes apart, bpp bytes per pixel), taking the bytes at offsets 0, step
// and 2·step of each pixel: step 1 for 8-bit RGB(A), 2 for the high bytes of
// 16-bit RGB(A), 0 to repeat a gray sample.
func copySamples(p, pix []byte, stride, W, H, bpp, step int) {
	for y := 0; y < H; y++ {
		row := pix[y*stride:]
		o := p[3*W*y : 3*W*(y+1)]
		for x := 0; x < W; x++ {
			i := bpp * x
			o[3*x], o[3*x+1], o[3*x+2] = row[i], row[i+step], row[i+2*step]
		}
	}
}
