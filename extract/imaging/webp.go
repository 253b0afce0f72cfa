//go:build !cgo || nolibwebp

package imaging

import (
	"bytes"

	"golang.org/x/image/webp"
)

// LibWebP reports whether lossy/lossless WebP is decoded by libwebp (as
// Pillow does) rather than golang.org/x/image/webp.
const LibWebP = false

// decodeWebP with x/image/webp: lossless is exact; lossy differs from
// libwebp because YCbCr is converted with Go's formula and nearest chroma
// instead of libwebp's fancy upsampling.
func decodeWebP(data []byte) (RGB, error) {
	m, err := webp.Decode(bytes.NewReader(data))
	if err != nil {
		return RGB{}, err
	}
	d := decoder{maxPixels: -1, info: Info{Format: "webp"}}
	return d.convert(m)
}
