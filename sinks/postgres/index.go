package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// IndexStrategy is how searches over one model's vectors are served.
type IndexStrategy string

const (
	// IndexExact keeps no vector index: searches scan the model's rows and
	// are exact.
	IndexExact IndexStrategy = "exact"
	// IndexBinary is an HNSW index on binary_quantize(embedding)::bit(DIM)
	// with bit_hamming_ops, partial on the model id; a search takes the
	// k×N nearest rows by Hamming distance through it and re-ranks them by
	// exact cosine distance.
	IndexBinary IndexStrategy = "binary"
)

// ParseIndexStrategy parses "exact" or "binary".
func ParseIndexStrategy(s string) (IndexStrategy, error) {
	switch st := IndexStrategy(strings.ToLower(strings.TrimSpace(s))); st {
	case IndexExact, IndexBinary:
		return st, nil
	}
	return "", fmt.Errorf("index strategy %q: want exact or binary", s)
}

// DefaultCandidates is the default candidate multiplier N of the binary
// strategy: the index supplies k×N rows, re-ranked exactly.
const DefaultCandidates = 40

// maxEfSearch is pgvector's upper bound of hnsw.ef_search.
const maxEfSearch = 1000

// WithIndexStrategy sets the index strategy the sink maintains for the
// model it is opened with. Defaults to IndexExact (the sink creates no
// index, and uses one that `imgvec index create` made).
//
// With IndexBinary, Open looks for the model's binary index: when it exists
// it stays live (incremental syncs update it row by row); when it does not
// (a backfill into an empty table, a first sync), creating it is deferred:
// the load runs without it and BuildDeferredIndex, called by the command
// once the run is over, builds it in one pass — more than ten times faster
// than inserting into a live HNSW graph. Searches meanwhile are exact.
func WithIndexStrategy(st IndexStrategy) Option { return func(s *Sink) { s.strategy = st } }

// WithCandidates sets the candidate multiplier N of indexed searches.
// Defaults to DefaultCandidates.
func WithCandidates(n int) Option { return func(s *Sink) { s.candidates = max(n, 1) } }

// IndexOptions tune CreateIndex.
type IndexOptions struct {
	// M and EfConstruction are HNSW's build parameters. Default to
	// pgvector's (16 and 64).
	M, EfConstruction int
	// MaintenanceWorkMem is the memory of the build ("1GB"). Defaults to
	// 1GB: the build is several times slower when the graph does not fit
	// (100k 4096-d rows need about 200 MB).
	MaintenanceWorkMem string
	// Concurrently builds with CREATE INDEX CONCURRENTLY: writers are not
	// blocked, the build is slower, and a failed build leaves an invalid
	// index (IndexStatus shows it; CreateIndex replaces it).
	Concurrently bool
}

// IndexInfo describes one index imgvec made.
type IndexInfo struct {
	Strategy   IndexStrategy `json:"strategy"`
	ModelID    string        `json:"model_id"`
	Dim        int           `json:"dim"`
	Name       string        `json:"name"`  // unqualified, in the sink's schema
	Valid      bool          `json:"valid"` // false: a CONCURRENTLY build failed or is running
	SizeBytes  int64         `json:"size_bytes"`
	Definition string        `json:"definition"`
}

// indexComment is stored as the index's COMMENT so that IndexStatus can
// tell which model and dimension an index serves.
type indexComment struct {
	Imgvec   string `json:"imgvec"`
	Strategy string `json:"strategy"`
	ModelID  string `json:"model_id"`
	Dim      int    `json:"dim"`
}

// indexName is the binary index of modelID: TABLE_bq_ + the first 12 hex
// digits of sha256(model id). The SQL functions of migration 0002 derive
// the same name. It fits in 63 characters (migrations.MaxTableLen + 16).
func (s *Sink) indexName(modelID string) string {
	h := sha256.Sum256([]byte(modelID))
	return s.names.Table + "_bq_" + hex.EncodeToString(h[:])[:12]
}

// CreateIndex makes the index strategy wants for the rows of modelID, dim
// dimensions (0: the dimension of its stored rows). IndexExact drops the
// model's index. An existing valid index is kept as it is; an invalid one
// (a failed CONCURRENTLY build) is replaced. Writes wait for a build that
// is not Concurrently. `imgvec index create` calls it.
func (s *Sink) CreateIndex(ctx context.Context, strategy IndexStrategy, modelID string, dim int, o IndexOptions) (IndexInfo, error) {
	pool, _, err := s.state(false)
	if err != nil {
		return IndexInfo{}, err
	}
	if _, err := ParseIndexStrategy(string(strategy)); err != nil {
		return IndexInfo{}, fmt.Errorf("postgres sink %s: create index: %w", s.redacted, err)
	}
	if modelID == "" {
		return IndexInfo{}, fmt.Errorf("postgres sink %s: create index: no model id", s.redacted)
	}
	if strategy == IndexExact {
		_, err := s.DropIndex(ctx, modelID)
		return IndexInfo{Strategy: IndexExact, ModelID: modelID, Dim: dim, Valid: true}, err
	}
	if dim <= 0 {
		err := pool.QueryRow(ctx, `SELECT dim FROM `+s.names.Qualified("")+` WHERE model_id = $1 LIMIT 1`, modelID).Scan(&dim)
		if errors.Is(err, pgx.ErrNoRows) {
			return IndexInfo{}, fmt.Errorf("postgres sink %s: create index: no rows of model %s; give its dimension, or load it first", s.redacted, modelID)
		}
		if err != nil {
			return IndexInfo{}, s.wrap("create index: look up the dimension of "+modelID, err)
		}
	}
	if dim > 64000 {
		return IndexInfo{}, fmt.Errorf("postgres sink %s: create index: dimension %d is over pgvector's 64,000 for bit", s.redacted, dim)
	}
	name := s.indexName(modelID)
	desc := fmt.Sprintf("create index %s (binary, model %s, %d-d)", name, modelID, dim)
	if cur, ok, err := s.indexInfo(ctx, name); err != nil {
		return IndexInfo{}, s.wrap(desc, err)
	} else if ok && cur.Valid && cur.Dim == dim {
		return cur, nil
	} else if ok {
		if _, err := pool.Exec(ctx, `DROP INDEX `+pgx.Identifier{s.names.Schema, name}.Sanitize()); err != nil {
			return IndexInfo{}, s.wrap(desc+": drop the invalid or mismatched index", err)
		}
	}

	with := []string{}
	if o.M > 0 {
		with = append(with, fmt.Sprintf("m = %d", o.M))
	}
	if o.EfConstruction > 0 {
		with = append(with, fmt.Sprintf("ef_construction = %d", o.EfConstruction))
	}
	withSQL := ""
	if len(with) > 0 {
		withSQL = " WITH (" + strings.Join(with, ", ") + ")"
	}
	conc := ""
	if o.Concurrently {
		conc = "CONCURRENTLY "
	}
	// The model id is quoted by the server (format's %L); dim is an int.
	var ddl string
	if err := pool.QueryRow(ctx, `SELECT format('CREATE INDEX `+conc+`%I ON %s USING hnsw ((binary_quantize(embedding)::bit(%s)) bit_hamming_ops)`+withSQL+` WHERE model_id = %L', $1::text, $2::text, $3::int, $4::text)`,
		name, s.names.Qualified(""), dim, modelID).Scan(&ddl); err != nil {
		return IndexInfo{}, s.wrap(desc, err)
	}
	comment, _ := json.Marshal(indexComment{Imgvec: "index", Strategy: string(IndexBinary), ModelID: modelID, Dim: dim})
	mem := o.MaintenanceWorkMem
	if mem == "" {
		mem = "1GB"
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return IndexInfo{}, s.wrap(desc, err)
	}
	defer conn.Release()
	// Session settings (CONCURRENTLY cannot run in a transaction), reset
	// before the connection goes back to the pool.
	if _, err := conn.Exec(ctx, `SELECT set_config('maintenance_work_mem', $1, false)`, mem); err != nil {
		return IndexInfo{}, s.wrap(desc+": maintenance_work_mem", err)
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `RESET maintenance_work_mem`) }()
	if _, err := conn.Exec(ctx, ddl); err != nil {
		return IndexInfo{}, s.wrap(desc, err)
	}
	var commentSQL string
	if err := conn.QueryRow(ctx, `SELECT format('COMMENT ON INDEX %s IS %L', $1::text, $2::text)`,
		pgx.Identifier{s.names.Schema, name}.Sanitize(), string(comment)).Scan(&commentSQL); err != nil {
		return IndexInfo{}, s.wrap(desc+": comment", err)
	}
	if _, err := conn.Exec(ctx, commentSQL); err != nil {
		return IndexInfo{}, s.wrap(desc+": comment", err)
	}
	// Fresh statistics, so that the planner knows how many rows the
	// model has and prefers the index (a backfill leaves none).
	if _, err := conn.Exec(ctx, `ANALYZE `+s.names.Qualified("")); err != nil {
		return IndexInfo{}, s.wrap(desc+": analyze", err)
	}
	info, ok, err := s.indexInfo(ctx, name)
	if err != nil || !ok {
		return IndexInfo{}, s.wrap(desc+": read it back", errors.Join(err, errors.New("index not found after creation")))
	}
	return info, nil
}

// DropIndex drops the imgvec indexes of modelID ("" drops all of the
// table's) and returns what it dropped. Searches fall back to exact.
func (s *Sink) DropIndex(ctx context.Context, modelID string) ([]IndexInfo, error) {
	pool, _, err := s.state(false)
	if err != nil {
		return nil, err
	}
	all, err := s.IndexStatus(ctx)
	if err != nil {
		return nil, err
	}
	var dropped []IndexInfo
	for _, ix := range all {
		if modelID != "" && ix.ModelID != modelID {
			continue
		}
		if _, err := pool.Exec(ctx, `DROP INDEX IF EXISTS `+pgx.Identifier{s.names.Schema, ix.Name}.Sanitize()); err != nil {
			return dropped, s.wrap("drop index "+ix.Name, err)
		}
		dropped = append(dropped, ix)
	}
	return dropped, nil
}

const indexInfoSQL = `SELECT c.relname, coalesce(obj_description(c.oid, 'pg_class'), ''), i.indisvalid AND i.indisready,
	pg_relation_size(c.oid), pg_get_indexdef(c.oid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = to_regclass($1) AND c.relname LIKE $2 ESCAPE '!'`

func scanIndexInfo(rows pgx.Rows) ([]IndexInfo, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (IndexInfo, error) {
		var ix IndexInfo
		var comment string
		if err := r.Scan(&ix.Name, &comment, &ix.Valid, &ix.SizeBytes, &ix.Definition); err != nil {
			return ix, err
		}
		var c indexComment
		if json.Unmarshal([]byte(comment), &c) == nil && c.Imgvec == "index" {
			ix.Strategy, ix.ModelID, ix.Dim = IndexStrategy(c.Strategy), c.ModelID, c.Dim
		} else {
			// Built but not yet commented (a build that failed between the two).
			ix.Strategy, ix.Valid = IndexBinary, false
		}
		return ix, nil
	})
}

func (s *Sink) indexPattern() string {
	return strings.NewReplacer("!", "!!", "_", "!_", "%", "!%").Replace(s.names.Table+"_bq_") + "%"
}

// IndexStatus lists the indexes imgvec made on the items table: strategy,
// model, dimension, name, whether valid, size. Models without one are
// searched exactly. `imgvec index status` shows it.
func (s *Sink) IndexStatus(ctx context.Context) ([]IndexInfo, error) {
	pool, _, err := s.state(false)
	if err != nil {
		return nil, err
	}
	var out []IndexInfo
	err = retry(ctx, s.retryPolicy, func() error {
		rows, err := pool.Query(ctx, indexInfoSQL+` ORDER BY c.relname`, s.names.Qualified(""), s.indexPattern())
		if err != nil {
			return err
		}
		out, err = scanIndexInfo(rows)
		return err
	})
	return out, s.wrap("index status", err)
}

func (s *Sink) indexInfo(ctx context.Context, name string) (IndexInfo, bool, error) {
	pool, _, err := s.state(false)
	if err != nil {
		return IndexInfo{}, false, err
	}
	rows, err := pool.Query(ctx, indexInfoSQL+` AND c.relname = $3`, s.names.Qualified(""), s.indexPattern(), name)
	if err != nil {
		return IndexInfo{}, false, err
	}
	ixs, err := scanIndexInfo(rows)
	if err != nil || len(ixs) == 0 {
		return IndexInfo{}, false, err
	}
	return ixs[0], true, nil
}

// checkDeferred is called by Open: with IndexBinary and no valid index for
// the model yet, the index is built after the load (BuildDeferredIndex).
func (s *Sink) checkDeferred(ctx context.Context) error {
	s.deferred = false
	if s.strategy != IndexBinary {
		return nil
	}
	ix, ok, err := s.indexInfoLocked(ctx, s.indexName(s.model.ID()))
	if err != nil {
		return s.wrap("look up the index of "+s.model.ID(), err)
	}
	s.deferred = !ok || !ix.Valid || ix.Dim != s.model.Dim
	return nil
}

// indexInfoLocked is indexInfo for callers that hold s.mu.
func (s *Sink) indexInfoLocked(ctx context.Context, name string) (IndexInfo, bool, error) {
	rows, err := s.pool.Query(ctx, indexInfoSQL+` AND c.relname = $3`, s.names.Qualified(""), s.indexPattern(), name)
	if err != nil {
		return IndexInfo{}, false, err
	}
	ixs, err := scanIndexInfo(rows)
	if err != nil || len(ixs) == 0 {
		return IndexInfo{}, false, err
	}
	return ixs[0], true, nil
}

// IndexDeferred reports whether the sink, opened WithIndexStrategy(IndexBinary),
// found no index for its model and leaves its creation to BuildDeferredIndex.
func (s *Sink) IndexDeferred() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened && s.writer && s.deferred
}

// BuildDeferredIndex builds the index that Open deferred (see
// WithIndexStrategy), in one pass over the loaded rows. The command calls
// it after a backfill or sync ends (also after a partial or stopped one:
// what is loaded is indexed; the next run keeps it live). It does nothing
// when nothing was deferred or the model has no rows; built is true when
// it built an index. Writes wait while it runs.
func (s *Sink) BuildDeferredIndex(ctx context.Context, o IndexOptions) (info IndexInfo, built bool, err error) {
	s.mu.Lock()
	deferred, writer, model := s.deferred, s.writer, s.model
	s.mu.Unlock()
	if !writer || !deferred {
		return IndexInfo{}, false, nil
	}
	pool, _, err := s.state(true)
	if err != nil {
		return IndexInfo{}, false, err
	}
	var any bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+s.names.Qualified("")+` WHERE model_id = $1)`, model.ID()).Scan(&any); err != nil {
		return IndexInfo{}, false, s.wrap("build deferred index", err)
	}
	if !any {
		return IndexInfo{}, false, nil
	}
	info, err = s.CreateIndex(ctx, IndexBinary, model.ID(), model.Dim, o)
	if err != nil {
		return IndexInfo{}, false, err
	}
	s.mu.Lock()
	s.deferred = false
	s.mu.Unlock()
	return info, true, nil
}
