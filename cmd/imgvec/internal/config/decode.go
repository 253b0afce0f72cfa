package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/redact"
	"github.com/imgvec/imgvec/connector/s3source"
	"github.com/imgvec/imgvec/extract"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/sinks"
)

// The file is walked as a yaml.Node tree rather than decoded into structs:
// the tree keeps the line of every key and value, which every message
// needs, and lets each scalar be expanded before it is typed.

var jobName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// decoder accumulates problems so that one pass reports all of them.
type decoder struct {
	file     string
	lookup   func(string) (string, bool)
	env      map[string]bool
	problems []Problem
}

// handler decodes the value of one key; field is its path (jobs[0].batch).
type handler func(v *yaml.Node, field string)

func (d *decoder) addf(n *yaml.Node, field, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.file, Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) decodeFile(data []byte) (*File, error) {
	f := &File{Serve: DefaultServe()}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.addf(&yaml.Node{Line: 1}, "jobs", "missing: the file is empty")
			return f, nil
		}
		return nil, err
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		d.addf(&extra, "---", "a second YAML document: put every job in the one jobs: list")
	case !errors.Is(err, io.EOF):
		return nil, err
	}
	root := resolve(&doc)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = resolve(root.Content[0])
	}
	if root.Kind != yaml.MappingNode {
		return nil, errNotMapping
	}
	var jobs *yaml.Node
	var keys []map[string]*yaml.Node
	d.mapping(root, "", map[string]handler{
		"jobs":     func(v *yaml.Node, _ string) { jobs = v; f.Jobs, keys = d.jobs(v) },
		"serve":    func(v *yaml.Node, field string) { d.serve(v, field, &f.Serve) },
		"lock_dsn": d.uri(&f.LockDSN, checkLockDSN),
	})
	if jobs == nil {
		d.addf(root, "jobs", "missing: the file defines no jobs")
	}
	// Top-level lock_dsn and serve.grace are the defaults of the jobs'.
	for i := range f.Jobs {
		if f.Jobs[i].LockDSN == "" {
			f.Jobs[i].LockDSN = f.LockDSN
		}
		if keys[i]["grace"] == nil {
			f.Jobs[i].Grace = f.Serve.Grace
		}
	}
	return f, nil
}

// jobs decodes the jobs and returns, for each, the value nodes of the keys
// it set.
func (d *decoder) jobs(list *yaml.Node) ([]Job, []map[string]*yaml.Node) {
	switch {
	case list.Kind != yaml.SequenceNode:
		d.addf(list, "jobs", "want a list of jobs (- name: …), not %s", kindName(list))
		return nil, nil
	case len(list.Content) == 0:
		d.addf(list, "jobs", "empty: the file defines no jobs")
		return nil, nil
	}
	out := make([]Job, 0, len(list.Content))
	keys := make([]map[string]*yaml.Node, 0, len(list.Content))
	firstLine := map[string]int{}
	for i, item := range list.Content {
		field := fmt.Sprintf("jobs[%d]", i)
		j, seen := d.job(resolve(item), field)
		if nameNode := seen["name"]; nameNode != nil && j.Name != "" {
			if line, dup := firstLine[j.Name]; dup {
				d.addf(nameNode, field+".name", "%q: another job has this name (line %d); names must be unique", j.Name, line)
			} else {
				firstLine[j.Name] = nameNode.Line
			}
		}
		out = append(out, j)
		keys = append(keys, seen)
	}
	return out, keys
}

// job decodes and checks one job. It also returns the value nodes of the
// keys it set.
func (d *decoder) job(n *yaml.Node, field string) (Job, map[string]*yaml.Node) {
	j := DefaultJob()
	sinkOK := true // the index check needs the sink as written, not the default
	seen := d.mapping(n, field, map[string]handler{
		"name":   d.str(&j.Name, CheckJobName),
		"source": d.list(&j.Sources, checkSource),
		"sink": func(v *yaml.Node, f string) {
			before := len(d.problems)
			d.uri(&j.Sink, checkSink)(v, f)
			sinkOK = len(d.problems) == before
		},
		"model":                   d.str(&j.Model, checkNonEmpty),
		"layer":                   d.str(&j.Layer, nil),
		"pool":                    d.str(&j.Pool, extract.CheckPool),
		"preprocess":              d.str(&j.Preprocess, extract.CheckPreprocess),
		"decode":                  d.str(&j.Decode, checkDecode),
		"schedule":                d.str(&j.Schedule, checkSchedule),
		"time_zone":               d.str(&j.TimeZone, checkTimeZone),
		"batch":                   d.batch(&j.Batch),
		"device":                  d.str(&j.Device, checkDevice),
		"tf32":                    d.boolean(&j.TF32),
		"upload":                  d.str(&j.Upload, checkUpload),
		"threads":                 number(d, &j.Threads, ThreadsRange),
		"workers":                 number(d, &j.Workers, WorkersRange),
		"max_delete":              d.str(&j.MaxDelete, checkMaxDelete),
		"retry_failed":            d.boolean(&j.RetryFailed),
		"shard":                   d.str(&j.Shard, CheckShard),
		"grace":                   number(d, &j.Grace, GraceRange),
		"index":                   d.str(&j.Index, checkIndex),
		"include":                 d.list(&j.Include, nil),
		"exclude":                 d.list(&j.Exclude, nil),
		"ext":                     d.list(&j.Extensions, checkNonEmpty),
		"follow_symlinks":         d.boolean(&j.FollowSymlinks),
		"max_bytes":               number(d, &j.MaxBytes, MaxBytesRange),
		"max_pixels":              number(d, &j.MaxPixels, MaxPixelsRange),
		"no_normalize":            d.boolean(&j.NoNormalize),
		"ignore_exif_orientation": d.boolean(&j.IgnoreExifOrientation),
		"download":                d.boolean(&j.Download),
		"lock_dsn":                d.uri(&j.LockDSN, checkLockDSN),
		"s3_concurrency":          number(d, &j.S3Concurrency, S3ConcurrencyRange),
		"s3_metadata":             d.boolean(&j.S3Metadata),
		"allow_private_networks":  d.boolean(&j.AllowPrivateNetworks),
		"allow_cidr":              d.list(&j.AllowCIDRs, checkCIDR),
		"user_agent":              d.str(&j.UserAgent, checkNonEmpty),
		"url_concurrency":         number(d, &j.URLConcurrency, URLConcurrencyRange),
		"url_per_host":            number(d, &j.URLPerHost, URLPerHostRange),
		"url_timeout":             number(d, &j.URLTimeout, URLTimeoutRange),
	})
	if n.Kind != yaml.MappingNode {
		return j, seen
	}
	if seen["name"] == nil {
		d.addf(n, field+".name", "missing: every job needs a name")
	}
	switch v := seen["source"]; {
	case v == nil:
		d.addf(n, field+".source", "missing: every job needs a source folder")
	case v.Kind == yaml.SequenceNode && len(v.Content) == 0:
		d.addf(v, field+".source", "empty: every job needs a source folder")
	}
	// Only some sinks keep a vector index; the others search exactly.
	if v := seen["index"]; v != nil && sinkOK && j.Index != "" && j.Index != string(connector.IndexExact) {
		if drv, err := sinks.Lookup(j.Sink); err == nil && !drv.Indexes {
			d.addf(v, field+".index", "%q: only %s sinks have vector indexes", v.Value, sinks.Indexed())
		}
	}
	return j, seen
}

func (d *decoder) serve(n *yaml.Node, field string, s *Serve) {
	d.mapping(n, field, map[string]handler{
		"listen":       d.str(&s.Listen, checkListen),
		"token_env":    d.str(&s.TokenEnv, checkEnvName),
		"lease_ttl":    number(d, &s.LeaseTTL, LeaseTTLRange),
		"grace":        number(d, &s.Grace, GraceRange),
		"run_on_start": d.boolean(&s.RunOnStart),
		"replica_id":   d.str(&s.ReplicaID, checkReplicaID),
	})
}

// mapping calls the handler of each key of n and reports unknown and
// repeated keys. It returns the value node of every key it handled.
func (d *decoder) mapping(n *yaml.Node, field string, keys map[string]handler) map[string]*yaml.Node {
	seen := map[string]*yaml.Node{}
	if n.Kind != yaml.MappingNode {
		d.addf(n, field, "want a mapping of key: value, not %s", kindName(n))
		return seen
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		sub := k.Value
		if field != "" {
			sub = field + "." + k.Value
		}
		if first, dup := seen[k.Value]; dup {
			d.addf(k, sub, "set twice (first on line %d)", first.Line)
			continue
		}
		h, ok := keys[k.Value]
		if !ok {
			d.addf(k, sub, "unknown key (known: %s)", strings.Join(slices.Sorted(maps.Keys(keys)), ", "))
			continue
		}
		seen[k.Value] = v
		h(v, sub)
	}
	return seen
}

// scalar expands the value of a scalar node. ok is false for an explicit
// null (the key keeps its default) and for a problem, which it reports.
func (d *decoder) scalar(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.addf(n, field, "want a single value, not %s", kindName(n))
		return "", false
	}
	if n.Tag == "!!null" {
		return "", false
	}
	v, err := expand(n.Value, d.lookup, func(name string) { d.env[name] = true })
	if err != nil {
		d.addf(n, field, "%v", err)
		return "", false
	}
	return v, true
}

// text expands and checks a scalar. Messages quote the value as written,
// never expanded.
func (d *decoder) text(n *yaml.Node, field string, check func(string) error) (string, bool) {
	return d.textQuoted(n, field, check, n.Value)
}

// textQuoted is text with the value quoted as quote in messages.
func (d *decoder) textQuoted(n *yaml.Node, field string, check func(string) error, quote string) (string, bool) {
	v, ok := d.scalar(n, field)
	if !ok {
		return "", false
	}
	if check != nil {
		if err := check(v); err != nil {
			msg := err.Error()
			if v != "" && v != n.Value {
				// Checks may quote what they were given: show it as written.
				msg = strings.ReplaceAll(msg, v, quote)
			}
			d.addf(n, field, "%q: %s", quote, msg)
			return "", false
		}
	}
	return v, true
}

func (d *decoder) str(dst *string, check func(string) error) handler {
	return func(n *yaml.Node, field string) {
		if v, ok := d.text(n, field, check); ok {
			*dst = v
		}
	}
}

// uri is str for a sink or lock URI: messages quote it with its secrets
// masked (a password may be written in the file, not only in ${VAR}).
func (d *decoder) uri(dst *string, check func(string) error) handler {
	return func(n *yaml.Node, field string) {
		if v, ok := d.textQuoted(n, field, check, redact.URI(n.Value)); ok {
			*dst = v
		}
	}
}

// list decodes a single string or a list of strings.
func (d *decoder) list(dst *[]string, check func(string) error) handler {
	return func(n *yaml.Node, field string) {
		if n.Kind != yaml.SequenceNode {
			if v, ok := d.text(n, field, check); ok {
				*dst = []string{v}
			}
			return
		}
		var out []string
		for i, item := range n.Content {
			if v, ok := d.text(resolve(item), fmt.Sprintf("%s[%d]", field, i), check); ok {
				out = append(out, v)
			}
		}
		*dst = out
	}
}

// number decodes a number or duration within its declared range.
func number[T int | int64 | time.Duration](d *decoder, dst *T, r Range[T]) handler {
	return func(n *yaml.Node, field string) {
		v, ok := d.scalar(n, field)
		if !ok {
			return
		}
		x, err := r.Parse(v)
		if err != nil {
			d.addf(n, field, "%q: %v", n.Value, err)
			return
		}
		*dst = x
	}
}

// batch decodes a batch size or auto (ParseBatch).
func (d *decoder) batch(dst *int) handler {
	return func(n *yaml.Node, field string) {
		v, ok := d.scalar(n, field)
		if !ok {
			return
		}
		x, err := ParseBatch(v)
		if err != nil {
			d.addf(n, field, "%q: %v", n.Value, err)
			return
		}
		*dst = x
	}
}

func (d *decoder) boolean(dst *bool) handler {
	return func(n *yaml.Node, field string) {
		v, ok := d.scalar(n, field)
		if !ok {
			return
		}
		switch strings.ToLower(v) {
		case "true":
			*dst = true
		case "false":
			*dst = false
		default:
			d.addf(n, field, "%q: want true or false", n.Value)
		}
	}
}

// resolve follows YAML aliases (*name) to the node they stand for.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "a single value"
}

// checkSource refuses an empty source and an s3:// reference that does
// not parse.
func checkSource(s string) error {
	if s3source.IsRef(s) {
		_, err := s3source.ParseRef(s) // a bucket, or a manifest in one
		return err
	}
	return checkNonEmpty(s)
}

// checkCIDR accepts a network such as 10.0.0.0/8 or fd00::/8.
func checkCIDR(s string) error {
	if _, err := netip.ParsePrefix(s); err != nil {
		return errors.New("want a network such as 10.0.0.0/8 or fd00::/8")
	}
	return nil
}

func checkNonEmpty(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// CheckJobName applies the rule of job names: the config's name key and
// every --job flag. A name becomes part of file names (a SQLite sink's lock
// file) and lease keys, so it is a plain lowercase word.
func CheckJobName(s string) error {
	const rule = "want lowercase letters, digits, _ and -, starting with a letter or digit, at most 63 characters"
	if s == "" {
		return errors.New("empty: " + rule)
	}
	if !jobName.MatchString(s) {
		return errors.New(rule)
	}
	return nil
}

func checkTimeZone(s string) error {
	if s == "" {
		return errors.New("must not be empty (UTC is the default)")
	}
	if _, err := time.LoadLocation(s); err != nil {
		return errors.New("unknown time zone: want an IANA name such as Europe/Berlin, or UTC")
	}
	return nil
}

func checkDevice(s string) error {
	_, err := extract.ParseDevices(s)
	return err
}

func checkUpload(s string) error {
	_, err := extract.ParseUpload(s)
	return err
}

func checkDecode(s string) error {
	_, err := extract.ParseDecode(s)
	return err
}

// CheckShard accepts "" and "I/N" (connector.ParseShard).
func CheckShard(s string) error {
	_, err := connector.ParseShard(s)
	return err
}

func checkMaxDelete(s string) error {
	_, err := connector.ParseMaxDelete(s)
	return err
}

func checkIndex(s string) error {
	if s == "" {
		return nil
	}
	_, err := connector.ParseIndexStrategy(s)
	return err
}

func checkSink(s string) error {
	if _, err := sinks.Lookup(s); err != nil {
		return errors.New(sinks.Want())
	}
	return nil
}

func checkLockDSN(s string) error {
	if s == "" {
		return nil
	}
	if drv, err := sinks.Lookup(s); err != nil || !drv.LockStore {
		return errors.New("want a postgres:// URI (leases live in PostgreSQL)")
	}
	return nil
}

func checkListen(s string) error {
	if _, _, err := net.SplitHostPort(s); err != nil {
		return errors.New("want HOST:PORT, e.g. 127.0.0.1:9464 or :9464")
	}
	return nil
}

// checkReplicaID: a lease holder name, printed in logs and HTTP answers
// ("" takes the default).
func checkReplicaID(s string) error {
	if len(s) > 200 || strings.TrimSpace(s) != s || schema.Printable(s) != s {
		return errors.New("want at most 200 printable characters, no leading or trailing space")
	}
	return nil
}

func checkEnvName(s string) error {
	if !envName.MatchString(s) {
		return errors.New("want an environment variable name")
	}
	return nil
}
