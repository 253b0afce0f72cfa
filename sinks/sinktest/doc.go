// Package sinktest is the conformance suite every sink passes: SQLite here,
// PostgreSQL and Milvus against real servers, and the in-memory fake of
// connector/connectortest. A sink is done when
//
//	sinktest.Run(t, func(t *testing.T) connector.Sink { ... })
//
// passes in its package's tests.
//
// # What the suite needs from a sink
//
//   - newSink returns an UNOPENED sink over a fresh, isolated store (its own
//     file, schema, database or collection), cleaned up by t.Cleanup. The
//     store must accept Open without a manual migration step (use the
//     sink's auto-migrate option, or migrate in newSink).
//   - The sink also implements connector.Searcher,
//     connector.StatusReader and connector.VectorScanner.
//   - Close may be called more than once; Open after Close reconnects to
//     the same store, possibly with another model (the suite switches
//     models that way, as a later sync with a new model would).
//   - Times (mtime, extraction, ledger and run times) round-trip to the
//     nanosecond, or within the resolution the sink reports through
//     TimePrecisioner (e.g. a microsecond for PostgreSQL timestamptz).
//   - Optionally, WithForgeDim gives the suite a back door to store rows of
//     a model id with a wrong dimension, so that it can check that Open
//     refuses them.
//   - Vectors round-trip bit for bit, unless the sink declares a lower
//     element precision with WithVectorPrecision (then as rounded by it).
//   - With WithParallel, the subtests run in parallel: newSink's stores
//     must then be independent while in use (no process-wide state).
//
// # What the suite checks (semantics every sink shares)
//
//   - Write is all-or-nothing and idempotent: the same batch twice gives the
//     same state; a batch interrupted by a cancelled context leaves all or
//     nothing; the rerun converges.
//   - Repeated ids within one batch: the last upsert (and the last ledger
//     entry) of an id wins; a batch counts at most one attempt per id.
//   - Metadata updates change the fingerprint and keep the vector; an
//     update of a missing id does nothing.
//   - Ledger upserts count attempts: an entry whose LastSeen is later than
//     the stored one increments attempts and keeps FirstSeen; a replay with
//     the same LastSeen changes nothing. An upsert of an id removes its
//     ledger entry in the same commit.
//   - Delete(source, ids) removes rows and ledger entries of those ids in
//     that source only, in one commit.
//   - Stored(source) yields each id once: its row if it has one (with its
//     fingerprint and model id), else its ledger entry (Failed, Class), in
//     key order then id, comparing bytes, across rows of every model and
//     the ledger; fn may call Write meanwhile. An error from fn is
//     returned as is.
//   - VectorsBySHA256 returns exact vectors of the given model id only.
//   - Model ids never mix: Search returns only the asked model's rows,
//     Status counts rows per model id, rows of another model id with another
//     dimension do not stop Open, and records of another model id than the
//     open one are refused.
//   - Non-finite vectors and vectors whose length is not the model's
//     dimension are refused with an error naming the item, and nothing of
//     the batch is written.
//   - Search orders by cosine distance (0 identical, 2 opposite), nearest
//     first, with exact expected neighbours; Get returns the full record
//     with its vector bit for bit; Status lists models, ledger counts per
//     class, the 10 newest ledger entries and the 10 newest runs.
//   - A 4096-d vector (VGG19 fc7) round-trips.
//   - ScanVectors(modelID) yields every row of that model id and no other
//     (ledger entries are not rows), whole and with its vector bit for bit,
//     ordered by source and then key comparing bytes (not a locale's
//     collation), across more rows than one page; fn's error is returned
//     as is, and a cancelled ctx stops the scan with an error wrapping
//     ctx.Err().
package sinktest
