//go:build !cgo || noturbojpeg

package imaging

// TurboJPEG reports whether the libjpeg-turbo decoder is built in.
const TurboJPEG = false

func (d *decoder) jpegTurbo() (RGB, error, bool) { return RGB{}, nil, false }
