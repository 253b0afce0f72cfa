// Package testenv holds the one rule every integration test follows: locally
// a test whose server or library is missing skips with a message saying how
// to provide it; with CI=true that skip is a failure, so CI cannot pass by
// testing nothing.
package testenv

import (
	"os"
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
