package milvus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/milvus-io/milvus-sdk-go/v2/client"
	"github.com/milvus-io/milvus-sdk-go/v2/entity"
)

// ItemsSchemaVersion is the layout of item collections this build writes,
// recorded in each one's description. A layout Milvus cannot change in
// place gets a new number and a blue/green copy (see doc.go).
const ItemsSchemaVersion = 1

// Field names. Times are int64 nanoseconds since 1970 (noTime for the zero
// time), so fingerprints round-trip exactly.
const (
	fID, fVector, fSource, fKey, fSize, fMTime, fETag, fSHA256   = "id", "vector", "source", "key", "size", "mtime_ns", "etag", "sha256"
	fWidth, fHeight, fFormat, fModelID, fLayer, fDim, fExtracted = "width", "height", "format", "model_id", "layer", "dim", "extracted_at_ns"
	fMetadata                                                    = "metadata" // a dynamic field: the record's metadata object
	fStage, fClass, fReason, fAttempts, fFirstSeen, fLastSeen    = "stage", "class", "reason", "attempts", "first_seen_ns", "last_seen_ns"
	fJob, fKind, fStarted, fEnded, fOutcome, fError              = "job", "kind", "started_ns", "ended_ns", "outcome", "error"
	fListed, fWritten, fExtractedN, fReused, fUnchanged          = "listed", "written", "extracted", "reused", "unchanged"
	fFailed, fDeleted, fValue                                    = "failed", "deleted", "value"
	fShard, fSkipped                                             = "shard", "skipped"
	fRunnerHost, fRunnerBoot, fRunnerPIDNS                       = "runner_host", "runner_boot_id", "runner_pid_ns"
	fRunnerPID, fRunnerStart                                     = "runner_pid", "runner_start"
	dynamicField                                                 = "$meta"
)

// Companion collections (ledger, runs, meta) hold no vectors, but every
// Milvus collection needs a vector field: a 2-d placeholder.
const placeholderDim = 2

var placeholder = []float32{1, 0}

// description is what an item collection holds, as JSON in its meta row
// items/NAME_vN and its description, so that the sink can find a model's
// collection by listing.
type description struct {
	Kind    string `json:"imgvec"` // "items"
	Schema  int    `json:"schema"`
	ModelID string `json:"model_id"`
	Layer   string `json:"layer"`
	Dim     int    `json:"dim"`
}

func varchar(name string, maxLen int64) *entity.Field {
	return entity.NewField().WithName(name).WithDataType(entity.FieldTypeVarChar).WithMaxLength(maxLen)
}

func int64f(name string) *entity.Field {
	return entity.NewField().WithName(name).WithDataType(entity.FieldTypeInt64)
}

func pk() *entity.Field { return varchar(fID, 256).WithIsPrimaryKey(true).WithIsAutoID(false) }

func vectorf(dim int) *entity.Field {
	return entity.NewField().WithName(fVector).WithDataType(entity.FieldTypeFloatVector).WithDim(int64(dim))
}

// Long enough for any path or reason; Milvus allocates by content.
const maxText = 65535

// itemsSchema is an item collection's schema. Its description names what
// it holds, like the collection's meta row (see discover).
func itemsSchema(name string, d description) *entity.Schema {
	desc, _ := json.Marshal(d)
	return entity.NewSchema().WithName(name).WithDescription(string(desc)).WithDynamicFieldEnabled(true).
		WithField(pk()).WithField(vectorf(d.Dim)).
		WithField(varchar(fSource, maxText)).WithField(varchar(fKey, maxText)).
		WithField(int64f(fSize)).WithField(int64f(fMTime)).WithField(varchar(fETag, 1024)).WithField(varchar(fSHA256, 128)).
		WithField(int64f(fWidth)).WithField(int64f(fHeight)).WithField(varchar(fFormat, 64)).
		WithField(varchar(fModelID, 256)).WithField(varchar(fLayer, 256)).WithField(int64f(fDim)).
		WithField(int64f(fExtracted))
}

func failuresSchema(name string) *entity.Schema {
	return entity.NewSchema().WithName(name).WithDescription(`{"imgvec":"failures"}`).
		WithField(pk()).WithField(vectorf(placeholderDim)).
		WithField(varchar(fSource, maxText)).WithField(varchar(fKey, maxText)).
		WithField(int64f(fSize)).WithField(int64f(fMTime)).WithField(varchar(fETag, 1024)).WithField(varchar(fSHA256, 128)).
		WithField(varchar(fModelID, 256)).WithField(varchar(fStage, 64)).WithField(varchar(fClass, 64)).
		WithField(varchar(fReason, maxText)).WithField(int64f(fAttempts)).
		WithField(int64f(fFirstSeen)).WithField(int64f(fLastSeen))
}

// runsSchema is the runs collection's layout: version 2 (migration
// 0002_runs_shard) adds the shard, the skipped count and the runner
// (schema.Runner) to version 1's. Milvus 2.3 cannot add fields to a
// collection, so the migration rebuilds it (rebuildRuns).
func runsSchema(name string) *entity.Schema { return runsSchemaV(name, 2) }

func runsSchemaV(name string, version int) *entity.Schema {
	s := entity.NewSchema().WithName(name).WithDescription(`{"imgvec":"runs"}`).
		WithField(pk()).WithField(vectorf(placeholderDim)).
		WithField(varchar(fJob, 1024)).WithField(varchar(fKind, 64)).WithField(varchar(fSource, maxText)).
		WithField(varchar(fModelID, 256)).WithField(int64f(fStarted)).WithField(int64f(fEnded)).
		WithField(varchar(fOutcome, 64)).WithField(varchar(fError, maxText))
	for _, f := range []string{fListed, fWritten, fExtractedN, fReused, fUnchanged, fFailed, fDeleted} {
		s.WithField(int64f(f))
	}
	if version >= 2 {
		s.WithField(varchar(fShard, 64)).WithField(int64f(fSkipped)).
			WithField(varchar(fRunnerHost, 1024)).WithField(varchar(fRunnerBoot, 128)).WithField(varchar(fRunnerPIDNS, 256)).
			WithField(int64f(fRunnerPID)).WithField(int64f(fRunnerStart))
	}
	return s
}

// runFieldsOf is the output fields of a runs collection of that layout.
func runFieldsOf(s *entity.Schema) []string {
	var fs []string
	for _, f := range s.Fields {
		if f.Name != fVector {
			fs = append(fs, f.Name)
		}
	}
	return fs
}

func metaSchema(name string) *entity.Schema {
	return entity.NewSchema().WithName(name).WithDescription(`{"imgvec":"meta"}`).
		WithField(pk()).WithField(vectorf(placeholderDim)).WithField(varchar(fValue, maxText))
}

// vectorIndex is the index of an item collection's vector field.
func vectorIndex(kind IndexKind) (entity.Index, error) {
	switch kind {
	case IndexIVFFlat:
		return entity.NewIndexIvfFlat(Metric, 128)
	case IndexAutoIndex:
		return entity.NewIndexAUTOINDEX(Metric)
	}
	return entity.NewIndexHNSW(Metric, 16, 200)
}

// searchParam matches vectorIndex; k is the number of hits wanted.
func searchParam(kind IndexKind, k int) (entity.SearchParam, error) {
	switch kind {
	case IndexIVFFlat:
		return entity.NewIndexIvfFlatSearchParam(32)
	case IndexAutoIndex:
		return entity.NewIndexAUTOINDEXSearchParam(1)
	}
	return entity.NewIndexHNSWSearchParam(max(k, 64))
}

// create makes a collection (Strong consistency, one shard: a single
// writer gains nothing from more) and indexes its vector field. A
// collection that already exists is left as it is. The caller loads it
// (loadAll).
func create(ctx context.Context, c client.Client, s *entity.Schema, idx entity.Index) error {
	ok, err := c.HasCollection(ctx, s.CollectionName)
	if err != nil {
		return fmt.Errorf("check collection %s: %w", s.CollectionName, err)
	}
	if !ok {
		if err := c.CreateCollection(ctx, s, 1, client.WithConsistencyLevel(entity.ClStrong)); err != nil {
			return fmt.Errorf("create collection %s: %w", s.CollectionName, err)
		}
	}
	idxs, err := c.DescribeIndex(ctx, s.CollectionName, fVector)
	if err != nil || len(idxs) == 0 {
		if err := c.CreateIndex(ctx, s.CollectionName, fVector, idx, false); err != nil {
			return fmt.Errorf("index collection %s: %w", s.CollectionName, err)
		}
	}
	return nil
}

// loadAll loads the collections that are not loaded yet, all at once
// (each load takes the server a second or two; they overlap), and waits
// until every one is.
func loadAll(ctx context.Context, c client.Client, names ...string) error {
	pending := map[string]bool{}
	for _, name := range names {
		st, err := c.GetLoadState(ctx, name, nil)
		if err != nil {
			return fmt.Errorf("load state of %s: %w", name, err)
		}
		if st == entity.LoadStateLoaded {
			continue
		}
		if st != entity.LoadStateLoading {
			if err := c.LoadCollection(ctx, name, true); err != nil {
				return fmt.Errorf("load collection %s: %w", name, err)
			}
		}
		pending[name] = true
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for len(pending) > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("load collections: %w", ctx.Err())
		case <-tick.C:
		}
		for name := range pending {
			st, err := c.GetLoadState(ctx, name, nil)
			if err != nil {
				return fmt.Errorf("load state of %s: %w", name, err)
			}
			if st == entity.LoadStateLoaded {
				delete(pending, name)
			}
		}
	}
	return nil
}

func placeholderIndex() entity.Index {
	idx, _ := entity.NewIndexFlat(entity.L2)
	return idx
}

// ErrIncompatible is wrapped by Open's refusals of a collection whose
// layout imgvec cannot use (auto_id, wrong dimension or metric, missing
// fields).
var ErrIncompatible = errors.New("incompatible Milvus collection")

// verify checks an existing collection against the schema imgvec would
// create: a VarChar primary key named id without auto_id, the vector field
// with dim dimensions, every scalar field with its type, and (for item
// collections, want != "") the vector index's metric.
func verify(ctx context.Context, c client.Client, coll *entity.Collection, want *entity.Schema, metric entity.MetricType) error {
	name := coll.Name
	hint := fmt.Sprintf("imgvec creates its own collections: drop %s or choose another ?collection= name", name)
	have := map[string]*entity.Field{}
	for _, f := range coll.Schema.Fields {
		have[f.Name] = f
	}
	autoID := coll.Schema.AutoID
	for _, f := range coll.Schema.Fields {
		autoID = autoID || f.AutoID
	}
	if autoID {
		return fmt.Errorf("%w: collection %s has auto_id; imgvec's primary key is the item id (%s)", ErrIncompatible, name, hint)
	}
	for _, w := range want.Fields {
		h, ok := have[w.Name]
		switch {
		case !ok:
			return fmt.Errorf("%w: collection %s has no field %s (%s)", ErrIncompatible, name, w.Name, hint)
		case h.DataType != w.DataType:
			return fmt.Errorf("%w: collection %s field %s is %s, want %s (%s)", ErrIncompatible, name, w.Name, h.DataType.Name(), w.DataType.Name(), hint)
		case w.PrimaryKey && (!h.PrimaryKey || h.AutoID):
			return fmt.Errorf("%w: collection %s: field %s must be the primary key without auto_id (%s)", ErrIncompatible, name, w.Name, hint)
		case w.DataType == entity.FieldTypeFloatVector && h.TypeParams[entity.TypeParamDim] != w.TypeParams[entity.TypeParamDim]:
			return fmt.Errorf("%w: collection %s stores vectors of dimension %s, the model gives %s; run sync with the model it was made for, or let imgvec create a new collection (drop %s)",
				ErrIncompatible, name, h.TypeParams[entity.TypeParamDim], w.TypeParams[entity.TypeParamDim], name)
		}
	}
	if metric == "" {
		return nil
	}
	idxs, err := c.DescribeIndex(ctx, name, fVector)
	if err != nil {
		return fmt.Errorf("describe index of %s: %w", name, err)
	}
	for _, idx := range idxs {
		if m := idx.Params()["metric_type"]; !strings.EqualFold(m, string(metric)) {
			return fmt.Errorf("%w: collection %s is indexed with metric %s, imgvec measures %s distance (%s)", ErrIncompatible, name, m, metric, hint)
		}
	}
	return nil
}

// dimOf reads the vector dimension of a described collection.
func dimOf(coll *entity.Collection) int {
	for _, f := range coll.Schema.Fields {
		if f.Name == fVector {
			d, _ := strconv.Atoi(f.TypeParams[entity.TypeParamDim])
			return d
		}
	}
	return 0
}
