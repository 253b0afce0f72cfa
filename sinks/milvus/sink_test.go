package milvus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-sdk-go/v2/client"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/sinks/milvus/milvustest"
	"github.com/imgvec/imgvec/sinks/sinktest"
)

// testBase is a fresh collection base name; its collections are dropped
// when the test ends.
func testBase(t *testing.T, addr string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	base := "t_" + hex.EncodeToString(b)
	t.Cleanup(func() { dropAll(t, addr, base) })
	return base
}

func dropAll(t *testing.T, addr, base string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.NewClient(ctx, client.Config{Address: addr})
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer c.Close()
	_ = c.DropAlias(ctx, base)
	names, err := CollectionNames(ctx, c)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	for _, name := range names {
		if strings.HasPrefix(name, base+"_") {
			if err := c.DropCollection(ctx, name); err != nil {
				t.Logf("cleanup: drop %s: %v", name, err)
			}
		}
	}
}

func newTestSink(t *testing.T, addr, base string, opts ...Option) *Sink {
	t.Helper()
	s, err := New("milvus://"+addr+"?collection="+base, append([]Option{WithAutoMigrate(migrations.AutoMigrateFresh)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	milvustest.Each(t, func(t *testing.T, addr string) {
		opts := []sinktest.Option{sinktest.WithForgeDim(forgeDim)}
		// Milvus Lite 3.2.2 writes every alias change through one fixed
		// temporary file (aliases.json.tmp): two alias changes at the same
		// moment, even on different collections, fail one with "No such
		// file or directory". Its subtests run one at a time.
		if addr != os.Getenv(milvustest.Lite.Env) {
			opts = append(opts, sinktest.WithParallel())
		}
		sinktest.Run(t, func(t *testing.T) connector.Sink {
			return newTestSink(t, addr, testBase(t, addr))
		}, opts...)
	})
}

// forgeDim replaces model's item collection by one of dimension dim under
// the same name and description: the state a hand-made collection gives.
func forgeDim(t *testing.T, cs connector.Sink, model schema.ModelIdentity, dim int) {
	s := cs.(*Sink)
	ctx := context.Background()
	if err := s.connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.discover(ctx); err != nil {
		t.Fatal(err)
	}
	ic := s.items[model.ID()]
	if err := s.c.DropCollection(ctx, ic.name); err != nil {
		t.Fatal(err)
	}
	d := ic.description
	d.Dim = dim
	idx, _ := vectorIndex(IndexHNSW)
	if err := create(ctx, s.c, itemsSchema(ic.name, d), idx); err != nil {
		t.Fatal(err)
	}
}
