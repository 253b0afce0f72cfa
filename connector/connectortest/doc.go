// Package connectortest provides in-memory fakes of connector's interfaces
// for tests: an Embedder that needs no ONNX Runtime (deterministic vectors
// from the bytes' sha256, failures per key, delays, hooks), a Sink that
// keeps everything in maps (atomic, idempotent writes, fault injection,
// detection of overlapping calls) and a Source that counts reads.
//
// The fakes are for unit tests of code built on connector; real sinks are
// tested with sinks/sinktest.
package connectortest
