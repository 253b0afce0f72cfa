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

	"github.com/imgvec/imgvec/connector"
)

// DefaultCandidates is the default candidate multiplier N of the binary
// strategy: the index supplies k×N rows, re-ranked exactly.
const DefaultCandidates = 40

// maxEfSearch is pgvector's upper bound of hnsw.ef_search.
const maxEfSearch = 1000

// WithIndexStrategy sets the index strategy the sink maintains for the
// model it is opened with. Defaults to connector.IndexExact (the sink creates no
// index, and uses one that `imgvec index create` made).
//
// With connector.IndexBinary, Open looks for the model's binary index: when it exists
// it stays live (incremental syncs update it row by row); when it does not
// (a backfill into an empty table, a first sync), creating it is deferred:
// the load runs without it and BuildDeferredIndex, called by the command
// once the run is over, builds it in one pass — more than ten times faster
// than inserting into a live HNSW graph. Searches meanwhile are exact.
func WithIndexStrategy(st connector.IndexStrategy) Option { return func(s *Sink) { s.strategy = st } }

// WithCandidates sets the candidate multiplier N of indexed searches.
// Defaults to DefaultCandidates.
func WithCandidates(n int) Option { return func(s *Sink) { s.candidates = max(n, 1) } }

// The sink is a connector.IndexManager: binary HNSW indexes, one per model
// id (doc.go). connector.IndexOptions' zero values take pgvector's HNSW
// defaults (m 16, ef_construction 64) and a maintenance_work_mem of 1GB: the
// build is several times slower when the graph does not fit (100k 4096-d
// rows need about 200 MB).
var _ connector.IndexManager = (*Sink)(nil)

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
// dimensions (0: the dimension of its stored rows). connector.IndexExact drops the
// model's index. An existing valid index is kept as it is; an invalid one
// (a failed CONCURRENTLY build) is replaced. Writes wait for a build that
// is not Concurrently. `imgvec index create` calls it.
func (s *Sink) CreateIndex(ctx context.Context, strategy connector.IndexStrategy, modelID string, dim int, o connector.IndexOptions) (connector.IndexInfo, error) {
	pool, _, err := s.state(false)
	if err != nil {
		return connector.IndexInfo{}, err
	}
	if _, err := connector.ParseIndexStrategy(string(strategy)); err != nil {
		return connector.IndexInfo{}, fmt.Errorf("postgres sink %s: create index: %w", s.redacted, err)
	}
	if modelID == "" {
		return connector.IndexInfo{}, fmt.Errorf("postgres sink %s: create index: no model id", s.redacted)
	}
	if strategy == connector.IndexExact {
		_, err := s.DropIndex(ctx, modelID)
		return connector.IndexInfo{Strategy: connector.IndexExact, ModelID: modelID, Dim: dim, Valid: true}, err
	}
	if dim <= 0 {
		err := pool.QueryRow(ctx, `SELECT dim FROM `+s.names.Qualified("")+` WHERE model_id = $1 LIMIT 1`, modelID).Scan(&dim)
		if errors.Is(err, pgx.ErrNoRows) {
			return connector.IndexInfo{}, fmt.Errorf("postgres sink %s: create index: no rows of model %s; give its dimension, or load it first", s.redacted, modelID)
		}
		if err != nil {
			return connector.IndexInfo{}, s.wrap("create index: look up the dimension of "+modelID, err)
		}
	}
	if dim > 64000 {
		return connector.IndexInfo{}, fmt.Errorf("postgres sink %s: create index: dimension %d is over pgvector's 64,000 for bit", s.redacted, dim)
	}
	name := s.indexName(modelID)
	desc := fmt.Sprintf("create index %s (binary, model %s, %d-d)", name, modelID, dim)
	if cur, ok, err := s.indexInfo(ctx, name); err != nil {
		return connector.IndexInfo{}, s.wrap(desc, err)
	} else if ok && cur.Valid && cur.Dim == dim {
		return cur, nil
	} else if ok {
		if _, err := pool.Exec(ctx, `DROP INDEX `+pgx.Identifier{s.names.Schema, name}.Sanitize()); err != nil {
			return connector.IndexInfo{}, s.wrap(desc+": drop the invalid or mismatched index", err)
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
		return connector.IndexInfo{}, s.wrap(desc, err)
	}
	comment, _ := json.Marshal(indexComment{Imgvec: "index", Strategy: string(connector.IndexBinary), ModelID: modelID, Dim: dim})
	mem := o.MaintenanceWorkMem
	if mem == "" {
		mem = "1GB"
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return connector.IndexInfo{}, s.wrap(desc, err)
	}
	defer conn.Release()
	// Session settings (CONCURRENTLY cannot run in a transaction), reset
	// before the connection goes back to the pool.
	if _, err := conn.Exec(ctx, `SELECT set_config('maintenance_work_mem', $1, false)`, mem); err != nil {
		return connector.IndexInfo{}, s.wrap(desc+": maintenance_work_mem", err)
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `RESET maintenance_work_mem`) }()
	if _, err := conn.Exec(ctx, ddl); err != nil {
		return connector.IndexInfo{}, s.wrap(desc, err)
	}
	var commentSQL string
	if err := conn.QueryRow(ctx, `SELECT format('COMMENT ON INDEX %s IS %L', $1::text, $2::text)`,
		pgx.Identifier{s.names.Schema, name}.Sanitize(), string(comment)).Scan(&commentSQL); err != nil {
		return connector.IndexInfo{}, s.wrap(desc+": comment", err)
	}
	if _, err := conn.Exec(ctx, commentSQL); err != nil {
		return connector.IndexInfo{}, s.wrap(desc+": comment", err)
	}
	// Fresh statistics, so that the planner knows how many rows the
	// model has and prefers the index (a backfill leaves none).
	if _, err := conn.Exec(ctx, `ANALYZE `+s.names.Qualified("")); err != nil {
		return connector.IndexInfo{}, s.wrap(desc+": analyze", err)
	}
	info, ok, err := s.indexInfo(ctx, name)
	if err != nil || !ok {
		return connector.IndexInfo{}, s.wrap(desc+": read it back", errors.Join(err, errors.New("index not found after creation")))
	}
	return info, nil
}

// DropIndex drops the imgvec indexes of modelID ("" drops all of the
// table's) and returns what it dropped. Searches fall back to exact.
func (s *Sink) DropIndex(ctx context.Context, modelID string) ([]connector.IndexInfo, error) {
	pool, _, err := s.state(false)
	if err != nil {
		return nil, err
	}
	all, err := s.IndexStatus(ctx)
	if err != nil {
		return nil, err
	}
	var dropped []connector.IndexInfo
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

func scanIndexInfo(rows pgx.Rows) ([]connector.IndexInfo, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (connector.IndexInfo, error) {
		var ix connector.IndexInfo
		var comment string
		if err := r.Scan(&ix.Name, &comment, &ix.Valid, &ix.SizeBytes, &ix.Definition); err != nil {
			return ix, err
		}
		var c indexComment
		if json.Unmarshal([]byte(comment), &c) == nil && c.Imgvec == "index" {
			ix.Strategy, ix.ModelID, ix.Dim = connector.IndexStrategy(c.Strategy), c.ModelID, c.Dim
		} else {
			// Built but not yet commented (a build that failed between the two).
			ix.Strategy, ix.Valid = connector.IndexBinary, false
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
func (s *Sink) IndexStatus(ctx context.Context) ([]connector.IndexInfo, error) {
	pool, _, err := s.state(false)
	if err != nil {
		return nil, err
	}
	var out []connector.IndexInfo
	err = withRetries(ctx, s.retryPolicy, func() error {
		rows, err := pool.Query(ctx, indexInfoSQL+` ORDER BY c.relname`, s.names.Qualified(""), s.indexPattern())
		if err != nil {
			return err
		}
		out, err = scanIndexInfo(rows)
		return err
	})
	return out, s.wrap("index status", err)
}

func (s *Sink) indexInfo(ctx context.Context, name string) (connector.IndexInfo, bool, error) {
	pool, _, err := s.state(false)
	if err != nil {
		return connector.IndexInfo{}, false, err
	}
	rows, err := pool.Query(ctx, indexInfoSQL+` AND c.relname = $3`, s.names.Qualified(""), s.indexPattern(), name)
	if err != nil {
		return connector.IndexInfo{}, false, err
	}
	ixs, err := scanIndexInfo(rows)
	if err != nil || len(ixs) == 0 {
		return connector.IndexInfo{}, false, err
	}
	return ixs[0], true, nil
}

// checkDeferred is called by Open: with connector.IndexBinary and no valid index for
// the model yet, the index is built after the load (BuildDeferredIndex).
func (s *Sink) checkDeferred(ctx context.Context) error {
	s.deferred = false
	if s.strategy != connector.IndexBinary {
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
func (s *Sink) indexInfoLocked(ctx context.Context, name string) (connector.IndexInfo, bool, error) {
	rows, err := s.pool.Query(ctx, indexInfoSQL+` AND c.relname = $3`, s.names.Qualified(""), s.indexPattern(), name)
	if err != nil {
		return connector.IndexInfo{}, false, err
	}
	ixs, err := scanIndexInfo(rows)
	if err != nil || len(ixs) == 0 {
		return connector.IndexInfo{}, false, err
	}
	return ixs[0], true, nil
}

// IndexDeferred reports whether the sink, opened WithIndexStrategy(connector.IndexBinary),
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
func (s *Sink) BuildDeferredIndex(ctx context.Context, o connector.IndexOptions) (info connector.IndexInfo, built bool, err error) {
	s.mu.Lock()
	deferred, writer, model := s.deferred, s.writer, s.model
	s.mu.Unlock()
	if !writer || !deferred {
		return connector.IndexInfo{}, false, nil
	}
	pool, _, err := s.state(true)
	if err != nil {
		return connector.IndexInfo{}, false, err
	}
	var any bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+s.names.Qualified("")+` WHERE model_id = $1)`, model.ID()).Scan(&any); err != nil {
		return connector.IndexInfo{}, false, s.wrap("build deferred index", err)
	}
	if !any {
		return connector.IndexInfo{}, false, nil
	}
	info, err = s.CreateIndex(ctx, connector.IndexBinary, model.ID(), model.Dim, o)
	if err != nil {
		return connector.IndexInfo{}, false, err
	}
	s.mu.Lock()
	s.deferred = false
	s.mu.Unlock()
	return info, true, nil
}

var _ connector.IndexedSearcher = (*Sink)(nil)

// SearchIndexed reports whether modelID has a valid binary index, which
// Search then uses.
func (s *Sink) SearchIndexed(ctx context.Context, modelID string) (bool, error) {
	var info connector.IndexInfo
	var ok bool
	err := withRetries(ctx, s.retryPolicy, func() (err error) {
		info, ok, err = s.indexInfo(ctx, s.indexName(modelID))
		return err
	})
	if err != nil {
		return false, s.wrap("index of "+modelID, err)
	}
	return ok && info.Valid, nil
}
