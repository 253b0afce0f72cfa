// Package testenv holds the one rule every integration test follows: locally
// a test whose server or library is missing skips with a message saying how
// to provide it; with CI=true that skip is a failure, so CI cannot pass by
// testing nothing.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Skip skips the test with the message, or fails it under CI.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true forbids skipping: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Python returns the reference Python environment (.cache/venv of the
// repository, made by .ci/lib/install-python.sh) or $IMGVEC_PYTHON, after
// checking that it imports each of modules; without it the test skips
// (fails under CI=true).
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	py := os.Getenv("IMGVEC_PYTHON")
	if py == "" {
		py = filepath.Join(repoRoot(t), ".cache", "venv", "bin", "python")
	}
	if _, err := os.Stat(py); err != nil {
		Skip(t, "python reference env not installed (run .ci/lib/install-python.sh): %v", err)
	}
	for _, m := range modules {
		if err := exec.Command(py, "-c", "import "+m).Run(); err != nil {
			Skip(t, "python reference env lacks %s (run .ci/lib/install-python.sh): %v", m, err)
		}
	}
	return py
}

// repoRoot is the folder holding go.mod, above the working directory (a
// test runs in its package's folder).
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}
