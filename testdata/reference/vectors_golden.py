#!/usr/bin/env python3
"""Golden vectors for extract's end-to-end parity test.

Runs the reference recipe (preprocess_golden.py: Pillow + numpy, EXIF
orientation applied) and ONNX Runtime's Python package on the tiny test model
cut at fc7, over every golden image, and writes the L2-normalised vectors to
golden/vectors-tiny-fc7.json together with the sha256 of the model bytes, so
the Go test knows it runs the same model.

Run from the repository root:
    go run ./cmd/imgvec model cut testdata/models/vgg19-tiny.onnx --layer fc7 -o /tmp/tiny-fc7.onnx
    .cache/venv/bin/python testdata/reference/vectors_golden.py /tmp/tiny-fc7.onnx
"""
import hashlib
import json
import os
import sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from preprocess_golden import EXTS, GOLDEN, IMAGES, load, normalise, resize_crop  # noqa: E402


def main():
    model = sys.argv[1]
    with open(model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name_in = sess.get_inputs()[0].name
    out = {"model_sha256": sha, "onnxruntime": ort.__version__, "vectors": {}}
    for name in sorted(os.listdir(IMAGES)):
        if not name.endswith(EXTS):
            continue
        im, _ = load(os.path.join(IMAGES, name))
        x = normalise(resize_crop(im))[None]
        v = sess.run(None, {name_in: x})[0][0].astype(np.float64)
        n = np.linalg.norm(v)
        out["vectors"][name] = [float(f) for f in (v / n if n > 0 else v).astype(np.float32)]
    with open(os.path.join(GOLDEN, "vectors-tiny-fc7.json"), "w") as f:
        json.dump(out, f, indent=0, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
