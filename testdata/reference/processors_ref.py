#!/usr/bin/env python3
"""Reference for extract/imaging's filters and Hugging Face image processors.

Reads a JSON list of cases on stdin and writes, for each case in order, the
raw output to stdout:

    {"image": PATH, "filter": NAME, "width": W, "height": H}
        Pillow's im.resize((W, H), FILTER) of the image: uint8 H*W*3 (RGB)
    {"image": PATH, "config": PATH}
        the transformers image processor named by that preprocessor_config.json
        (its PIL/numpy implementation): float32 little-endian 3*H*W (CHW)

Images are loaded as preprocess_golden.py loads them (EXIF orientation
applied, convert("RGB")), which imgvec's decoder matches bit for bit.
No network: processors are built from the local config file.

    echo '[...]' | .cache/venv/bin/python testdata/reference/processors_ref.py > out.bin
"""
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from preprocess_golden import load  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def processor(config):
    import transformers

    with open(config) as f:
        cfg = json.load(f)
    name = cfg.get("image_processor_type") or cfg["feature_extractor_type"].replace("FeatureExtractor", "ImageProcessor")
    # from_dict is what from_pretrained does with the file.
    return getattr(transformers, name).from_dict(cfg)


def main():
    out = sys.stdout.buffer
    for case in json.load(sys.stdin):
        im, _ = load(case["image"])
        if "filter" in case:
            r = im.resize((case["width"], case["height"]), FILTERS[case["filter"]])
            out.write(np.asarray(r, dtype=np.uint8).tobytes())
        else:
            px = processor(case["config"])(images=[im], return_tensors="np")["pixel_values"][0]
            assert px.dtype == np.float32 and px.shape[0] == 3, (px.dtype, px.shape)
            out.write(np.ascontiguousarray(px).astype("<f4").tobytes())
    out.flush()


if __name__ == "__main__":
    main()
