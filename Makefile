# imgvec — see README.md. Every target works on a fresh machine: `make test`
# and `make demo` run `make setup` first.
SHELL := /bin/bash
GO ?= go
BIN := bin/imgvec
export CGO_ENABLED := 1

.PHONY: setup setup-gpu build test test-short services services-stop bench bench-scale bench-fullscale bench-quantize bench-extract bench-connector bench-postgres bench-milvus bench-sources bench-gpu demo fuzz lint clean

setup: .cache/.setup-done

.cache/.setup-done: .ci/lib/install-apt.sh .ci/lib/install-onnxruntime.sh .ci/lib/install-sqlite-vec.sh go.sum
	.ci/lib/install-apt.sh
	.ci/lib/install-onnxruntime.sh
	.ci/lib/install-sqlite-vec.sh
	$(GO) mod download
	@mkdir -p .cache && touch $@

build: setup
	$(GO) build -o $(BIN) ./cmd/imgvec

services: setup
	.ci/services.sh start

services-stop:
	.ci/services.sh stop

# The packages that must build without cgo: nothing below the command line
# links ONNX Runtime or the image codecs (the SQLite sink's driver does).
NOCGO_PKGS := ./schema/... ./connector/... ./sinks/postgres/... ./sinks/milvus/... ./migrations/...

# The test command CI runs. Integration tests read server addresses from
# .cache/services.env; with CI=true a skipped integration test fails.
test: setup services
	.ci/lib/install-python.sh
	set -a; source .cache/services.env; set +a; \
	$(GO) vet ./... && \
	CGO_ENABLED=0 $(GO) build $(NOCGO_PKGS) && \
	$(GO) test -race -count=1 -timeout 30m ./...

# The quick loop: -short skips the end-to-end tests (and the binary's
# build), crash, fault, lock-wait and measurement tests, each saying
# "skipped with -short". CI runs `make test`, never -short.
test-short: setup
	$(GO) test -short -count=1 ./...

fuzz: setup
	$(GO) test ./extract/imaging -run '^$$' -fuzz FuzzDecodePreprocess -fuzztime 60s

# Benchmarks generate the full-size VGG19 (random weights, ~575 MB) on demand
# into testdata/models/generated/ (git-ignored).
bench: bench-fullscale bench-quantize bench-extract bench-connector bench-scale bench-postgres bench-milvus bench-sources

# The full-size VGG19 (~575 MB, random weights) in each naming: generate,
# find and cut fc7, run the cut model (build tag fullscale; minutes).
bench-fullscale: setup
	$(GO) test -tags fullscale -run TestFullScaleVGG19 -v -count=1 -timeout 30m ./extract/onnxgraph/

# The CUDA build of ONNX Runtime and the NVIDIA libraries (~1.6 GB, pinned
# PyPI wheels) into .cache/onnxruntime-gpu/: for GPU machines only; neither
# setup nor test runs it.
setup-gpu:
	.ci/lib/install-onnxruntime-gpu.sh

# GPU throughput (see .ci/bench-gpu.sh): on a GPU machine, model-only and
# end-to-end img/s at batch 32/64/128, fp32/TF32/fp16/uint8 upload, 640x480
# and 12 MP JPEGs, cosines to fp32; under 8 minutes. BENCH_GPU_DEVICE=cpu is
# the CPU smoke test (seconds). Not part of make bench (needs a GPU).
bench-gpu:
	.ci/bench-gpu.sh

# The full-size VGG19 cut at fc7, static int8 vs fp32: img/s in one run,
# cosine and top-10 overlap on testdata/images (issue 13's targets).
bench-quantize: setup
	$(GO) test -tags fullscale -run TestFullScaleQuantize -v -count=1 -timeout 30m ./extract/

bench-extract: setup
	.ci/lib/install-python.sh
	$(GO) run ./cmd/imgvec-bench extract

bench-connector: setup
	$(GO) run ./cmd/imgvec-bench connector

# Peak RSS and time of a no-op sync (and dry run) over 1M and 10M stored
# items (synthetic source and sink that hold nothing), each in its own
# process, one after the other, against the bare listing and the bare read
# of the stored items (issue 14; README "Memory of a sync").
bench-scale: setup
	$(GO) run ./connector/internal/scalebench -n 1000000,10000000

# 100k 4096-d rows on a private server with durable settings (started by
# the test from the services' binaries): upsert vs COPY vs row-by-row, index
# live vs deferred and its build settings, recall@10 and latency of the
# binary index vs exact search, halfvec, the reduced-column candidate.
# Tables also go to .cache/bench-postgres.md.
bench-postgres: setup services
	set -a; source .cache/services.env; set +a; \
	IMGVEC_BENCH_PG_ROWS=100000 IMGVEC_BENCH_OUT=$(CURDIR)/.cache/bench-postgres.md $(GO) test -run TestMeasure -v -timeout 90m ./sinks/postgres/

# Upsert rows/s of 4096-d vectors by chunk size and concurrent writers
# (the best setting is the sink's default).
bench-milvus: setup services
	set -a; source .cache/services.env; set +a; \
	IMGVEC_BENCH_MILVUS_ROWS=4000 $(GO) test -run TestMeasureUpsert -v -timeout 30m ./sinks/milvus/

# The S3 and URL sources against their baselines, in one run each (medians
# of 3): S3 listing of 100k objects vs a bare ListObjectsV2 loop, a no-op
# sync of them vs that listing; a no-op re-sync of 10k URLs answering 304
# vs a concurrent HEAD loop; backfill from S3 vs from a folder with the
# tiny model and the full VGG19 (generated once into .cache/bench-models).
bench-sources: setup services
	test -f .cache/bench-models/generated/vgg19-torchvision.onnx || $(GO) run ./testdata/models/gen.go -out .cache/bench-models -full
	set -a; source .cache/services.env; set +a; \
	IMGVEC_BENCH_S3_OBJECTS=100000 $(GO) test -run TestMeasureSources -v -count=1 -timeout 60m ./connector/s3source/ && \
	IMGVEC_BENCH_URLS=10000 $(GO) test -run TestMeasureRevalidate -v -count=1 -timeout 30m ./connector/urlsource/ && \
	IMGVEC_BENCH_SOURCES=1 IMGVEC_BENCH_FULL_MODEL=$(CURDIR)/.cache/bench-models/generated/vgg19-torchvision.onnx \
	$(GO) test -run TestMeasureBackfillSources -v -count=1 -timeout 60m ./cmd/imgvec/

demo: build
	rm -f imgvec.db imgvec.db-wal imgvec.db-shm
	@echo "== imgvec demo: syncing testdata/images into ./imgvec.db with the TINY TEST MODEL =="
	@echo "   (random weights: the pipeline is real, the similarities are not; for real"
	@echo "    VGG19 fc7 vectors run: $(BIN) model fetch vgg19 and pass --model vgg19-fc7)"
	$(BIN) sync --source testdata/images --exclude 'bad/**' --model testdata/models/vgg19-tiny.onnx
	@echo "== the 5 stored images most similar to testdata/images/landscape.jpg =="
	$(BIN) search --model testdata/models/vgg19-tiny.onnx --image testdata/images/landscape.jpg -k 5
	$(BIN) status

clean:
	rm -rf bin .cache/.setup-done imgvec.db imgvec.db-wal imgvec.db-shm
