package milvus

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc"

	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/sinks/milvus/milvustest"
)

// liteReplies answers the way Milvus Lite 3.2 does where it differs from
// Milvus: ShowCollections names collections without their ids (and fails
// while one is being dropped), and errors carry only Status.code, with
// the deprecated error_code left at Success.
type liteReplies struct {
	milvuspb.UnimplementedMilvusServiceServer
	mu    sync.Mutex
	shows int
}

func liteErr(reason string) *commonpb.Status { return &commonpb.Status{Code: 1, Reason: reason} }

func (f *liteReplies) Connect(context.Context, *milvuspb.ConnectRequest) (*milvuspb.ConnectResponse, error) {
	return &milvuspb.ConnectResponse{Status: &commonpb.Status{}}, nil
}

func (f *liteReplies) ShowCollections(context.Context, *milvuspb.ShowCollectionsRequest) (*milvuspb.ShowCollectionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.shows++; f.shows == 1 {
		return &milvuspb.ShowCollectionsResponse{Status: liteErr("collection 'gone_failures' does not exist")}, nil
	}
	return &milvuspb.ShowCollectionsResponse{Status: &commonpb.Status{}, CollectionNames: []string{"c_v1", "c_meta"}}, nil
}

func (f *liteReplies) HasCollection(context.Context, *milvuspb.HasCollectionRequest) (*milvuspb.BoolResponse, error) {
	return &milvuspb.BoolResponse{Status: liteErr("unexpected: disk full")}, nil
}

func (f *liteReplies) Delete(context.Context, *milvuspb.DeleteRequest) (*milvuspb.MutationResult, error) {
	return &milvuspb.MutationResult{Status: liteErr("unexpected: disk full")}, nil
}

// The sink reads Milvus Lite's replies by the documented fields: the
// collection list by name, and an error reported in Status.code alone
// is an error (the SDK would read both as success: an empty list, a
// delete that happened).
func TestLiteReplies(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	milvuspb.RegisterMilvusServiceServer(srv, &liteReplies{})
	go srv.Serve(l)
	defer srv.Stop()
	s, err := New("milvus://" + l.Addr().String() + "?collection=c")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	names, err := CollectionNames(ctx, s.c)
	if err != nil || !slices.Equal(names, []string{"c_v1", "c_meta"}) {
		t.Errorf("CollectionNames = %q, %v; want [c_v1 c_meta] (after one retry)", names, err)
	}
	if ok, err := s.c.HasCollection(ctx, "c_v1"); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("HasCollection with an error in Status.code: %v, %v; want the error", ok, err)
	}
	if err := s.c.Delete(ctx, "c_v1", "", `id in ["a"]`); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Delete with an error in Status.code: %v; want the error", err)
	}
}

// Milvus Lite serializes the writes to a collection: writers > 1 is
// refused at Open, before anything is written.
func TestLiteRefusesConcurrentWriters(t *testing.T) {
	addr := milvustest.Lite.Addr(t)
	base := testBase(t, addr)
	s, err := New("milvus://"+addr+"?collection="+base+"&writers=2", WithAutoMigrate(migrations.AutoMigrateFresh))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Open(context.Background(), model(8))
	if err == nil || !strings.Contains(err.Error(), "writers=1") {
		t.Fatalf("Open with writers=2 on Milvus Lite: %v; want a refusal naming writers=1", err)
	}
	ctx := context.Background()
	c := newTestSink(t, addr, base)
	if err := c.connect(ctx); err != nil {
		t.Fatal(err)
	}
	names, err := CollectionNames(ctx, c.c)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.HasPrefix(name, base+"_") {
			t.Errorf("the refused Open created %s", name)
		}
	}
	open(t, c, model(8)) // writers=1 (the default) is fine
}
