//go:build cgo && !noturbojpeg

package imaging

/*
#cgo LDFLAGS: -ljpeg
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>

typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
	int warnings;
} imgvec_jpeg_err;

static void imgvec_jpeg_error_exit(j_common_ptr c) { longjmp(((imgvec_jpeg_err *)c->err)->jb, 1); }

static void imgvec_jpeg_emit(j_common_ptr c, int level) {
	if (level < 0) ((imgvec_jpeg_err *)c->err)->warnings++;
}

// imgvec_jpeg_region decodes rows [y0, y1) and columns [x0, x1) of a
// YCbCr, RGB or grayscale JPEG at scale 1/scale (an output of out_w×out_h) into out
// (packed RGB, stride 3*(x1-x0)), with libjpeg's defaults as TurboJPEG's
// tjDecompress2 uses them (ISLOW DCT, fancy upsampling). Around the window
// it decodes a margin of 16 pixels, so that no edge of libjpeg's own crop
// (jpeg_crop_scanline, jpeg_skip_scanlines) touches it. A progressive file
// is accepted only with progressive set (a stream of progressiveDCStream);
// block smoothing, which only estimates AC coefficients a file never sent,
// is off. It returns 0 on success, 1 when the file is not such a JPEG or
// its output size is not out_w×out_h, 2 on an error or a warning.
static int imgvec_jpeg_region(const unsigned char *src, unsigned long n, int scale, int progressive, int out_w, int out_h,
                              int x0, int x1, int y0, int y1, unsigned char *out) {
	struct jpeg_decompress_struct cinfo;
	imgvec_jpeg_err err;
	cinfo.err = jpeg_std_error(&err.pub);
	err.pub.error_exit = imgvec_jpeg_error_exit;
	err.pub.emit_message = imgvec_jpeg_emit;
	err.warnings = 0;
	if (setjmp(err.jb)) {
		jpeg_destroy_decompress(&cinfo);
		return 2;
	}
	jpeg_create_decompress(&cinfo);
	jpeg_mem_src(&cinfo, src, n);
	jpeg_read_header(&cinfo, TRUE);
	if ((cinfo.progressive_mode && !progressive) || (cinfo.jpeg_color_space != JCS_YCbCr && cinfo.jpeg_color_space != JCS_GRAYSCALE &&
	                               cinfo.jpeg_color_space != JCS_RGB)) {
		jpeg_destroy_decompress(&cinfo);
		return 1;
	}
	cinfo.out_color_space = JCS_RGB;
	cinfo.dct_method = JDCT_ISLOW;
	cinfo.do_block_smoothing = FALSE;
	cinfo.scale_num = 1;
	cinfo.scale_denom = scale;
	jpeg_start_decompress(&cinfo);
	if ((int)cinfo.output_width != out_w || (int)cinfo.output_height != out_h) {
		jpeg_destroy_decompress(&cinfo);
		return 1;
	}
	JSAMPARRAY row = (*cinfo.mem->alloc_sarray)((j_common_ptr)&cinfo, JPOOL_IMAGE, cinfo.output_width * 3, 1);
	int mx0 = x0 > 16 ? x0 - 16 : 0;
	int mx1 = x1 + 16 < (int)cinfo.output_width ? x1 + 16 : (int)cinfo.output_width;
	JDIMENSION xoff = mx0, w = mx1 - mx0;
	if (mx0 > 0 || mx1 < (int)cinfo.output_width) jpeg_crop_scanline(&cinfo, &xoff, &w);
	int skip = y0 > 16 ? y0 - 16 : 0;
	if (skip > 0) jpeg_skip_scanlines(&cinfo, skip);
	size_t ow = (size_t)(x1 - x0) * 3;
	for (int y = skip; y < y1; y++) {
		jpeg_read_scanlines(&cinfo, row, 1);
		if (y >= y0) memcpy(out + (size_t)(y - y0) * ow, row[0] + (size_t)(x0 - (int)xoff) * 3, ow);
	}
	int warned = err.warnings;
	jpeg_abort_decompress(&cinfo);
	jpeg_destroy_decompress(&cinfo);
	return warned ? 2 : 0;
}
*/
import "C"

import (
	"image"
	"unsafe"
)

// jpegRegion decodes a W×H JPEG (its size at draft scale 1/s) through
// libjpeg when that saves work over tjDecompress2 and gives the same pixels:
// for a complete (EOI-terminated) baseline file only the window that
// d.opts.Spec's resize and crop read (when the file is shown as stored and
// a good part is left out); at 1/8 scale, a progressive file without the
// scans that scale does not read (progressiveDCStream), in the window or
// whole. ok=false asks the caller to decode the whole file with TurboJPEG.
func (d *decoder) jpegRegion(W, H, s int) (img RGB, ok bool) {
	if !d.opts.forSpec() || !jpegHasEOI(d.data) || d.opts.Spec.validate() != nil {
		return RGB{}, false
	}
	full := image.Rect(0, 0, W, H)
	win := full
	if d.info.Orientation == 1 || d.opts.IgnoreOrientation {
		win = d.opts.Spec.sourceWindow(W, H)
	}
	if win.Empty() {
		return RGB{}, false
	}
	src, progressive := d.data, false
	if s == 8 {
		src, progressive = progressiveDCStream(d.data)
		if !progressive {
			src = d.data
		}
	}
	// Without skipped scans, worth it only when a good part of the image is left out.
	if !progressive && int64(win.Dx())*int64(win.Dy())*10 > int64(W)*int64(H)*9 {
		return RGB{}, false
	}
	buf := getBuf(3 * win.Dx() * win.Dy())
	rc := C.imgvec_jpeg_region((*C.uchar)(unsafe.Pointer(&src[0])), C.ulong(len(src)), C.int(s), boolInt(progressive),
		C.int(W), C.int(H), C.int(win.Min.X), C.int(win.Max.X), C.int(win.Min.Y), C.int(win.Max.Y), (*C.uchar)(unsafe.Pointer(&buf[0])))
	if rc != 0 {
		putBuf(buf)
		return RGB{}, false
	}
	if win == full {
		win = image.Rectangle{}
	}
	return RGB{Width: W, Height: H, Window: win, Pix: buf}, true
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
