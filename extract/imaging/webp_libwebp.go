//go:build cgo && !nolibwebp

package imaging

/*
#cgo LDFLAGS: -lwebp
#include <webp/decode.h>
*/
import "C"

import (
	"errors"
	"unsafe"
)

// LibWebP reports whether lossy/lossless WebP is decoded by libwebp (as
// Pillow does) rather than golang.org/x/image/webp.
const LibWebP = true

// decodeWebP decodes a still WebP with libwebp's simple API into RGB
// (fancy upsampling on, alpha dropped). Animated files (VP8X with ANIM)
// are rejected by WebPGetInfo/WebPDecode; the caller checked the budget.
func decodeWebP(data []byte) (RGB, error) {
	var w, h C.int
	src := (*C.uint8_t)(unsafe.Pointer(&data[0]))
	if C.WebPGetInfo(src, C.size_t(len(data)), &w, &h) == 0 {
		return RGB{}, errors.New("webp: invalid header")
	}
	if w <= 0 || h <= 0 {
		return RGB{}, errors.New("webp: invalid size")
	}
	W, H := int(w), int(h)
	buf := getBuf(3 * W * H)
	if C.WebPDecodeRGBInto(src, C.size_t(len(data)), (*C.uint8_t)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), C.int(3*W)) == nil {
		putBuf(buf)
		return RGB{}, errors.New("webp: decoding failed")
	}
	return RGB{Width: W, Height: H, Pix: buf}, nil
}
