// Package file is the sink behind `imgvec embed`: it writes vectors to a
// NumPy .npy matrix (float32) with a sidecar <name>.ids.txt naming each
// row's key, or to JSON Lines (one {"id","path","vector"} object per line;
// "-" is standard output).
//
// Rows come in input order: the order the sources given to Track list
// their items (the sources one after the other), whatever order the
// pipeline's batches finish in. A row ready before an item listed earlier
// is held until that item's row or failure arrives (in practice, the
// pipeline's window of items in flight); rows of untracked sources go in
// arrival order.
//
// It implements connector.Sink for a one-shot extraction: it stores no
// fingerprints (Stored yields nothing, so every listed item is extracted),
// reuses nothing, and deletes nothing. Output files are written under a
// temporary name and renamed into place by Close, so a failed run never
// leaves a truncated matrix behind. Failures are kept in memory for the
// summary (Failures).
//
// It does not implement connector.VectorScanner: it is write-only (its
// outputs are read with NumPy or any JSON reader), keeps no source,
// fingerprint or metadata to give back, and no --sink URI names it.
//
// Concurrency: like every Sink, Write is called by one goroutine at a time.
package file
