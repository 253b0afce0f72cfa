package imaging

import (
	"image"
	"sync"
)

// bufPool recycles pixel buffers (decoded images, intermediates, crops).
// A pooled buffer too small for a request is dropped for the GC.
var bufPool sync.Pool

func getBuf(n int) []byte {
	if p, ok := bufPool.Get().(*[]byte); ok {
		if cap(*p) >= n {
			return (*p)[:n]
		}
	}
	return make([]byte, n)
}

func putBuf(b []byte) {
	if cap(b) == 0 {
		return
	}
	b = b[:0]
	bufPool.Put(&b)
}

// RGB is a packed 8-bit RGB image, row stride 3*Width.
type RGB struct {
	Width, Height int
	Pix           []byte
	// Window, when not empty, says that Pix holds only this part of the
	// Width×Height image (row stride 3*Window.Dx()): what a Decode for a
	// Spec reads (DecodeOptions.Spec). ResizeCrop and Preprocess with that
	// Spec give the same bytes as from the whole image.
	Window image.Rectangle
}

// window is the part of the image Pix holds.
func (img RGB) window() image.Rectangle {
	if img.Window.Empty() {
		return image.Rect(0, 0, img.Width, img.Height)
	}
	return img.Window
}

// Release hands img's pixel buffer back to an internal pool so that a later
// Decode can reuse it. It is optional; after Release, img (and every copy of
// it) must not be used.
func (img *RGB) Release() {
	putBuf(img.Pix)
	*img = RGB{}
}
