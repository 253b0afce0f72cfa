package connector

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/imgvec/imgvec/schema"
)

func TestBatchNormalize(t *testing.T) {
	model := schema.ModelIdentity{ModelSHA256: strings.Repeat("c", 64), Layer: "fc7", Preprocess: "p", Dim: 2}
	id := model.ID()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := func(recID string, v ...float32) schema.Record {
		return schema.Record{ID: recID, Key: recID + ".jpg", ModelID: id, Vector: v}
	}
	b := Batch{
		Upserts:  []schema.Record{rec("a", 1, 0), rec("b", 0, 1), rec("a", 0.5, 0.5)},
		Failures: []schema.Failure{{ID: "x", Reason: "first"}, {ID: "x", Reason: "second"}},
	}
	got, err := b.Normalize(model, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Upserts) != 2 || got.Upserts[0].ID != "b" || got.Upserts[1].Vector[0] != 0.5 {
		t.Fatalf("upserts not deduplicated to the last occurrence: %+v", got.Upserts)
	}
	if got.Upserts[0].Dim != 2 || got.Upserts[0].Layer != "fc7" {
		t.Errorf("defaults not filled: %+v", got.Upserts[0])
	}
	if f := got.Failures; len(f) != 1 || f[0].Reason != "second" || f[0].Attempts != 1 || !f[0].LastSeen.Equal(now) || !f[0].FirstSeen.Equal(now) || f[0].ModelID != id {
		t.Errorf("failures %+v", f)
	}
	reason, err := Batch{Failures: []schema.Failure{{ID: "r", Reason: "decode a\xff.jpg"}}}.Normalize(model, now)
	if err != nil || reason.Failures[0].Reason != `decode a\xff.jpg` {
		t.Errorf("a reason that is not UTF-8: %+v, %v; want it escaped", reason.Failures, err)
	}
	if len(b.Upserts) != 3 {
		t.Error("input batch modified")
	}

	for name, bad := range map[string]Batch{
		"empty id":       {Upserts: []schema.Record{rec("", 1, 1)}},
		"other model":    {Upserts: []schema.Record{{ID: "m", ModelID: "other", Vector: []float32{1, 1}}}},
		"wrong length":   {Upserts: []schema.Record{rec("l", 1, 2, 3)}},
		"NaN":            {Upserts: []schema.Record{rec("n", float32(math.NaN()), 1)}},
		"Inf":            {Upserts: []schema.Record{rec("i", float32(math.Inf(1)), 1)}},
		"mtime range":    {Upserts: []schema.Record{{ID: "t", ModelID: id, Vector: []float32{1, 1}, Fingerprint: schema.Fingerprint{MTime: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}}}},
		"ledger no id":   {Failures: []schema.Failure{{Key: "k"}}},
		"meta no id":     {Metadata: []MetaUpdate{{}}},
		"run without id": {Run: &schema.Run{}},
		"key not UTF-8":  {Upserts: []schema.Record{{ID: "u", Key: "a\xff.jpg", ModelID: id, Vector: []float32{1, 1}}}},
		"ledger key":     {Failures: []schema.Failure{{ID: "u", Key: "a\xff.jpg"}}},
		"source":         {Failures: []schema.Failure{{ID: "u", Source: "file:///\xff", Key: "a.jpg"}}},
	} {
		if _, err := bad.Normalize(model, now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
