package milvus

import (
	"context"
	"fmt"
	"strings"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-sdk-go/v2/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// This file holds what the sink does differently from the SDK
// (milvus-sdk-go v2.4.2) so that it reads both Milvus 2.3+ and Milvus Lite
// 3.x correctly, by the documented fields of the Milvus API
// (milvus-proto) rather than the SDK's older reading of them.

// CollectionNames returns the names of the collections in c's database:
// ShowCollections' collection_names. The SDK's ListCollections walks
// collection_ids instead, which Milvus Lite leaves empty, so there it
// lists nothing (and the sink would find no item collection).
//
// Milvus Lite fails the listing with "collection ... does not exist" when
// a collection is dropped while it lists; a few more tries get past it.
func CollectionNames(ctx context.Context, c client.Client) ([]string, error) {
	gc, ok := c.(*client.GrpcClient)
	if !ok {
		return nil, fmt.Errorf("list collections: client %T has no gRPC service", c)
	}
	var err error
	for try := 0; try < 5; try++ {
		var resp *milvuspb.ShowCollectionsResponse
		resp, err = gc.Service.ShowCollections(ctx, &milvuspb.ShowCollectionsRequest{})
		if err == nil {
			err = statusErr(resp.GetStatus())
		}
		if err == nil {
			return resp.GetCollectionNames(), nil
		}
		if !notFound(err) {
			break
		}
	}
	return nil, fmt.Errorf("list collections: %w", err)
}

// statusErr is the error a reply's Status reports, by either of its codes:
// the deprecated error_code, which the SDK reads, or code (Milvus 2.3+),
// which Milvus Lite alone sets for unexpected errors.
func statusErr(st *commonpb.Status) error {
	if st == nil || (st.GetErrorCode() == commonpb.ErrorCode_Success && st.GetCode() == 0) {
		return nil
	}
	return status.Errorf(codes.Unknown, "milvus server error (code %d, error_code %s): %s", st.GetCode(), st.GetErrorCode(), st.GetReason())
}

// statusInterceptor turns a reply whose Status reports an error only in
// code (error_code left Success) into an error. The SDK checks error_code
// alone, so without it such a failed Upsert, Delete or Query of Milvus Lite
// would read as a success: data written nowhere, or an empty result.
func statusInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
		return err
	}
	var st *commonpb.Status
	switch r := reply.(type) {
	case *commonpb.Status:
		st = r
	case interface{ GetStatus() *commonpb.Status }:
		st = r.GetStatus()
	}
	if st.GetErrorCode() != commonpb.ErrorCode_Success {
		return nil // the SDK reports it
	}
	return statusErr(st)
}

// liteVersionPrefix starts the version Milvus Lite reports (GetVersion:
// "milvus_lite-3.2.2"); Milvus itself reports "v2.3.5".
const liteVersionPrefix = "milvus_lite"

// checkServer refuses, before anything is written, what the server cannot
// do: Milvus Lite serializes the writes to a collection ("concurrent
// writers are not supported safely"), so writers > 1 is refused there.
func (s *Sink) checkServer(ctx context.Context) error {
	if s.cfg.writers <= 1 {
		return nil
	}
	v, err := s.c.GetVersion(ctx)
	if err != nil {
		return fmt.Errorf("open milvus sink %s: server version: %w", s.cfg.base, err)
	}
	if strings.HasPrefix(v, liteVersionPrefix) {
		return fmt.Errorf("open milvus sink %s: %s does not support concurrent writes to one collection, and writers=%d would send them: use writers=1 (the default) with Milvus Lite",
			s.cfg.base, v, s.cfg.writers)
	}
	return nil
}
