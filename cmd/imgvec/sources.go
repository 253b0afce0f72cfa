package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/filelist"
	"github.com/imgvec/imgvec/connector/folder"
)

// sourceFlags are the flags that shape a folder listing.
type sourceFlags struct {
	include        []string
	exclude        []string
	extensions     []string
	followSymlinks bool
	maxBytes       int64
}

func (f *sourceFlags) options() folder.Options {
	return folder.Options{Include: f.include, Exclude: f.exclude, Extensions: f.extensions,
		FollowSymlinks: f.followSymlinks, MaxBytes: f.maxBytes}
}

// openSource opens a --source value: a folder path or file:// URI.
func (f *sourceFlags) openSource(ref string) (connector.Source, error) {
	switch {
	case strings.HasPrefix(ref, "s3://"), strings.HasPrefix(ref, "http://"), strings.HasPrefix(ref, "https://"):
		return nil, fmt.Errorf("source %s: S3 and URL-manifest sources are not available in this build yet", ref)
	}
	return folder.New(ref, f.options())
}

// embedSources splits PATHS into one folder source per directory and one
// file list for the plain files.
func (f *sourceFlags) embedSources(paths []string) ([]connector.Source, error) {
	var srcs []connector.Source
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("embed %s: %w", p, err)
		}
		if fi.IsDir() {
			s, err := folder.New(p, f.options())
			if err != nil {
				return nil, err
			}
			srcs = append(srcs, s)
			continue
		}
		files = append(files, p)
	}
	if len(files) > 0 {
		srcs = append(srcs, filelist.New(files))
	}
	return srcs, nil
}
