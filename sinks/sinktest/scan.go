package sinktest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// scanKeys are ordered by bytes, an order a locale's collation (which
// ignores punctuation and case) does not give.
var scanKeys = []string{"B.jpg", "a b.jpg", "a-b.jpg", "a.jpg", "a/b.jpg", "z.jpg", "é.jpg"}

func testScanVectors(t *testing.T, e *env) {
	vs, ok := e.s.(connector.VectorScanner)
	if !ok {
		t.Fatalf("%T does not implement connector.VectorScanner", e.s)
	}
	a, b := testModel("a", 8), testModel("b", 16)
	e.open(b)
	e.write(connector.Batch{Upserts: []schema.Record{rec(b, src, "model-b.jpg", "b model", vecOf(16, 1))}})
	e.reopen(a)

	// Two sources, the second sorting after the first; more rows than one
	// page of any sink's paging; written in shuffled order so that the
	// storage order cannot pass for key order.
	const other = "file:///sinktest/other" // < src
	var want []schema.Record
	for i, k := range scanKeys {
		r := rec(a, src, k, k, vecOf(8, i))
		want = append(want, r)
	}
	want[0].Vector[2] = float32(math.Copysign(0, -1))
	want[0].Vector[5] = math.SmallestNonzeroFloat32
	want[1].Metadata = map[string]string{"camera": "X100", "quote": `"q" & 'a'`, "empty": ""}
	want[2].Metadata = nil
	for i := range 1100 {
		want = append(want, rec(a, other, fmt.Sprintf("bulk/%04d.jpg", i), fmt.Sprint("bulk ", i), vecOf(8, 100+i)))
	}
	shuffled := slices.Clone(want)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for lo := 0; lo < len(shuffled); lo += 300 {
		e.write(connector.Batch{Upserts: shuffled[lo:min(lo+300, len(shuffled))]})
	}
	// Ledger entries are not rows: one of an id without a row, one of an
	// id with a row.
	e.write(connector.Batch{Failures: []schema.Failure{
		failure(a, src, "failed.jpg", schema.FailDecode, baseTime),
		failure(a, src, "a.jpg", schema.FailDecode, baseTime),
	}})
	slices.SortFunc(want, func(x, y schema.Record) int {
		if c := strings.Compare(x.Source, y.Source); c != 0 {
			return c
		}
		return strings.Compare(x.Key, y.Key)
	})

	var got []schema.Record
	if err := vs.ScanVectors(e.ctx, a.ID(), func(r schema.Record) error {
		got = append(got, r)
		return nil
	}); err != nil {
		t.Fatalf("ScanVectors(%s): %v", a.ID(), err)
	}
	if len(got) != len(want) {
		t.Fatalf("ScanVectors yielded %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Source != want[i].Source || got[i].Key != want[i].Key {
			t.Fatalf("row %d is %s %q, want %s %q (order by source, then key, bytewise)", i, got[i].Source, got[i].Key, want[i].Source, want[i].Key)
		}
		e.checkRecord(got[i], want[i], false)
	}

	// Another model's rows, and only those.
	var gotB []string
	if err := vs.ScanVectors(e.ctx, b.ID(), func(r schema.Record) error {
		gotB = append(gotB, r.Key)
		if r.ModelID != b.ID() || len(r.Vector) != 16 {
			t.Errorf("ScanVectors(%s) yielded %s of model %s, dimension %d", b.ID(), r.Key, r.ModelID, len(r.Vector))
		}
		return nil
	}); err != nil || len(gotB) != 1 {
		t.Errorf("ScanVectors(%s) = %v, %v; want the one row of that model", b.ID(), gotB, err)
	}
	calls := 0
	if err := vs.ScanVectors(e.ctx, testModel("unknown", 8).ID(), func(schema.Record) error { calls++; return nil }); err != nil || calls != 0 {
		t.Errorf("ScanVectors of a model id without rows: %d calls, %v", calls, err)
	}

	// An error from fn stops the scan and is returned.
	stop := errors.New("stop here")
	calls = 0
	err := vs.ScanVectors(e.ctx, a.ID(), func(schema.Record) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("ScanVectors with failing fn: err %v after %d calls, want the fn's error after 1", err, calls)
	}

	// Cancellation stops the scan with an error wrapping ctx.Err().
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	calls = 0
	err = vs.ScanVectors(ctx, a.ID(), func(schema.Record) error {
		calls++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls == len(want) {
		t.Errorf("ScanVectors cancelled at the first row: err %v after %d of %d rows, want context.Canceled before the end", err, calls, len(want))
	}
}
