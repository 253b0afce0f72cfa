//go:build unix

package folder

import (
	"fmt"
	"io/fs"
	"syscall"
)

// fileID identifies a directory by device and inode.
func fileID(info fs.FileInfo) (string, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return "", false
	}
	return fmt.Sprintf("%d:%d", uint64(st.Dev), uint64(st.Ino)), true
}
