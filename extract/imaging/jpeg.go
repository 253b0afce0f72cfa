package imaging

import (
	"bytes"
	"image/jpeg"

	"github.com/imgvec/imgvec/schema"
)

// jpeg decodes with libjpeg-turbo (the library Pillow uses, so the pixels
// match) and falls back to the pure-Go image/jpeg when turbojpeg is not
// built in (build tag noturbojpeg, or no cgo) or cannot read the file.
func (d *decoder) jpeg() (RGB, error) {
	d.info.Orientation = jpegOrientation(d.data)
	img, turboErr, handled := d.jpegTurbo()
	if handled {
		return img, turboErr
	}
	img, err := d.jpegGo()
	if err != nil && turboErr != nil && schema.ClassOf(err) == schema.FailDecode {
		return RGB{}, turboErr
	}
	return img, err
}

// jpegGo is the pure-Go path. Its pixels differ slightly from Pillow's:
// image/jpeg's IDCT and YCbCr conversion are not libjpeg's, and it upsamples
// chroma by replication rather than libjpeg's "fancy" triangle filter.
func (d *decoder) jpegGo() (RGB, error) {
	c, err := jpeg.DecodeConfig(bytes.NewReader(d.data))
	if err != nil {
		return RGB{}, d.decodeErr(err, false)
	}
	if err := d.budget(c.Width, c.Height); err != nil {
		return RGB{}, err
	}
	m, err := jpeg.Decode(bytes.NewReader(d.data))
	if err != nil {
		return RGB{}, d.decodeErr(err, !jpegHasEOI(d.data))
	}
	return d.convert(m)
}

// jpegHasEOI reports whether an EOI marker ends the data (allowing a little
// trailing padding); a JPEG without one was cut short.
func jpegHasEOI(b []byte) bool {
	tail := b[max(0, len(b)-64):]
	return bytes.Contains(tail, []byte{0xFF, 0xD9})
}
