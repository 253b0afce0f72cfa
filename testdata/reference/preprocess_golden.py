#!/usr/bin/env python3
"""Reference for extract/imaging: the torchvision VGG recipe in Pillow + numpy.

    Image.open(p).convert("RGB")       (after ImageOps.exif_transpose: imgvec
                                        applies EXIF orientation by default)
    Resize(256)   PIL bilinear, antialiased, shorter side to 256,
                  long side int(256 * long / short)
    CenterCrop(224)  offsets int(round((h - 224) / 2.0))
    ToTensor      float32 / 255, CHW
    Normalize     (x - mean) / std in float32

torchvision itself is not needed: for PIL input it calls exactly these Pillow
operations. Writes, per image, the uint8 224x224x3 crop (8-bit RGB PNG) to
golden/<name>.png and a manifest golden/manifest.json with the source size
and the sha256 of the float32 little-endian CHW normalised tensor.

Run from the repository root:  .cache/venv/bin/python testdata/reference/preprocess_golden.py
"""
import hashlib
import json
import os

import numpy as np
import PIL
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, "..", "images")
GOLDEN = os.path.join(HERE, "golden")
RESIZE, CROP = 256, 224
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
EXTS = (".jpg", ".png", ".gif", ".webp", ".bmp", ".tiff")


def load(path):
    im = Image.open(path)
    notes = ""
    if im.mode in ("I;16", "I;16B", "I;16L"):
        # PIL's convert("RGB") clamps 16-bit gray values > 255 to 255 (a PIL
        # quirk that whitens the image). imgvec takes the high byte instead;
        # the reference does the same so the rest of the recipe is still checked.
        a = np.asarray(im).astype(np.uint16)
        im = Image.fromarray((a >> 8).astype(np.uint8))
        notes = "16-bit gray: high byte (PIL would clamp to 255)"
    im = ImageOps.exif_transpose(im)
    return im.convert("RGB"), notes


def resize_crop(im):
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = RESIZE, int(RESIZE * long / short)
    nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.Resampling.BILINEAR)
    top = int(round((nh - CROP) / 2.0))
    left = int(round((nw - CROP) / 2.0))
    return im.crop((left, top, left + CROP, top + CROP))


def normalise(crop):
    x = np.asarray(crop, dtype=np.uint8).astype(np.float32) / np.float32(255)
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)).astype("<f4")


def main():
    os.makedirs(GOLDEN, exist_ok=True)
    manifest = {"pillow": PIL.__version__, "numpy": np.__version__, "resize": RESIZE, "crop": CROP, "images": []}
    for name in sorted(os.listdir(IMAGES)):
        if not name.endswith(EXTS):
            continue
        src = Image.open(os.path.join(IMAGES, name))
        im, notes = load(os.path.join(IMAGES, name))
        crop = resize_crop(im)
        arr = np.asarray(crop, dtype=np.uint8)
        assert arr.shape == (CROP, CROP, 3), arr.shape
        Image.fromarray(arr).save(os.path.join(GOLDEN, name + ".png"), optimize=True)
        manifest["images"].append({
            "name": name,
            "format": src.format.lower(),
            "mode": src.mode,
            "width": src.size[0],
            "height": src.size[1],
            "oriented_width": im.size[0],
            "oriented_height": im.size[1],
            "tensor_sha256": hashlib.sha256(normalise(crop).tobytes()).hexdigest(),
            "notes": notes,
        })
    with open(os.path.join(GOLDEN, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
