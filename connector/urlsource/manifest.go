package urlsource

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// row is one item of a manifest.
type row struct {
	line   int
	url    string            // as written
	parsed *url.URL          // nil when the URL is not a valid http(s) URL
	sha256 string            // lowercase hex; "" when not given
	meta   map[string]string // every other column; nil when none
}

// format is a manifest's syntax, from its name.
type format int

const (
	formatJSONL format = iota
	formatCSV
	formatTSV
)

// IsManifest reports whether name (a path or URL) names a manifest: it
// ends in .jsonl, .csv or .tsv, optionally followed by .gz.
func IsManifest(name string) bool {
	_, _, ok := manifestFormat(name)
	return ok
}

func manifestFormat(name string) (f format, gz, ok bool) {
	if u, err := url.Parse(name); err == nil && (u.Scheme == "http" || u.Scheme == "https" || u.Scheme == "s3") {
		name = u.Path
	}
	n := strings.ToLower(name)
	if gz = strings.HasSuffix(n, ".gz"); gz {
		n = strings.TrimSuffix(n, ".gz")
	}
	switch {
	case strings.HasSuffix(n, ".jsonl"):
		return formatJSONL, gz, true
	case strings.HasSuffix(n, ".csv"):
		return formatCSV, gz, true
	case strings.HasSuffix(n, ".tsv"):
		return formatTSV, gz, true
	}
	return 0, false, false
}

// manifestError is a problem of one manifest line.
type manifestError struct {
	line int
	err  error
}

func (e *manifestError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }
func (e *manifestError) Unwrap() error { return e.err }

// parseManifest reads a manifest and returns its rows by key, in order.
// A line that cannot be read (bad syntax, no url, a bad sha256, a key
// already used) is skipped and reported: problems lists them (at most
// maxProblems, then a count); the caller's listing is then incomplete.
func parseManifest(r io.Reader, f format, gz bool) (keys []string, rows map[string]row, problems []error, err error) {
	if gz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("gunzip: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	rows = map[string]row{}
	add := func(line int, fields map[string]string) {
		rw, key, err := newRow(line, fields)
		if err == nil {
			if prev, dup := rows[key]; dup {
				err = fmt.Errorf("key %q already used on line %d", key, prev.line)
			}
		}
		if err != nil {
			problems = append(problems, &manifestError{line, err})
			return
		}
		rows[key] = rw
		keys = append(keys, key)
	}
	switch f {
	case formatJSONL:
		err = readJSONL(r, add, &problems)
	default:
		err = readCSV(r, f == formatTSV, add, &problems)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return keys, rows, problems, nil
}

func readJSONL(r io.Reader, add func(int, map[string]string), problems *[]error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal(b, &obj); err != nil {
			*problems = append(*problems, &manifestError{line, fmt.Errorf("not a JSON object: %w", err)})
			continue
		}
		fields := make(map[string]string, len(obj))
		for k, v := range obj {
			switch v := v.(type) {
			case string:
				fields[k] = v
			case nil:
			default:
				// Numbers, booleans, arrays and objects keep their JSON text.
				j, _ := json.Marshal(v)
				fields[k] = string(j)
			}
		}
		add(line, fields)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	return nil
}

func readCSV(r io.Reader, tsv bool, add func(int, map[string]string), problems *[]error) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked below, with the line number
	if tsv {
		cr.Comma = '\t'
		cr.LazyQuotes = true
	}
	header, err := cr.Read()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	header[0] = strings.TrimPrefix(header[0], "\ufeff")
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		line, _ := cr.FieldPos(0)
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			*problems = append(*problems, &manifestError{pe.StartLine, pe.Err})
			continue
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if len(rec) != len(header) {
			*problems = append(*problems, &manifestError{line, fmt.Errorf("%d fields, the header has %d", len(rec), len(header))})
			continue
		}
		fields := make(map[string]string, len(rec))
		for i, v := range rec {
			fields[header[i]] = v
		}
		add(line, fields)
	}
}

// newRow checks one line's fields and returns the row and its key.
func newRow(line int, fields map[string]string) (row, string, error) {
	rw := row{line: line, url: strings.TrimSpace(fields["url"])}
	if rw.url == "" {
		return row{}, "", errors.New(`no "url"`)
	}
	if s := strings.ToLower(strings.TrimSpace(fields["sha256"])); s != "" {
		if b, err := hex.DecodeString(s); err != nil || len(b) != 32 {
			return row{}, "", fmt.Errorf("sha256 %q: want 64 hex digits", fields["sha256"])
		}
		rw.sha256 = s
	}
	for k, v := range fields {
		if k == "url" || k == "id" || k == "sha256" {
			continue
		}
		if rw.meta == nil {
			rw.meta = map[string]string{}
		}
		rw.meta[k] = v
	}
	key := strings.TrimSpace(fields["id"])
	if u, err := normalizeURL(rw.url); err == nil {
		rw.parsed = u
		if key == "" {
			key = u.String()
		}
	} else if key == "" {
		key = rw.url // listed as written; reading it fails with bad_url
	}
	return rw, key, nil
}

// normalizeURL parses an http(s) URL and gives it one spelling: scheme
// and host lowercase, no default port, no fragment, "/" for an empty path.
func normalizeURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme %q: only http and https are fetched", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("no host")
	}
	if u.User != nil {
		return nil, errors.New("credentials in the URL are not sent")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	u.Host = host
	if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	}
	if port != "" {
		u.Host += ":" + port
	}
	u.Fragment, u.RawFragment = "", ""
	if u.Path == "" {
		u.Path = "/"
	}
	return u, nil
}
