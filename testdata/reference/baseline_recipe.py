"""The Python recipe imgvec replaces, used as the baseline in `make bench`.

One image at a time: PIL open + convert("RGB"), torchvision-equivalent
Resize(256)/CenterCrop(224)/ToTensor/Normalize written with Pillow and numpy
(torch is not installed here), then ONNX Runtime on the same cut model the Go
side runs. Prints one JSON object: images/s and the path of the vectors.

usage: baseline_recipe.py MODEL.onnx OUT.npy IMAGE...
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)


def preprocess(path):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = 256, int(256 * long / short)
    size = (new_short, new_long) if w <= h else (new_long, new_short)
    img = img.resize(size, Image.BILINEAR)
    w, h = img.size
    top = int(round((h - 224) / 2.0))
    left = int(round((w - 224) / 2.0))
    img = img.crop((left, top, left + 224, top + 224))
    x = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    return (x - MEAN) / STD


def main():
    model, out, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
    so = ort.SessionOptions()
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    vecs = []
    start = time.perf_counter()
    for p in paths:
        v = sess.run(None, {name: preprocess(p)[None]})[0][0]
        n = np.linalg.norm(v)
        vecs.append(v / n if n > 0 else v)
    elapsed = time.perf_counter() - start
    np.save(out, np.stack(vecs).astype(np.float32))
    print(json.dumps({"images": len(paths), "seconds": elapsed, "images_per_s": len(paths) / elapsed}))


if __name__ == "__main__":
    main()
