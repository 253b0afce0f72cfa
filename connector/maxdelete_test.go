package connector_test

import (
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

func TestParseMaxDelete(t *testing.T) {
	tests := []struct {
		in      string
		str     string
		stored  int64
		allowed int64
		bad     bool
	}{
		{"", "unlimited", 10, 1<<63 - 1, false},
		{"unlimited", "unlimited", 10, 1<<63 - 1, false},
		{"100", "100", 10, 100, false},
		{"0", "0", 10, 0, false},
		{"10%", "10%", 1000, 100, false},
		{"10%", "10%", 19, 1, false},
		{" 2.5% ", "2.5%", 1000, 25, false},
		{"100%", "100%", 7, 7, false},
		{"-1", "", 0, 0, true},
		{"101%", "", 0, 0, true},
		{"ten", "", 0, 0, true},
		{"%", "", 0, 0, true},
	}
	for _, tc := range tests {
		m, err := connector.ParseMaxDelete(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if tc.bad {
			continue
		}
		if m.String() != tc.str || m.Allowed(tc.stored) != tc.allowed {
			t.Errorf("%q: %s allows %d of %d, want %s %d", tc.in, m, m.Allowed(tc.stored), tc.stored, tc.str, tc.allowed)
		}
	}
}

func TestClassify(t *testing.T) {
	const cur, old = "fc7-cur", "fc7-old"
	e := connector.Entry{Key: "a.jpg", Size: 10, MTime: t0}
	fp := schema.Fingerprint{Size: 10, MTime: t0, SHA256: "abc"}
	later := schema.Fingerprint{Size: 10, MTime: t0.Add(time.Nanosecond)}
	tests := []struct {
		name  string
		st    connector.StoredItem
		found bool
		retry bool
		want  connector.Category
	}{
		{"not stored", connector.StoredItem{}, false, false, connector.New},
		{"same", connector.StoredItem{Fingerprint: fp, ModelID: cur}, true, false, connector.Unchanged},
		{"same, other etag", connector.StoredItem{Fingerprint: schema.Fingerprint{Size: 10, MTime: t0, ETag: "x"}, ModelID: cur}, true, false, connector.Changed},
		{"mtime differs by 1ns", connector.StoredItem{Fingerprint: later, ModelID: cur}, true, false, connector.Changed},
		{"size differs", connector.StoredItem{Fingerprint: schema.Fingerprint{Size: 11, MTime: t0}, ModelID: cur}, true, false, connector.Changed},
		{"other model", connector.StoredItem{Fingerprint: fp, ModelID: old}, true, false, connector.Stale},
		{"ledger same", connector.StoredItem{Fingerprint: fp, ModelID: cur, Failed: true}, true, false, connector.FailedKnown},
		{"ledger same, no model", connector.StoredItem{Fingerprint: fp, Failed: true}, true, false, connector.FailedKnown},
		{"ledger same, retry", connector.StoredItem{Fingerprint: fp, ModelID: cur, Failed: true}, true, true, connector.Retry},
		{"ledger changed", connector.StoredItem{Fingerprint: later, ModelID: cur, Failed: true}, true, false, connector.Retry},
		{"ledger other model", connector.StoredItem{Fingerprint: fp, ModelID: old, Failed: true}, true, false, connector.Retry},
	}
	for _, tc := range tests {
		if got := connector.Classify(e, tc.st, tc.found, cur, tc.retry); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
