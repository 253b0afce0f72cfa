package sinktest

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// SQLBlocks returns, verbatim, the ```sql blocks of the section of the
// markdown file path that lies between the lines begin and end (HTML
// comment markers such as "<!-- sqlite-sql:begin -->"), and whether the
// section was found. Sinks use it to execute exactly the SQL the README
// shows users.
func SQLBlocks(t testing.TB, path, begin, end string) ([]string, bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []string
	var cur *strings.Builder
	inSection, found := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch trimmed := strings.TrimSpace(line); {
		case trimmed == begin:
			inSection, found = true, true
		case trimmed == end:
			inSection = false
		case !inSection:
		case cur == nil && trimmed == "```sql":
			cur = &strings.Builder{}
		case cur != nil && trimmed == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s: unterminated ```sql block", path)
	}
	return blocks, found
}
