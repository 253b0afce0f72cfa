package sinks

import (
	"errors"
	"strings"
	"testing"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/lease"
	"github.com/imgvec/imgvec/migrations"
)

func TestNewRefusesWhatItCannotUse(t *testing.T) {
	cases := []struct {
		uri   string
		index connector.IndexStrategy
		want  string
	}{
		{"ftp://u:secret@host/x", "", "want sqlite://PATH"},
		{"no-scheme", "", "want sqlite://PATH"},
		{"sqlite:///tmp/x.db", connector.IndexBinary, "SQLite sinks keep no vector index"},
		{"milvus://127.0.0.1:19530?collection=c", connector.IndexBinary, "only PostgreSQL sinks do"},
		{"postgres://u@h/db", "fast", "index strategy"},
		{"postgres://u@h/db?table=bad-name", "", "table"},
		{"milvus://127.0.0.1:19530?collection=", "", "collection"},
	}
	for _, c := range cases {
		_, err := New(c.uri, Options{Index: c.index})
		var ue *URIError
		if !errors.As(err, &ue) {
			t.Errorf("New(%q, %q) = %v; want a *URIError", c.uri, c.index, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%q, %q) = %v; want it to say %q", c.uri, c.index, err, c.want)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("New(%q) error shows the password: %v", c.uri, err)
		}
	}
}

// The capabilities each sink declares: commands rely on them through
// type assertions, so losing one must fail here, not in a command.
func TestCapabilities(t *testing.T) {
	open := func(uri string) Sink {
		t.Helper()
		s, err := New(uri, Options{AutoMigrate: migrations.AutoMigrateNever})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	type caps struct{ index, leases, fenced, migrator, prober, lazy, abandoner bool }
	of := func(s Sink) caps {
		var c caps
		_, c.index = s.(connector.IndexManager)
		_, c.leases = s.(LeaseKeeper)
		_, c.fenced = s.(lease.Fenceable)
		_, c.migrator = s.(Migrator)
		_, c.prober = s.(Prober)
		_, c.lazy = s.(Lazy)
		_, c.abandoner = s.(connector.RunAbandoner)
		return c
	}
	want := map[string]caps{
		"sqlite://" + t.TempDir() + "/x.db":        {leases: true, migrator: true, prober: true, lazy: true, abandoner: true},
		"postgres://u@127.0.0.1:1/db":              {index: true, leases: true, fenced: true, migrator: true, abandoner: true},
		"milvus://127.0.0.1:1?collection=imgvec_c": {migrator: true, abandoner: true},
	}
	for uri, w := range want {
		d, err := Lookup(uri)
		if err != nil {
			t.Fatal(err)
		}
		got := of(open(uri))
		if got != w {
			t.Errorf("%s: capabilities %+v, want %+v", d.Name, got, w)
		}
		if d.Indexes != got.index {
			t.Errorf("%s: Driver.Indexes %v but IndexManager %v", d.Name, d.Indexes, got.index)
		}
		if d.LockStore && !got.leases {
			t.Errorf("%s: a LockStore that keeps no leases", d.Name)
		}
	}
}

func TestRedactAndWant(t *testing.T) {
	if got := Redact("postgres://u:hunter2@h/db?sslpassword=topsecret"); strings.Contains(got, "hunter2") || strings.Contains(got, "topsecret") {
		t.Errorf("Redact kept a secret: %s", got)
	}
	for _, form := range []string{"sqlite://", "postgres://", "milvus://"} {
		if !strings.Contains(Want(), form) {
			t.Errorf("Want() = %q lacks %s", Want(), form)
		}
	}
}
