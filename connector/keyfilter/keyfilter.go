// Package keyfilter decides which keys of a source are listed: by
// extension and by include/exclude patterns. The folder and S3 sources
// share it, so that --include, --exclude and --extensions mean the same
// for every source.
package keyfilter

import (
	"fmt"
	"path"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// DefaultExtensions are the extensions listed when New is given none.
var DefaultExtensions = []string{"jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff"}

// Filter holds validated patterns and extensions. It is immutable and safe
// for concurrent use.
type Filter struct {
	include, exclude []string
	exts             map[string]bool // nil: any extension
}

// New validates the patterns (doublestar syntax, matched against the whole
// slash-separated key, case-sensitively) and extensions (with or without
// the dot, case-insensitive; nil: DefaultExtensions; "*": any).
func New(include, exclude, extensions []string) (*Filter, error) {
	for _, p := range append(append([]string{}, include...), exclude...) {
		if !doublestar.ValidatePattern(p) {
			return nil, fmt.Errorf("invalid pattern %q", p)
		}
	}
	f := &Filter{include: include, exclude: exclude, exts: make(map[string]bool)}
	if extensions == nil {
		extensions = DefaultExtensions
	}
	for _, e := range extensions {
		e = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(e), "."))
		if e == "*" {
			f.exts = nil
			break
		}
		if e == "" {
			return nil, fmt.Errorf("empty extension")
		}
		f.exts[e] = true
	}
	return f, nil
}

// Excluded reports whether key (a file or a directory) matches an
// exclude pattern.
func (f *Filter) Excluded(key string) bool {
	for _, p := range f.exclude {
		if doublestar.MatchUnvalidated(p, key) {
			return true
		}
	}
	return false
}

// Wanted applies the extension, include and exclude rules to a file key.
func (f *Filter) Wanted(key string) bool {
	if f.exts != nil {
		ext := strings.ToLower(strings.TrimPrefix(path.Ext(key), "."))
		if ext == "" || !f.exts[ext] {
			return false
		}
	}
	if f.Excluded(key) {
		return false
	}
	if len(f.include) == 0 {
		return true
	}
	for _, p := range f.include {
		if doublestar.MatchUnvalidated(p, key) {
			return true
		}
	}
	return false
}
