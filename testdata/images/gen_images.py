#!/usr/bin/env python3
"""Synthesise the deterministic test images for extract/imaging.

Every image is drawn from a seeded RNG (smooth gradients + texture + shapes +
noise), never copied from a photo. Run from the repository root:

    .cache/venv/bin/python testdata/images/gen_images.py

The output is committed; rerunning with the pinned Pillow/numpy
(testdata/requirements.txt) reproduces it byte for byte.
"""
import os
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = os.path.dirname(os.path.abspath(__file__))
BAD = os.path.join(HERE, "bad")


def photo(w, h, seed):
    """A photo-like RGB image: gradients, texture, shapes, noise, slight blur."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    xs, ys = x / w, y / h
    base = np.stack(
        [
            120 + 100 * xs - 40 * ys,
            60 + 80 * ys + 30 * np.sin(6.0 * xs),
            200 - 120 * xs * ys,
        ],
        axis=-1,
    )
    f1, f2 = rng.uniform(20, 60, size=2)
    tex = 18 * np.sin(f1 * xs + 3 * np.cos(f2 * ys))[..., None]
    img = np.clip(base + tex, 0, 255).astype(np.uint8)
    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    for _ in range(12):
        x0, y0 = rng.randint(0, w), rng.randint(0, h)
        rw, rh = rng.randint(w // 20, w // 4), rng.randint(h // 20, h // 4)
        col = tuple(int(c) for c in rng.randint(0, 256, size=3))
        if rng.rand() < 0.5:
            d.ellipse([x0, y0, x0 + rw, y0 + rh], fill=col)
        else:
            d.rectangle([x0, y0, x0 + rw, y0 + rh], fill=col)
    for _ in range(6):
        pts = [(int(rng.randint(0, w)), int(rng.randint(0, h))) for _ in range(3)]
        d.line(pts, fill=tuple(int(c) for c in rng.randint(0, 256, size=3)), width=3)
    im = im.filter(ImageFilter.GaussianBlur(1.2))
    arr = np.asarray(im).astype(np.float64)
    arr += rng.normal(0, 4.0, size=arr.shape)
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))


def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def write_png(path, w, h, bitdepth, colortype, rows):
    """Minimal PNG writer (Pillow cannot write 16-bit RGB)."""
    raw = b"".join(b"\x00" + r for r in rows)
    data = b"\x89PNG\r\n\x1a\n"
    data += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bitdepth, colortype, 0, 0, 0))
    data += png_chunk(b"IDAT", zlib.compress(raw, 9))
    data += png_chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def exif_bytes(orientation):
    ex = Image.Exif()
    ex[0x0112] = orientation
    return ex.tobytes()


def main():
    os.makedirs(BAD, exist_ok=True)
    out = lambda n: os.path.join(HERE, n)  # noqa: E731

    land = photo(640, 480, 1)
    land.save(out("landscape.jpg"), quality=90)
    photo(480, 640, 2).save(out("portrait.jpg"), quality=90)
    photo(1600, 1200, 3).save(out("large.jpg"), quality=80)
    photo(200, 150, 4).save(out("small.jpg"), quality=90)
    photo(150, 200, 5).save(out("small_portrait.png"))
    photo(640, 480, 6).save(out("progressive.jpg"), quality=90, progressive=True)
    photo(500, 375, 7).convert("L").save(out("gray.jpg"), quality=90)
    photo(480, 360, 8).convert("CMYK").save(out("cmyk.jpg"), quality=90)
    photo(641, 479, 9).save(out("yuv444.jpg"), quality=90, subsampling=0)
    photo(641, 479, 10).save(out("yuv420_odd.jpg"), quality=90, subsampling=2)
    photo(512, 384, 11).save(out("yuv422.jpg"), quality=90, subsampling=1)

    # PNG family.
    rgba = photo(400, 300, 12).convert("RGBA")
    a = np.asarray(rgba).copy()
    yy, xx = np.mgrid[0:300, 0:400]
    a[..., 3] = ((xx + yy) * 255 // 700).astype(np.uint8)
    a[:40, :40, 3] = 0  # fully transparent corner keeps its colour
    Image.fromarray(a).save(out("rgba.png"))
    pal = photo(320, 240, 13).quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pal.info["transparency"] = 5
    pal.save(out("palette_trns.png"), transparency=5)
    la = photo(300, 260, 14).convert("L")
    la_a = np.dstack([np.asarray(la), (np.arange(300)[None, :].repeat(260, 0) % 256).astype(np.uint8)])
    Image.fromarray(la_a).save(out("gray_alpha.png"))
    rgb16 = np.asarray(photo(300, 200, 15)).astype(np.uint16) * 257 + np.random.RandomState(16).randint(0, 257, size=(200, 300, 3)).astype(np.uint16)
    write_png(out("rgb16.png"), 300, 200, 16, 2, [r.astype(">u2").tobytes() for r in rgb16])
    g16 = (np.asarray(photo(260, 300, 17).convert("L")).astype(np.uint16) * 257)
    write_png(out("gray16.png"), 260, 300, 16, 0, [r.astype(">u2").tobytes() for r in g16])
    photo(300, 400, 18).save(out("exif6.png"), exif=exif_bytes(6))

    # GIF: two frames, the first is the one that counts; transparency index set.
    g0 = photo(320, 240, 19).quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    g1 = photo(320, 240, 20).quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    g0.save(out("anim.gif"), save_all=True, append_images=[g1], duration=100, loop=0, transparency=3)

    photo(400, 300, 21).save(out("lossy.webp"), quality=80, method=4)
    photo(300, 225, 22).save(out("lossless.webp"), lossless=True)
    photo(320, 240, 23).save(out("image.bmp"))
    photo(320, 240, 24).save(out("image.tiff"), compression="tiff_lzw")

    for o in (3, 6, 8):
        photo(400, 300, 30 + o).save(out("exif%d.jpg" % o), quality=90, exif=exif_bytes(o))

    # Bad inputs.
    bad = lambda n: os.path.join(BAD, n)  # noqa: E731
    open(bad("empty.jpg"), "wb").close()
    with open(out("landscape.jpg"), "rb") as f:
        jb = f.read()
    with open(bad("truncated.jpg"), "wb") as f:
        f.write(jb[: len(jb) * 6 // 10])
    with open(out("rgba.png"), "rb") as f:
        pb = f.read()
    with open(bad("truncated.png"), "wb") as f:
        f.write(pb[: len(pb) // 2])
    with open(bad("random.jpg"), "wb") as f:
        f.write(np.random.RandomState(99).bytes(4096))
    with open(bad("text.png"), "wb") as f:
        f.write(b"this is not an image, just a text file named .png\n" * 10)
    with open(bad("image.svg"), "wb") as f:
        f.write(b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
                b'<circle cx="50" cy="50" r="40" fill="red"/></svg>\n')
    with open(bad("fake.heic"), "wb") as f:
        f.write(struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heic" + np.random.RandomState(7).bytes(512))
    # Decompression bomb: 30000x30000 1-bit grayscale, a few hundred KB on disk.
    comp = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * (30000 // 8)
    idat = b"".join(comp.compress(row) for _ in range(30000)) + comp.flush()
    with open(bad("bomb.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 1, 0, 0, 0, 0))
                + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))
    # Lying PNG: IHDR says 400x300 RGB, the pixel data is for 40x30.
    small = np.asarray(photo(40, 30, 40))
    raw = b"".join(b"\x00" + r.tobytes() for r in small)
    with open(bad("lying.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 400, 300, 8, 2, 0, 0, 0))
                + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))
    # Lying GIF: logical screen 16x16, first frame descriptor claims 4000x4000.
    gif = bytearray(b"GIF89a" + struct.pack("<HH", 16, 16) + bytes([0x80, 0, 0]) + bytes(6))
    gif += b"\x2c" + struct.pack("<HHHH", 0, 0, 4000, 4000) + b"\x00" + b"\x02\x02\x4c\x01\x00" + b"\x3b"
    with open(bad("lying.gif"), "wb") as f:
        f.write(bytes(gif))


if __name__ == "__main__":
    main()
