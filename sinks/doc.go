// Package sinks is the registry of imgvec's sinks: the one place that maps
// a URI scheme to its sink's constructor, its redaction and its
// capabilities. Commands open sinks through New and learn what a sink can
// do by asking for a capability interface with a type assertion — never a
// concrete sink type. Adding a sink touches its own folder and one line of
// the drivers table (registry.go).
//
// # Contract
//
//   - New validates a URI and returns a closed Sink without I/O; its error
//     is a *URIError (a usage mistake: unknown scheme, bad parameter, an
//     index the sink cannot keep). The caller opens (Open or OpenRead) and
//     closes the sink.
//   - Redact masks the secrets of any sink or lock URI (connector/redact); a
//     URI appears in no output unredacted.
//   - Capabilities, each a small interface a sink may implement:
//     connector.IndexManager (vector indexes), connector.IndexedSearcher
//     (whether Search goes through an index now), connector.RunAbandoner
//     (closes runs a dead runner left open), LeaseKeeper (keeps job leases
//     itself), lease.Fenceable (checks the lease inside each commit),
//     Migrator (owns schema migrations), Prober (answers readiness without
//     opening), Lazy (its first write creates its storage). Each sink's
//     doc says which it has; Driver.Indexes and Driver.LockStore say it
//     before New.
//   - Everything here is safe for concurrent use: the table is fixed at
//     build time.
package sinks
