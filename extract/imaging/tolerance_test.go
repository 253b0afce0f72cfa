package imaging

// Largest per-channel differences from Pillow accepted where a decoder is
// not the library Pillow uses (measured on testdata/images, see the report
// in doc.go); with the default cgo build every golden image is bit-exact.
const (
	// x/image/webp (build tag nolibwebp): YCbCr converted with Go's formula
	// and nearest chroma instead of libwebp's fancy upsampling. Measured 38.
	lossyWebPTolerance = 40
	// image/jpeg (build tag noturbojpeg): Go's IDCT, colour conversion and
	// replicated chroma instead of libjpeg's fancy upsampling. Measured 35.
	goJPEGTolerance = 40
)
