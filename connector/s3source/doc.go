// Package s3source is a connector.Source for the objects under a prefix of
// an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, Ceph, R2, ...), through
// the official aws-sdk-go-v2.
//
// # Reference
//
//	s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION&path_style=true]
//
// endpoint is the S3 API's base URL (default: AWS, from the region);
// region defaults to the AWS configuration's, else us-east-1; path_style
// addresses the bucket in the path (most self-hosted servers need it).
// Credentials are never part of the reference: they come from the
// standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, shared
// config and profiles, web identity, container and instance metadata) or
// Options.Credentials, and never appear in an error or a name.
//
// Name is "s3://BUCKET/PREFIX/" (the prefix with one trailing slash): the
// endpoint is not part of the identity, so a bucket moved to another
// endpoint keeps its item ids.
//
// # Listing
//
// Paginated ListObjectsV2 under the prefix, in key order (the source is a
// connector.KeyOrderedSource). Keys are the object keys below the prefix; keys ending in "/" (folder markers) and keys the
// extension/include/exclude filter (connector/keyfilter) rejects are not
// listed. Each entry carries the size, LastModified (UTC) and the ETag as
// the server gives it: ETags are opaque (a multipart ETag is no MD5), only
// compared for equality. Each page is one request with a deadline and
// bounded retries with jitter (connector/retry); a page that still fails
// ends the listing with an error, after the entries of the pages before
// it: the connector then deletes nothing.
//
// # Reading
//
// Read is a GetObject. ReadItem (connector.ItemReader, what the pipeline
// calls) is a GetObject conditional on the listed ETag (If-Match): an
// object replaced since the listing fails the condition and is read again
// unconditionally, and its new size, LastModified and ETag come back with
// the bytes, so the new bytes are never stored under the old fingerprint.
// With Options.Metadata the object's user metadata (x-amz-meta-*, keys
// lowercased without the prefix) is the item's metadata. Objects above
// Options.MaxBytes are refused (connector.ErrTooLarge) from the listed
// size without a request, and a body longer than announced is cut at the
// cap. A missing object wraps fs.ErrNotExist. At most Options.Concurrency
// requests are in flight at once, which is also the number of read
// workers the pipeline runs for this source (connector.ConcurrentSource).
//
// Source is safe for concurrent use; Close releases idle connections.
package s3source
