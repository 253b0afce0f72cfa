//go:build cgo && !noturbojpeg

package imaging

/*
#cgo LDFLAGS: -lturbojpeg
#include <turbojpeg.h>
*/
import "C"

import (
	"errors"
	"strings"
	"unsafe"

	"github.com/imgvec/imgvec/schema"
)

// TurboJPEG reports whether the libjpeg-turbo decoder is built in.
const TurboJPEG = true

// jpegTurbo decodes with TurboJPEG's tjDecompress2: accurate (ISLOW) DCT
// and fancy upsampling, the libjpeg defaults Pillow uses; with a draft
// (DecodeOptions.Spec.FastJPEG) at a reduced DCT scale. handled=false
// asks the caller to try the pure-Go decoder (err then says why turbo gave up).
func (d *decoder) jpegTurbo() (img RGB, err error, handled bool) {
	h, src, n, err := d.tjOpen()
	if err != nil {
		return RGB{}, err, false
	}
	defer C.tjDestroy(h)
	var w, hh, ss, cs C.int
	if C.tjDecompressHeader3(h, src, n, &w, &hh, &ss, &cs) != 0 {
		msg := C.GoString(C.tjGetErrorStr2(h))
		return RGB{}, fail(d.name, schema.FailDecode, errors.New(msg), "cannot decode jpeg header"), false
	}
	if err := d.budget(int(w), int(hh)); err != nil {
		return RGB{}, err, true
	}
	// With a draft scale s, libjpeg-turbo picks the scaling factor 1/s for
	// a request of ceil(w/s)×ceil(h/s): the largest that fits.
	s := d.draftScale(int(w), int(hh))
	W, H := (int(w)+s-1)/s, (int(hh)+s-1)/s
	cmyk := cs == C.TJCS_CMYK || cs == C.TJCS_YCCK
	if !cmyk {
		if img, ok := d.jpegRegion(W, H, s); ok {
			return img, nil, true
		}
	}
	return d.jpegWhole(W, H, cmyk)
}

// tjOpen makes a TurboJPEG decompressor (the caller destroys it) and
// returns d.data as its input.
func (d *decoder) tjOpen() (h C.tjhandle, src *C.uchar, n C.ulong, err error) {
	if h = C.tjInitDecompress(); h == nil {
		return nil, nil, 0, errors.New("tjInitDecompress failed")
	}
	return h, (*C.uchar)(unsafe.Pointer(&d.data[0])), C.ulong(len(d.data)), nil
}

// jpegWhole decodes the whole file with tjDecompress2 into W×H pixels (its
// size at the draft scale jpegTurbo picked).
func (d *decoder) jpegWhole(W, H int, cmyk bool) (img RGB, err error, handled bool) {
	h, src, n, err := d.tjOpen()
	if err != nil {
		return RGB{}, err, false
	}
	defer C.tjDestroy(h)
	pf, bpp := C.int(C.TJPF_RGB), 3
	if cmyk {
		pf, bpp = C.TJPF_CMYK, 4
	}
	buf := getBuf(bpp * W * H)
	flags := C.int(C.TJFLAG_ACCURATEDCT | C.TJFLAG_LIMITSCANS)
	rc := C.tjDecompress2(h, src, n, (*C.uchar)(unsafe.Pointer(&buf[0])), C.int(W), C.int(bpp*W), C.int(H), pf, flags)
	if rc != 0 {
		msg := C.GoString(C.tjGetErrorStr2(h))
		if C.tjGetErrorCode(h) != C.TJERR_WARNING {
			putBuf(buf)
			return RGB{}, fail(d.name, schema.FailDecode, errors.New(msg), "cannot decode jpeg"), false
		}
		// A warning: libjpeg finished the image. Pillow accepts corrupt
		// data warnings but reports a file that ran out of data as truncated.
		if strings.Contains(msg, "Premature end") || !jpegHasEOI(d.data) {
			putBuf(buf)
			return RGB{}, fail(d.name, schema.FailTruncated, errors.New(msg), "jpeg data ends early (file truncated)"), true
		}
	}
	if !cmyk {
		return RGB{Width: W, Height: H, Pix: buf}, nil, true
	}
	// libjpeg returns CMYK as stored; Pillow assumes Adobe's inverted
	// convention for every CMYK JPEG ("CMYK;I"), then applies cmyk2rgb.
	out := RGB{Width: W, Height: H, Pix: getBuf(3 * W * H)}
	for i, j := 0, 0; i+4 <= len(buf); i, j = i+4, j+3 {
		out.Pix[j], out.Pix[j+1], out.Pix[j+2] = cmykToRGB(255-buf[i], 255-buf[i+1], 255-buf[i+2], 255-buf[i+3])
	}
	putBuf(buf)
	return out, nil, true
}
