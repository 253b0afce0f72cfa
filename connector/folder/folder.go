// Package folder is a connector.Source for a directory tree on a local or
// mounted file system.
//
// Keys are slash-separated paths relative to the root ("2024/trip/a.jpg").
// The listing is recursive: the tree first, in key order (bytewise, a
// directory sorting as its name followed by "/"; the source is a
// connector.KeyOrderedSource), then (with Options.FollowSymlinks) the
// directories reached through symbolic links that were not already
// walked. It skips:
//   - hidden files and directories (names starting with ".");
//   - files whose extension is not in Options.Extensions (by default jpg,
//     jpeg, png, gif, webp, bmp, tif, tiff; compared case-insensitively);
//   - files that match no Options.Include pattern (when there are any) and
//     files or directories that match an Options.Exclude pattern;
//   - symbolic links, unless Options.FollowSymlinks is set;
//   - anything that is not a regular file or a directory.
//
// Keys are the file names as the file system gives them. A name that is
// not valid UTF-8 is listed as it is: the connector records it as an
// invalid_key failure without reading it. The root itself must be valid
// UTF-8 (New refuses it otherwise): it is the source's name in every sink.
//
// Incomplete listings: a directory or entry that cannot be read (permission
// denied, I/O error) does not stop the walk: the rest of the tree is listed,
// and List then returns an error naming what could not be read. The caller
// processes what was listed but, because List did not return nil, deletes
// nothing: the contents of an unreadable directory are never deleted from
// the sink. A file that vanishes between reading its directory and
// inspecting it is simply not listed.
package folder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/keyfilter"
	"github.com/imgvec/imgvec/schema"
)

// Options configure a folder Source. The zero value lists every image with
// a default extension, follows no symbolic link and reads files of any size.
type Options struct {
	// Include, when not empty, lists only files whose key matches at least
	// one of these patterns. Patterns use doublestar syntax ("**/*.jpg",
	// "2024/**", "{a,b}/*.png") and match the whole slash-separated key,
	// case-sensitively.
	Include []string
	// Exclude skips files whose key matches one of these patterns, and
	// whole directories whose key matches one ("thumbs", "**/cache",
	// "raw/**").
	Exclude []string
	// Extensions lists the extensions (with or without the dot,
	// case-insensitive) of the files to list. Defaults to
	// keyfilter.DefaultExtensions; "*" lists files of any extension.
	Extensions []string
	// FollowSymlinks lists the targets of symbolic links to files and
	// directories under the link's key. Each directory (by device and
	// inode) is walked once, so link loops end; a directory inside the
	// root keeps its own key even when links point at it. Defaults to
	// false: symbolic links are skipped.
	FollowSymlinks bool
	// MaxBytes makes Read refuse files larger than this many bytes with an
	// error wrapping connector.ErrTooLarge. Defaults to 0: no limit.
	MaxBytes int64
}

// Source lists and reads the image files under one directory.
type Source struct {
	root   string // absolute, cleaned, OS form
	name   string
	opts   Options
	filter *keyfilter.Filter
}

var _ connector.Source = (*Source)(nil)

// New returns a Source for root, a path ("photos", "/data/photos") or a
// file URL ("file:///data/photos"). It validates root and the options but
// does not touch the file system: a missing root makes List fail.
func New(root string, opts Options) (*Source, error) {
	dir, err := rootPath(root)
	if err != nil {
		return nil, err
	}
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("folder source %s: negative size cap %d", root, opts.MaxBytes)
	}
	filter, err := keyfilter.New(opts.Include, opts.Exclude, opts.Extensions)
	if err != nil {
		return nil, fmt.Errorf("folder source %s: %w", root, err)
	}
	return &Source{root: dir, name: "file://" + filepath.ToSlash(dir), opts: opts, filter: filter}, nil
}

func rootPath(root string) (string, error) {
	if root == "" {
		return "", errors.New("folder source: empty path")
	}
	p := root
	if strings.HasPrefix(root, "file:") {
		u, err := url.Parse(root)
		if err != nil {
			return "", fmt.Errorf("folder source %q: %w", root, err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return "", fmt.Errorf("folder source %q: file URL names host %q; only local paths are supported", root, u.Host)
		}
		if u.Path == "" || !strings.HasPrefix(u.Path, "/") {
			return "", fmt.Errorf("folder source %q: want an absolute path (file:///abs/dir)", root)
		}
		p = filepath.FromSlash(u.Path)
	}
	if !utf8.ValidString(p) {
		// The path is the source name every row and run is stored under,
		// and sinks store only valid UTF-8.
		return "", fmt.Errorf("folder source %q: path is not valid UTF-8 (it names the source in the sink); rename the directory or reach it through a symbolic link with a UTF-8 name", root)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("folder source %q: %w", root, err)
	}
	if !utf8.ValidString(abs) {
		return "", fmt.Errorf("folder source %q: absolute path %q is not valid UTF-8 (it names the source in the sink); give an absolute path that is", root, abs)
	}
	return filepath.Clean(abs), nil
}

// Name is "file://" followed by the absolute, cleaned path of the root.
func (s *Source) Name() string { return s.name }

// Root is the absolute path of the root directory.
func (s *Source) Root() string { return s.root }

// Close does nothing.
func (s *Source) Close() error { return nil }

// readDir is os.ReadDir; tests replace it to simulate unreadable
// directories (root can read any directory).
var readDir = os.ReadDir

// List walks the tree and calls fn for each image file. See the package
// documentation for what is skipped and for incomplete listings.
func (s *Source) List(ctx context.Context, fn func(connector.Entry) error) error {
	// The walk checks ctx per entry; checked here too so that an empty
	// tree under a cancelled context is not a complete listing.
	if err := ctx.Err(); err != nil {
		return err
	}
	info, err := os.Stat(s.root)
	if err != nil {
		return fmt.Errorf("list %s: %w", s.name, err)
	}
	if !info.IsDir() {
		return fmt.Errorf("list %s: not a directory", s.name)
	}
	w := &walker{s: s, ctx: ctx, fn: fn, visited: make(map[string]bool)}
	w.visit(s.root, info)
	if err := w.walk(s.root, ""); err != nil {
		return err
	}
	// Directories reached through symbolic links come last, so that a
	// directory inside the root keeps its own key when a link also
	// points at it.
	for len(w.linked) > 0 {
		l := w.linked[0]
		w.linked = w.linked[1:]
		if !w.visit(l.full, l.info) {
			continue
		}
		if err := w.walk(l.full, l.key); err != nil {
			return err
		}
	}
	if len(w.problems) > 0 {
		shown := w.problems[:min(len(w.problems), 10)]
		more := ""
		if n := len(w.problems) - len(shown); n > 0 {
			more = fmt.Sprintf(" (and %d more)", n)
		}
		return fmt.Errorf("list %s: incomplete, %d problems%s: %w", s.name, len(w.problems), more, errors.Join(shown...))
	}
	return nil
}

type walker struct {
	s        *Source
	ctx      context.Context
	fn       func(connector.Entry) error
	visited  map[string]bool
	linked   []linkedDir // symbolic links to directories, walked after the tree
	problems []error
}

type linkedDir struct {
	full, key string
	info      fs.FileInfo
}

// visit marks a directory as walked and reports whether it was new.
func (w *walker) visit(dir string, info fs.FileInfo) bool {
	id, ok := fileID(info)
	if !ok {
		resolved, err := filepath.EvalSymlinks(dir)
		if err != nil {
			resolved = dir
		}
		id = "path:" + resolved
	}
	if w.visited[id] {
		return false
	}
	w.visited[id] = true
	return true
}

func (w *walker) problem(rel string, err error) {
	if rel == "" {
		rel = "."
	}
	// The error ends up in the run row: a name that is not valid UTF-8 is
	// escaped like a refused key.
	w.problems = append(w.problems, fmt.Errorf("%s: %w", schema.EscapeKey(rel), err))
}

// walk lists dir, whose key is rel ("" for the root). It returns only
// errors that stop the listing (ctx, fn).
func (w *walker) walk(dir, rel string) error {
	entries, err := readDir(dir)
	if err != nil {
		// Keep what was read: the listing is incomplete either way.
		w.problem(rel, err)
	}
	inKeyOrder(entries)
	for _, de := range entries {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		name := de.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		key := name
		if rel != "" {
			key = path.Join(rel, name)
		}
		full := filepath.Join(dir, name)

		var info fs.FileInfo
		isLink := de.Type()&fs.ModeSymlink != 0
		if isLink {
			if !w.s.opts.FollowSymlinks {
				continue
			}
			info, err = os.Stat(full)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
					continue // dangling or self-referential link: nothing to read
				}
				w.problem(key, err)
				continue
			}
		} else {
			info, err = de.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // vanished since the directory was read
				}
				w.problem(key, err)
				continue
			}
		}

		switch {
		case info.IsDir():
			if w.s.filter.Excluded(key) {
				continue
			}
			if isLink {
				w.linked = append(w.linked, linkedDir{full, key, info})
				continue
			}
			if !w.visit(full, info) {
				continue
			}
			if err := w.walk(full, key); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if !w.s.filter.Wanted(key) {
				continue
			}
			if err := w.fn(connector.Entry{Key: key, Size: info.Size(), MTime: info.ModTime().UTC()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// inKeyOrder sorts a directory's entries so that the walk lists keys in
// byte order (ListsInKeyOrder): a directory sorts as its name followed by
// "/", which every key below it starts with ("a-c" before "a/b", "a0"
// after). os.ReadDir sorts by name alone.
func inKeyOrder(entries []fs.DirEntry) {
	sortKey := func(de fs.DirEntry) string {
		if de.IsDir() {
			return de.Name() + "/"
		}
		return de.Name()
	}
	slices.SortStableFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(sortKey(a), sortKey(b)) })
}

// ListsInKeyOrder is true: the walk lists keys in byte order, except
// those below directories reached through symbolic links (walked last),
// which the diff sorts after the listing.
func (s *Source) ListsInKeyOrder() bool { return true }

// readChunk is how much Read reads between checks of ctx.
const readChunk = 1 << 20

// Read returns the content of the file at key. It refuses keys that leave
// the root, files that are not regular and, with Options.MaxBytes, files
// above the cap (connector.ErrTooLarge).
func (s *Source) Read(ctx context.Context, key string) ([]byte, error) {
	if !fs.ValidPath(key) || key == "." {
		return nil, fmt.Errorf("read %s from %s: invalid key", key, s.name)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	full := filepath.Join(s.root, filepath.FromSlash(key))
	if !s.opts.FollowSymlinks {
		if li, err := os.Lstat(full); err == nil && li.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("read %s from %s: symbolic link (not followed)", key, s.name)
		}
	}
	f, err := os.Open(full)
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", key, s.name, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", key, s.name, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s from %s: not a regular file", key, s.name)
	}
	limit := s.opts.MaxBytes
	if limit > 0 && info.Size() > limit {
		return nil, fmt.Errorf("read %s from %s: %d bytes, above the cap of %d: %w", key, s.name, info.Size(), limit, connector.ErrTooLarge)
	}
	var r io.Reader = f
	if limit > 0 {
		r = io.LimitReader(f, limit+1) // the file may grow after Stat
	}
	buf := make([]byte, 0, info.Size()+1) // +1: EOF is seen without growing
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, readChunk)
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), len(buf)+readChunk)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s from %s: %w", key, s.name, err)
		}
	}
	if limit > 0 && int64(len(buf)) > limit {
		return nil, fmt.Errorf("read %s from %s: more than the cap of %d bytes: %w", key, s.name, limit, connector.ErrTooLarge)
	}
	return buf, nil
}
