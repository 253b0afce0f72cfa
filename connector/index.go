package connector

import (
	"context"
	"fmt"
	"strings"
)

// IndexStrategy is how searches over one model's vectors are served.
type IndexStrategy string

const (
	// IndexExact keeps no vector index: searches scan the model's rows and
	// are exact.
	IndexExact IndexStrategy = "exact"
	// IndexBinary is an approximate index over a binary code of each vector
	// (PostgreSQL: HNSW on binary_quantize(embedding)), whose candidates are
	// re-ranked by exact cosine distance.
	IndexBinary IndexStrategy = "binary"
)

// ParseIndexStrategy parses "exact" or "binary" (case and spaces ignored).
func ParseIndexStrategy(s string) (IndexStrategy, error) {
	switch st := IndexStrategy(strings.ToLower(strings.TrimSpace(s))); st {
	case IndexExact, IndexBinary:
		return st, nil
	}
	return "", fmt.Errorf("index strategy %q: want exact or binary", s)
}

// IndexOptions tune an index build. Zero values take the sink's defaults.
type IndexOptions struct {
	// M and EfConstruction are HNSW's build parameters.
	M, EfConstruction int
	// MaintenanceWorkMem is the memory of the build ("1GB").
	MaintenanceWorkMem string
	// Concurrently builds without blocking writers, more slowly; a failed
	// build leaves an invalid index (IndexStatus shows it; CreateIndex
	// replaces it).
	Concurrently bool
}

// IndexInfo describes one vector index imgvec made.
type IndexInfo struct {
	Strategy   IndexStrategy `json:"strategy"`
	ModelID    string        `json:"model_id"`
	Dim        int           `json:"dim"`
	Name       string        `json:"name"`  // as the sink names it
	Valid      bool          `json:"valid"` // false: a concurrent build failed or is running
	SizeBytes  int64         `json:"size_bytes"`
	Definition string        `json:"definition"`
}

// IndexManager is the capability of a sink whose searches can go through
// a vector index that imgvec manages (`imgvec index`, `--index`). The
// command asks for it with a type assertion; a sink without it searches
// exactly. Every method blocks until the server has answered and honours
// ctx; the sink must be open (OpenRead is enough).
type IndexManager interface {
	// CreateIndex makes the index strategy wants for the rows of modelID
	// (dim 0: the dimension of its stored rows); IndexExact drops it. An
	// existing valid index is kept.
	CreateIndex(ctx context.Context, strategy IndexStrategy, modelID string, dim int, o IndexOptions) (IndexInfo, error)
	// DropIndex drops the index of modelID, or of every model when it is
	// "", and returns what it dropped.
	DropIndex(ctx context.Context, modelID string) ([]IndexInfo, error)
	// IndexStatus lists the indexes imgvec made.
	IndexStatus(ctx context.Context) ([]IndexInfo, error)
	// IndexDeferred reports whether Open deferred the model's index to
	// BuildDeferredIndex.
	IndexDeferred() bool
	// BuildDeferredIndex builds, in one pass, an index whose creation the
	// sink deferred while a run loaded an empty model (loading first and
	// indexing after is much faster); built is false when nothing was
	// deferred. The command calls it after every run, stopped ones too.
	BuildDeferredIndex(ctx context.Context, o IndexOptions) (info IndexInfo, built bool, err error)
}

// IndexedSearcher is implemented by sinks whose Search can go through a
// vector index, so that one query costs far less than a scan of the
// model's rows (PostgreSQL with a valid binary index, Milvus always).
// SearchIndexed reports whether Search for modelID does so now; a sink
// without the capability searches by scanning. `imgvec dupes` asks it to
// choose between a k-NN query per image and an exact comparison of every
// pair. The sink must be open (OpenRead is enough).
type IndexedSearcher interface {
	SearchIndexed(ctx context.Context, modelID string) (bool, error)
}
