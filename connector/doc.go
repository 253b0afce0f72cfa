// Package connector keeps a sink in sync with a source: it lists the source,
// diffs the listing against what the sink stores, extracts vectors for new
// and changed items in batches, writes them, records per-item failures in
// the ledger, and deletes vanished items after a complete listing.
//
// Interfaces: Source (source.go) and Sink/Searcher/StatusReader (sink.go)
// carry their contracts in their doc comments.
package connector
