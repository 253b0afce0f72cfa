#!/usr/bin/env bash
# Installs the CUDA build of ONNX Runtime and the NVIDIA libraries it loads
# into the repo's git-ignored cache (.cache/onnxruntime-gpu/<version>/, about
# 1.6 GB): the PyPI wheel onnxruntime-gpu (CUDA 13; needs an R580+ NVIDIA
# driver) and the CUDA runtime, NVRTC, cuBLAS, cuRAND, cuFFT and cuDNN 9
# wheels, each pinned by version and sha256 and downloaded with pip
# --require-hashes (no Python environment is installed: only the shared
# libraries are unpacked, flat, into one folder). imgvec prefers this folder
# to .cache/onnxruntime/ and preloads the NVIDIA libraries from it, so no
# LD_LIBRARY_PATH is needed. `make setup-gpu` runs it; CPU-only machines
# never need it. Idempotent.
set -euo pipefail
ORT_VERSION=1.30.0
# pip requirement lines: name==version --hash=sha256:... (linux x86_64 wheels;
# onnxruntime-gpu's cp312 wheel: only its .so files are used).
REQS=(
  "onnxruntime-gpu==$ORT_VERSION --hash=sha256:6acc0f4b3d5ac5f2984432faa59dd8fcce6775f8b43a7140afa0f322c7a703b1"
  "nvidia-cuda-runtime==13.5.37 --hash=sha256:df2b79a8852f10d1fef8c848489c49eebb5754051bf870202a862831412b179d"
  "nvidia-cuda-nvrtc==13.5.37 --hash=sha256:86b4d68058807988b7d9af5b44917a0601e9c337f35ccd657bfb3c759ff8d8bc"
  "nvidia-cublas==13.10.0.20 --hash=sha256:dcc6d63884c53d07e267ce7e6feac17b2538cebaafec5db865736c3e28e4dc84"
  "nvidia-curand==10.4.5.25 --hash=sha256:22bb226a857e5888fe6b54ae465fc4371296bcff13a35f79e19691bcf454f529"
  "nvidia-cufft==12.5.0.14 --hash=sha256:b8be26837a5abad2b5b74f3e92dd29f622a42934b355be0961a48712cbba23ad"
  "nvidia-cudnn-cu13==9.28.1.4 --hash=sha256:a54f205b1db1f2895d99f398754db1369816f0569dd459731f925635cf7b65ec"
)
root=$(cd "$(dirname "$0")/../.." && pwd)
dest="$root/.cache/onnxruntime-gpu/$ORT_VERSION"
stamp="$dest/.installed-$(printf '%s\n' "${REQS[@]}" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ -e "$dest/libonnxruntime.so.1" ]; then
  echo "onnxruntime-gpu $ORT_VERSION: $dest"
  exit 0
fi
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "install-onnxruntime-gpu: only linux x86_64 is pinned here" >&2; exit 1 ;;
esac
command -v python3 >/dev/null || { echo "install-onnxruntime-gpu: python3 (with pip) is required" >&2; exit 1; }
work=$(mktemp -d "$root/.cache/onnxruntime-gpu-download.XXXXXX")
trap 'rm -rf "$work"' EXIT
printf '%s\n' "${REQS[@]}" > "$work/requirements.txt"
python3 -m pip download --quiet --no-deps --require-hashes --only-binary :all: \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 \
  --python-version 3.12 --implementation cp --abi cp312 \
  -d "$work/wheels" -r "$work/requirements.txt"
rm -rf "$dest"
mkdir -p "$dest"
for whl in "$work"/wheels/*.whl; do
  # Only the shared libraries, flat: onnxruntime/capi/*.so*, nvidia/*/lib/*.so*.
  python3 - "$whl" "$dest" <<'PY'
import os, shutil, sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if ".so" not in base or not (name.startswith("onnxruntime/capi/") or (name.startswith("nvidia/") and "/lib/" in name)):
            continue
        if base.startswith("onnxruntime_pybind"):
            continue  # the Python binding
        with z.open(name) as src, open(os.path.join(dest, base), "wb") as out:
            shutil.copyfileobj(src, out)
PY
done
lib=$(ls "$dest"/libonnxruntime.so.1* 2>/dev/null | head -1)
[ -n "$lib" ] || { echo "install-onnxruntime-gpu: no libonnxruntime.so in the wheel" >&2; exit 1; }
[ -e "$dest/libonnxruntime.so.1" ] || ln -s "$(basename "$lib")" "$dest/libonnxruntime.so.1"
touch "$stamp"
echo "onnxruntime-gpu $ORT_VERSION with CUDA 13 libraries: $dest ($(du -sh "$dest" | cut -f1))"
