package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"
	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/filelist"
	"github.com/imgvec/imgvec/connector/folder"
)

// registerSourceFlags binds the flags that shape a source's listing and
// reads onto j's fields.
func registerSourceFlags(fs *pflag.FlagSet, j *config.Job) {
	rangeVar(fs, &j.S3Concurrency, "s3-concurrency", "", config.DefaultS3Concurrency, config.S3ConcurrencyRange, "S3 sources: requests in flight (and read workers) per source")
	fs.BoolVar(&j.S3Metadata, "s3-metadata", false, "S3 sources: store each object's user metadata (x-amz-meta-*) with its row")
	fs.BoolVar(&j.AllowPrivateNetworks, "allow-private-networks", false, "URL sources: allow fetches from loopback, private and link-local addresses (refused by default)")
	fs.StringSliceVar(&j.AllowCIDRs, "allow-cidr", nil, "URL sources: networks to allow anyway (repeatable, e.g. 10.20.0.0/16)")
	fs.StringVar(&j.UserAgent, "user-agent", config.DefaultUserAgent, "URL sources: the User-Agent of every request")
	rangeVar(fs, &j.URLConcurrency, "url-concurrency", "", config.DefaultURLConcurrency, config.URLConcurrencyRange, "URL sources: fetches in flight (and read workers) per source")
	rangeVar(fs, &j.URLPerHost, "url-per-host", "", config.DefaultURLPerHost, config.URLPerHostRange, "URL sources: fetches in flight per host")
	rangeVar(fs, &j.URLTimeout, "url-timeout", "", config.DefaultURLTimeout, config.URLTimeoutRange, "URL sources: deadline of one try of one fetch")
	fs.StringSliceVar(&j.Include, "include", nil, "glob of keys to include (repeatable, ** allowed)")
	fs.StringSliceVar(&j.Exclude, "exclude", nil, "glob of keys to exclude (repeatable)")
	fs.StringSliceVar(&j.Extensions, "ext", nil, "file extensions to list (default jpg,jpeg,png,gif,webp,bmp,tif,tiff)")
	fs.BoolVar(&j.FollowSymlinks, "follow-symlinks", false, "follow symbolic links (loops are detected)")
	rangeVar(fs, &j.MaxBytes, "max-bytes", "", config.DefaultMaxBytes, config.MaxBytesRange, "refuse files larger than this many bytes")
}

// embedSources splits PATHS into one folder source per directory and one
// file list for the plain files: the job's source references (folders by
// path, the list by its name) and their opener.
func embedSources(j config.Job, paths []string) ([]string, func(string) (connector.Source, error), error) {
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
		return folder.New(ref, wiring.FolderOptions(j))
	}
	return refs, open, nil
}
