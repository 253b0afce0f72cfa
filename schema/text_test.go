package schema

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscapeKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a/b.jpg", "a/b.jpg"},
		{`dir\a.jpg`, `dir\a.jpg`}, // valid UTF-8: unchanged
		{"été.jpg", "été.jpg"},
		{"a\xffb.jpg", `a\xffb.jpg`},
		{"\xc3\x28.png", `\xc3(.png`},
		{"a\\\xfe", `a\\\xfe`},
		{"\xe2\x82", `\xe2\x82`}, // a truncated 3-byte sequence
	} {
		got := EscapeKey(tc.in)
		if got != tc.want {
			t.Errorf("EscapeKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("EscapeKey(%q) = %q is not valid UTF-8", tc.in, got)
		}
	}
	// Unambiguous among escaped keys: a literal "\xff" and byte 0xff differ.
	if a, b := EscapeKey("\\xff\xfe"), EscapeKey("\xff\xfe"); a == b {
		t.Errorf("EscapeKey maps two raw keys to %q", a)
	}
}

func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a/b.jpg", "a/b.jpg"},
		{`keep\back`, `keep\back`},
		{"été ✓.jpg", "été ✓.jpg"},
		{"\x1b]0;pwned\x07x.jpg", `\x1b]0;pwned\x07x.jpg`},
		{"\x1b[2J\r\n\t", `\x1b[2J\x0d\x0a\x09`},
		{"del\x7f", `del\x7f`},
		{"c1\u009b31m", `c1\u009b31m`},
		{"raw\xff\x9b", `raw\xff\x9b`}, // invalid bytes, not C1 characters
		{"\ufffd", "\ufffd"},
	} {
		got := Printable(tc.in)
		if got != tc.want {
			t.Errorf("Printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.ContainsFunc(got, isControl) || !utf8.ValidString(got) {
			t.Errorf("Printable(%q) = %q still holds a control character or invalid UTF-8", tc.in, got)
		}
	}
}
