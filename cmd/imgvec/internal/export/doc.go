// Package export writes the rows a sink streams (connector.VectorScanner)
// to the files `imgvec export` makes: JSON Lines, Parquet, or a NumPy .npy
// matrix with a JSON Lines side file of the rows' ids, keys and metadata.
//
// # Contract
//
//   - Write takes the rows in the order the scan gives them (key order) and
//     writes them in that order; it holds a bounded number of rows whatever
//     their count (JSON Lines and .npy one row; Parquet one row group of
//     at most 64 MiB of vectors).
//   - Output is deterministic: the same rows give the same bytes (no
//     timestamps but the stored ones, metadata keys sorted).
//   - Files are written under temporary names in the target's folder and
//     renamed into place only when every row is written, so that an error
//     or a cancelled context leaves no half-written export. "-" writes
//     JSON Lines to the given stdout instead.
//   - Every vector must have the declared dimension; a row that does not
//     stops the export with an error naming it.
//   - Errors wrap with %w and name the file or row; ctx is honoured through
//     the scan.
package export
