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

// embedSources turns PATHS into the job's sources, in the order given: a
// folder source per directory, a file list per run of consecutive plain
// files (named "files:" like every list, so that a file's id does not
// depend on its neighbours). It returns their references (folders by path,
// lists by a reference no path can be: it holds a NUL) and their opener.
func embedSources(j config.Job, paths []string) ([]string, func(string) (connector.Source, error), error) {
	var refs, files []string
	lists := map[string]connector.Source{}
	endList := func() {
		if len(files) > 0 {
			ref := fmt.Sprintf("files:\x00%d", len(lists))
			lists[ref] = filelist.New(files)
			refs, files = append(refs, ref), nil
		}
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("embed %s: %w", p, err)
		}
		if fi.IsDir() {
			endList()
			refs = append(refs, p)
		} else {
			files = append(files, p)
		}
	}
	endList()
	open := func(ref string) (connector.Source, error) {
		if list, ok := lists[ref]; ok {
			return list, nil
		}
		return folder.New(ref, wiring.FolderOptions(j))
	}
	return refs, open, nil
}
