// Package connectortest provides in-memory fakes of connector's interfaces
// for tests: an Embedder that needs no ONNX Runtime (deterministic vectors
// from the bytes' sha256, failures per key, delays, hooks), a Sink that
// keeps everything in maps (atomic, idempotent writes, fault injection,
// detection of overlapping calls) and a Source that counts reads.
//
// The fakes are for unit tests of code built on connector, and are held to
// the same contracts as the real implementations: the Sink validates with
// connector.Batch.Normalize and passes sinks/sinktest, the Source passes
// connector/sourcetest (see this package's tests).
package connectortest
