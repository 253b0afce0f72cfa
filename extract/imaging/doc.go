// Package imaging decodes images and turns them into the exact input tensor
// of the torchvision recipe that VGG19 was trained with:
//
//	Image.open(p).convert("RGB")
//	Resize(256)        PIL bilinear, antialiased, shorter side -> 256,
//	                   longer side int(256 * long / short)
//	CenterCrop(224)    offsets int(round((h - 224) / 2.0)), round half to even
//	ToTensor           float32(v) / 255, CHW
//	Normalize          (x - mean) / std in float32, ImageNet mean/std
//
// Decode produces packed 8-bit RGB; ResizeCrop gives the uint8 224×224 crop;
// Preprocess writes the normalised 3×224×224 float32 tensor. Spec.Version
// names the preprocessing and is part of the model identity.
//
// Other recipes are Specs too: any Pillow filter (Filter: nearest,
// bilinear, bicubic, lanczos, box, hamming — Resample.c's fixed-point
// convolution, Geometry.c's affine nearest), a shorter-side or exact
// resize, a crop of any shape with torchvision's or transformers' offsets,
// transformers' rescale (float64 multiply, then float32). Recipe names the
// built-in ones (imagenet, clip, vit, dinov2, efficientnet-b0);
// SpecFromHFConfig reads a Hugging Face preprocessor_config.json (CLIP, ViT,
// BiT/DINOv2, ConvNeXt with crop_pct, DeiT, SigLIP image processors) and
// refuses any type or option it does not implement. Against Pillow 11.3 and
// transformers 4.57.1 (testdata/reference/processors_ref.py, run by
// TestFilterParityWithPillow and TestProcessorParityWithTransformers), every
// filter but hamming and every processor with each of nearest, bilinear,
// bicubic and lanczos is bit-exact on the test images; hamming may differ
// by 1 where Go's sin/cos and glibc's differ in the last bit. Images are
// always converted to RGB (do_convert_rgb is implied).
//
// # What is exact
//
// Compared with Pillow 11.3 + numpy (testdata/reference/preprocess_golden.py),
// with the default cgo build, every golden image in testdata/images is
// bit-exact, both the uint8 crop and the float32 tensor (sha256 equal):
// JPEG (baseline, progressive, 4:4:4, 4:2:2, 4:2:0 with odd sizes, gray,
// CMYK), PNG (RGB, RGBA, palette+tRNS, 16-bit RGB, gray+alpha, eXIf),
// GIF, WebP (lossy and lossless), BMP and TIFF.
//
//   - Resampling reimplements Pillow's Resample.c algorithm (bilinear filter,
//     support scaled by max(scale, 1), weights normalised in double, 22-bit
//     fixed point, horizontal pass into an 8-bit intermediate, then vertical;
//     a pass is skipped when its dimension is unchanged). Only the output
//     pixels inside the crop are computed, which gives the same bytes because
//     every output value depends only on its own weights and inputs.
//     Upscaling (short side < 256) follows the same code.
//   - JPEG is decoded by libjpeg-turbo through TurboJPEG (ISLOW DCT, fancy
//     upsampling: what Pillow does). libjpeg-turbo 2.1.5 (Debian bookworm)
//     and Pillow's bundled 3.1 give the same pixels for these files.
//     CMYK/YCCK are read as Adobe-inverted, as Pillow assumes for every CMYK
//     JPEG, and converted with Pillow's cmyk2rgb formula.
//   - Decoded for a Spec (DecodeOptions.Spec, as the extractor does), a
//     complete baseline JPEG shown as stored is decoded only in the window
//     the resize and crop read (RGB.Window): libjpeg's jpeg_crop_scanline
//     and jpeg_skip_scanlines with a 16-pixel margin, rows below the window
//     not decoded at all. The pixels in the window are the full decode's
//     (TestJPEGWindowDecode; the parity test checks the tensors); corrupt
//     data below the window goes unnoticed there.
//   - WebP is decoded by libwebp (WebPDecodeRGBInto), which Pillow also uses.
//   - Alpha is dropped without compositing, as convert("RGB") does; palette
//     entries keep their colour even when transparent (GIF too: the GIF
//     transparency flag is cleared before Go's decoder, which would zero
//     that entry); 16-bit RGB(A) samples keep their high byte.
//
// # Known deviations
//
//   - 16-bit grayscale PNG: PIL converts I;16 to RGB by clamping values
//     above 255 to 255 (which whitens nearly every such image); imaging
//     takes the high byte instead. The reference script does the same so the
//     rest of the recipe is still checked.
//   - EXIF orientation is applied by default (JPEG APP1, PNG eXIf, WebP EXIF,
//     TIFF IFD0), matching ImageOps.exif_transpose; the plain torchvision
//     recipe does not apply it. Set DecodeOptions.IgnoreOrientation for the
//     plain recipe.
//   - GIF: the first frame only; a first frame smaller than the logical
//     screen is placed on a canvas filled with the transparent index (or 0)
//     as Pillow does, but this is not covered by golden data.
//   - Pure-Go fallbacks are not exact: with build tag noturbojpeg (or no
//     cgo) JPEG goes through image/jpeg (max abs diff 35 on the golden crops:
//     replicated chroma instead of fancy upsampling, Go's IDCT and colour
//     conversion); with build tag nolibwebp lossy WebP goes through
//     x/image/webp (max abs diff 38). image/jpeg is also used when
//     TurboJPEG cannot read a file's header or data.
//   - Animated WebP is not decoded (libwebp's simple API rejects it).
//   - TIFF with associated (premultiplied) alpha keeps the premultiplied
//     values; Pillow may differ.
//   - Spec.FastJPEG (DecodeOptions.Spec) decodes JPEGs at 1/2, 1/4 or 1/8
//     scale in the DCT domain, as Pillow's Image.draft would, then resamples
//     as above: no longer the full decode's pixels (TestFastJPEGBounds
//     bounds the tensor's difference), hence its own Spec.Version. A
//     baseline file is then decoded in the window too, at that scale. A
//     progressive file at 1/8 is decoded from a copy without the AC scans
//     of the components libjpeg reconstructs at 1×1 from their DC value
//     (progressiveDCStream): the same pixels as the whole file at 1/8
//     (TestFastJPEGRegionDecode, every sampling), several times faster,
//     but corrupt data in a skipped scan goes unnoticed.
//   - Progressive JPEGs with more than 500 scans are rejected
//     (TJFLAG_LIMITSCANS), a CPU bound Pillow does not have.
//
// # Errors
//
// Decode never panics (panics inside decoders are recovered per call and
// reported as class decode). Every error is a *schema.ItemError with Stage
// "decode", Item set to the name passed in, a Reason that starts with the
// name, and Class:
//
//	empty               zero bytes
//	truncated           the data ends before the image does
//	decode              the bytes claim a supported format but are corrupt
//	unsupported_format  not JPEG/PNG/GIF/WebP/BMP/TIFF by magic number
//	                    (SVG, HEIC, PDF, text, random bytes, ...): the file
//	                    extension is never trusted
//	too_large           over DecodeOptions.MaxBytes or MaxPixels
//
// # Memory bounds
//
// The input is capped by MaxBytes (default 512 MiB). The pixel budget
// MaxPixels (default 89,478,485, Pillow's MAX_IMAGE_PIXELS) is checked from
// the header before any full decode; for formats whose decoders allocate
// from other headers it is also checked there (each GIF's first frame
// descriptor, every WebP VP8/VP8L/VP8X frame header). golang.org/x/image/tiff
// bounds each strip/tile's decompressed size itself. A decoded image takes
// 3 bytes per pixel (plus, for CMYK JPEG and the Go decoders, one
// transient decoder-side copy). Preprocess needs a small intermediate
// (224 × 3 bytes per source row that the crop's rows read).
//
// # Concurrency and buffers
//
// Decode, ResizeCrop and Preprocess are safe for concurrent use; they share
// only a sync.Pool of pixel buffers and a small mutex-guarded cache of
// resampling weights keyed by (source size, output size). RGB.Release hands
// a decoded image's buffer back to the pool (optional).
package imaging
