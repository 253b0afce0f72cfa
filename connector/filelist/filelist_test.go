package filelist_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/filelist"
	"github.com/imgvec/imgvec/connector/sourcetest"
)

func TestConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness{MTime: true, New: func(t *testing.T, items []sourcetest.Item) sourcetest.Fixture {
		dir := t.TempDir()
		path := func(item string) string { return filepath.Join(dir, filepath.FromSlash(item)) }
		var paths []string
		for _, it := range items {
			p := path(it.Key)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, it.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, it.MTime, it.MTime); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
		return sourcetest.Fixture{
			Source: filelist.New(paths),
			Key:    path,
			Reopen: func(*testing.T) connector.Source { return filelist.New(paths) },
			// A named file that vanished before the listing.
			Break: func(t *testing.T) {
				if err := os.Remove(paths[len(paths)/2]); err != nil {
					t.Fatal(err)
				}
			},
		}
	}})
}
