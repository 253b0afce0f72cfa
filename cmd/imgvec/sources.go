package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/imgvec/imgvec/connector"
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

// fileList is a Source over files named on the command line (imgvec embed
// FILE…). Keys are the paths as given.
type fileList struct{ paths []string }

func (l fileList) Name() string { return "files:" }
func (l fileList) Close() error { return nil }

func (l fileList) List(ctx context.Context, fn func(connector.Entry) error) error {
	for _, p := range l.paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("list %s: %w", p, err)
		}
		if err := fn(connector.Entry{Key: p, Size: fi.Size(), MTime: fi.ModTime().UTC()}); err != nil {
			return err
		}
	}
	return nil
}

func (l fileList) Read(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return b, nil
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
		files = append(files, filepath.Clean(p))
	}
	if len(files) > 0 {
		srcs = append(srcs, fileList{paths: files})
	}
	return srcs, nil
}
