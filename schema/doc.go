// Package schema defines the data imgvec moves: the record stored for each
// image, the fingerprint used to decide whether an image changed, the model
// identity stamped on every vector, and the classes of per-item failure.
//
// It imports only the standard library so that every other package (extract,
// connector, sinks, migrations) can share these types without cycles.
package schema
