#!/usr/bin/env bash
# make bench-gpu: GPU throughput in one run (issue 13), under 8 minutes on
# one GPU. It prints img/s model-only and end-to-end (640x480 and 12 MP
# JPEGs through the backfill pipeline) at batch 32/64/128 for fp32 (TF32
# off), TF32 (the default), fp16 and TF32 with --upload uint8, and each
# variant's cosine to fp32. Everything it needs is generated: the full-size
# VGG19 with deterministic random weights (testdata/models/generated/) and
# the JPEGs (a temp dir).
#
#   BENCH_GPU_DEVICE   device list (default cuda:0; cuda:0,cuda:1 for two
#                      GPUs); cpu runs the smoke test: tiny model, seconds,
#                      numbers mean nothing.
#   BENCH_GPU_BIN      a prebuilt imgvec-bench (default: go run).
#
# It needs an NVIDIA driver (R580+ for CUDA 13), the CUDA build of ONNX
# Runtime (.cache/onnxruntime-gpu/, from `make setup-gpu`: it runs it when
# missing, which needs PyPI; or IMGVEC_ORT_LIB), and Go with the cgo
# libraries of `make setup` unless BENCH_GPU_BIN is given. Whatever is
# missing fails at once with one line saying what.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=${BENCH_GPU_DEVICE:-cuda:0}
fail() { echo "bench-gpu: $*" >&2; exit 1; }
args=(gpu --device "$dev")
if [ "$dev" = cpu ]; then
  args+=(--quick)
else
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    fail "no NVIDIA GPU or driver here (nvidia-smi is missing or fails): run it on a GPU machine, or BENCH_GPU_DEVICE=cpu for the CPU smoke test"
  fi
  if [ -z "${IMGVEC_ORT_LIB:-}" ] && [ ! -e .cache/onnxruntime-gpu/1.30.0/libonnxruntime.so.1 ]; then
    echo "bench-gpu: the CUDA build of ONNX Runtime is missing: running make setup-gpu" >&2
    .ci/lib/install-onnxruntime-gpu.sh ||
      fail "make setup-gpu failed (it downloads ~1.6 GB of pinned wheels from PyPI): copy .cache/onnxruntime-gpu/1.30.0/ from a machine that has it, or set IMGVEC_ORT_LIB to an onnxruntime-gpu 1.30 library with its CUDA 13 and cuDNN 9 libraries beside it"
  fi
fi
if [ -n "${BENCH_GPU_BIN:-}" ]; then
  exec "$BENCH_GPU_BIN" "${args[@]}"
fi
command -v go >/dev/null 2>&1 || fail "no Go toolchain: install Go (go.mod's version) and run make setup, or set BENCH_GPU_BIN to a prebuilt imgvec-bench (go build -o bin/imgvec-bench ./cmd/imgvec-bench)"
exec go run ./cmd/imgvec-bench "${args[@]}"
