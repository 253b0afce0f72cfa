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
// file list for the plain files: the job's source references (folders by
// path, the list by its name) and their opener.
func (f *sourceFlags) embedSources(paths []string) ([]string, func(string) (connector.Source, error), error) {
	var refs, files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("embed %s: %w", p, err)
		}
		if fi.IsDir() {
			refs = append(refs, p)
		} else {
			files = append(files, p)
		}
	}
	var list connector.Source
	if len(files) > 0 {
		list = filelist.New(files)
		refs = append(refs, list.Name())
	}
	open := func(ref string) (connector.Source, error) {
		if list != nil && ref == list.Name() {
			return list, nil
		}
		return folder.New(ref, f.options())
	}
	return refs, open, nil
}
