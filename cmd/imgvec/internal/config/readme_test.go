package config

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// readmeConfigBlocks returns the yaml code blocks of the README's
// "Configuration" section.
func readmeConfigBlocks(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(data), "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(sec, -1) {
		blocks = append(blocks, m[1])
	}
	if len(blocks) != 2 {
		t.Fatalf("README Configuration: %d yaml blocks, want 2 (the smallest config, every key)", len(blocks))
	}
	return blocks
}

// The README's configs are valid, and its list of every key names every
// key with its actual default.
func TestREADMEConfiguration(t *testing.T) {
	blocks := readmeConfigBlocks(t)
	for _, b := range blocks {
		if _, err := ParseEnv("README.md", []byte(b), env(nil)); err != nil {
			t.Errorf("README config does not validate:\n%v\n%s", err, b)
		}
	}
	f, err := ParseEnv("README.md", []byte(blocks[1]), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultJob()
	want.Name, want.Sources = "photos", []string{"./photos"}
	if got := f.Jobs[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("README's every-key job is not the defaults:\n got %+v\nwant %+v", got, want)
	}
	if f.Serve != DefaultServe() || f.LockDSN != "" {
		t.Errorf("README's serve section is not the defaults: %+v", f.Serve)
	}
	// Every key the decoder knows is listed: its unknown-key message
	// names them all.
	for _, tc := range []struct{ src, section string }{
		{"jobs:\n  - {name: a, source: x, zz: 1}\n", "jobs:"},
		{"serve: {zz: 1}\njobs:\n  - {name: a, source: x}\n", "serve:"},
	} {
		_, err := ParseEnv("x.yaml", []byte(tc.src), env(nil))
		_, known, ok := strings.Cut(err.Error(), "(known: ")
		if !ok {
			t.Fatalf("no list of known keys in %v", err)
		}
		known, _, _ = strings.Cut(known, ")")
		keys := strings.Split(known, ", ")
		for _, k := range keys {
			if !regexp.MustCompile(`(?m)^\s+(- )?` + k + `:`).MatchString(blocks[1]) {
				t.Errorf("README's every-key config lacks %s", k)
			}
		}
		if !slices.Contains(keys, "grace") {
			t.Errorf("known keys %v look wrong", keys)
		}
	}
}
