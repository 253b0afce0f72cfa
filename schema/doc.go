// Package schema defines the data imgvec moves: the record stored for each
// image, the fingerprint used to decide whether an image changed, the model
// identity stamped on every vector, and the classes of per-item failure.
//
// Text stored in a sink is valid UTF-8: a listed key that is not (a file
// name with byte 0xff) is refused with FailInvalidKey and recorded under
// EscapeKey(key). Printable is how human-readable output shows keys and
// other source-provided strings.
//
// It imports only the standard library so that every other package (extract,
// connector, sinks, migrations) can share these types without cycles.
package schema
