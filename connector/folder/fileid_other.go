//go:build !unix

package folder

import "io/fs"

// fileID is not available here; directories are identified by their
// resolved path instead.
func fileID(fs.FileInfo) (string, bool) { return "", false }
