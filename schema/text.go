package schema

import (
	"strings"
	"unicode/utf8"
)

// EscapeKey is how a key that is not valid UTF-8 is written wherever text
// must be valid UTF-8 (every sink's key column, errors, ledger reasons):
// each byte that is not part of a valid UTF-8 sequence becomes \xHH (two
// lower-case hex digits) and each backslash becomes \\; everything else is
// kept. A valid UTF-8 key is returned unchanged.
//
// Among escaped keys the form is unambiguous: reading \\ as one backslash
// and \xHH as the byte HH gives the raw key back. The ledger entry of a
// key refused with FailInvalidKey holds the escaped key; its id is still
// ItemID(source, raw key).
func EscapeKey(key string) string {
	if utf8.ValidString(key) {
		return key
	}
	var b strings.Builder
	b.Grow(len(key) + 8)
	for i := 0; i < len(key); {
		r, n := utf8.DecodeRuneInString(key[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			writeHex(&b, `\x`, key[i])
		case r == '\\':
			b.WriteString(`\\`)
		default:
			b.WriteString(key[i : i+n])
		}
		i += n
	}
	return b.String()
}

// Printable makes a source-provided string (a key, a source name, a
// ledger reason, an error message) safe to print on a terminal: C0
// control characters and DEL become \xHH, C1 control characters (U+0080
// to U+009F) become \u00HH, and bytes that are not valid UTF-8 become \xHH,
// so a file name cannot move the cursor, recolour or retitle the
// operator's terminal. Everything else, backslashes included, is kept.
// Human-readable output uses it; JSON output prints the exact strings.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || isControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			writeHex(&b, `\x`, s[i])
		case r < 0x80 && isControl(r):
			writeHex(&b, `\x`, byte(r))
		case isControl(r):
			writeHex(&b, `\u00`, byte(r))
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// isControl reports a C0 control, DEL or a C1 control.
func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r <= 0x9f) }

func writeHex(b *strings.Builder, prefix string, c byte) {
	const digits = "0123456789abcdef"
	b.WriteString(prefix)
	b.WriteByte(digits[c>>4])
	b.WriteByte(digits[c&0xf])
}
