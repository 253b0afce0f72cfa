package milvus

import (
	"strconv"
	"strings"
)

// quote makes s a Milvus expression string literal. Milvus' parser reads a
// double-quoted literal with C escapes and decodes it with Go's
// strconv.Unquote, so strconv.Quote's output is exactly the literal for s:
// quotes, backslashes, newlines and control bytes are escaped and cannot
// end the literal early. (Milvus 2.3 has no expression templates, the
// parameterised form of 2.5; this is the one place filters are built from
// data.)
func quote(s string) string { return strconv.Quote(s) }

// inList is `field in ["a", "b"]` with every value quoted.
func inList(field string, values []string) string {
	var b strings.Builder
	b.WriteString(field)
	b.WriteString(" in [")
	for i, v := range values {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(quote(v))
	}
	b.WriteByte(']')
	return b.String()
}

// eq is `field == "value"`.
func eq(field, value string) string { return field + " == " + quote(value) }
