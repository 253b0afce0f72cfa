package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// Stored streams, from one snapshot (REPEATABLE READ, read only), every
// row of source and every ledger entry of source that has no row, by key
// then id comparing bytes (COLLATE "C"). Two cursors, one over the rows
// and one over the ledger, each read in key order from its index
// (migration 0005; a cursor makes the planner prefer the index to a sort),
// are fetched in pages and merged here, so that nothing is sorted or held.
// It holds one pooled connection while the stream lasts (the pool has at
// least two, so that a sync's writes go on meanwhile). fn's error stops
// the stream and is returned as is.
func (s *Sink) Stored(ctx context.Context, source string, fn func(connector.StoredItem) error) error {
	pool, _, err := s.state(false)
	if err != nil {
		return err
	}
	var fnErr error
	items, failures := s.names.Qualified(""), s.names.Qualified("_failures")
	// Both tables are locked first, so that a lock timeout (retried by
	// waitLocks) comes before fn has seen any item, and the snapshot is
	// taken after the locks.
	err = s.waitLocks(ctx, "stored "+source, pool, func() error {
		return s.lockedTx(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `LOCK TABLE `+items+`, `+failures+` IN ACCESS SHARE MODE`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DECLARE stored_rows NO SCROLL CURSOR FOR
				SELECT id, key, size, mtime_ns, etag, sha256, model_id, '' FROM `+items+` WHERE source = $1
				ORDER BY key COLLATE "C", id COLLATE "C"`, source); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DECLARE stored_ledger NO SCROLL CURSOR FOR
				SELECT f.id, f.key, f.size, f.mtime_ns, f.etag, f.sha256, f.model_id, f.class FROM `+failures+` f
				WHERE f.source = $1 AND NOT EXISTS (SELECT 1 FROM `+items+` i WHERE i.id = f.id)
				ORDER BY f.key COLLATE "C", f.id COLLATE "C"`, source); err != nil {
				return err
			}
			rows, ledger := &storedCursor{tx: tx, name: "stored_rows"}, &storedCursor{tx: tx, name: "stored_ledger", failed: true}
			r, rok, err := rows.next(ctx)
			if err != nil {
				return err
			}
			l, lok, err := ledger.next(ctx)
			if err != nil {
				return err
			}
			for rok || lok {
				// An id is in one stream only (NOT EXISTS): no ties.
				if rok && (!lok || r.Key < l.Key || r.Key == l.Key && r.ID < l.ID) {
					if fnErr = fn(r); fnErr != nil {
						return fnErr
					}
					if r, rok, err = rows.next(ctx); err != nil {
						return err
					}
					continue
				}
				if fnErr = fn(l); fnErr != nil {
					return fnErr
				}
				if l, lok, err = ledger.next(ctx); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if fnErr != nil {
		return fnErr
	}
	return s.wrap("stored "+source, err)
}

// storedFetch is the page size of Stored's cursors.
const storedFetch = 2000

// storedCursor reads one of Stored's cursors page by page.
type storedCursor struct {
	tx     pgx.Tx
	name   string
	failed bool
	page   []connector.StoredItem
	done   bool
}

func (c *storedCursor) next(ctx context.Context) (connector.StoredItem, bool, error) {
	if len(c.page) == 0 && !c.done {
		rows, err := c.tx.Query(ctx, fmt.Sprintf("FETCH %d FROM %s", storedFetch, c.name))
		if err != nil {
			return connector.StoredItem{}, false, err
		}
		for rows.Next() {
			var it connector.StoredItem
			var mt *int64
			var class string
			if err := rows.Scan(&it.ID, &it.Key, &it.Size, &mt, &it.ETag, &it.SHA256, &it.ModelID, &class); err != nil {
				rows.Close()
				return connector.StoredItem{}, false, err
			}
			it.MTime = mtimeFromNS(mt)
			if c.failed {
				it.Failed, it.Class = true, schema.FailureClass(class)
			}
			c.page = append(c.page, it)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return connector.StoredItem{}, false, err
		}
		c.done = len(c.page) < storedFetch
	}
	if len(c.page) == 0 {
		return connector.StoredItem{}, false, nil
	}
	it := c.page[0]
	c.page = c.page[1:]
	return it, true, nil
}

// VectorsBySHA256 returns one stored vector of modelID per hash found.
func (s *Sink) VectorsBySHA256(ctx context.Context, modelID string, sha256s []string) (map[string][]float32, error) {
	pool, _, err := s.state(false)
	if err != nil {
		return nil, err
	}
	out := map[string][]float32{}
	seen := map[string]bool{}
	uniq := make([]string, 0, len(sha256s))
	for _, h := range sha256s {
		if h != "" && !seen[h] {
			seen[h] = true
			uniq = append(uniq, h)
		}
	}
	if len(uniq) == 0 {
		return out, nil
	}
	err = s.waitLocks(ctx, "vectors by sha256", pool, func() error {
		return withRetries(ctx, s.retryPolicy, func() error {
			clear(out)
			return s.lockedTx(ctx, pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
				rows, err := tx.Query(ctx, `SELECT DISTINCT ON (sha256) sha256, embedding::vector FROM `+s.names.Qualified("")+`
		WHERE model_id = $1 AND sha256 = ANY($2) ORDER BY sha256, id`, modelID, uniq)
				if err != nil {
					return err
				}
				var h string
				var v pgvector.Vector
				_, err = pgx.ForEachRow(rows, []any{&h, &v}, func() error {
					out[h] = v.Slice()
					return nil
				})
				return err
			})
		})
	})
	if err != nil {
		return nil, s.wrap("vectors by sha256", err)
	}
	return out, nil
}

const recordColumns = `id, source, key, size, mtime_ns, etag, sha256, width, height, format, model_id, layer, dim, extracted_at, metadata`

// scanRecord scans recordColumns plus extra destinations.
func scanRecord(row pgx.Row, extra ...any) (schema.Record, error) {
	var rec schema.Record
	var mt *int64
	var md []byte
	var w, h, dim int32
	dest := append([]any{&rec.ID, &rec.Source, &rec.Key, &rec.Size, &mt, &rec.ETag, &rec.SHA256, &w, &h,
		&rec.Format, &rec.ModelID, &rec.Layer, &dim, &rec.ExtractedAt, &md}, extra...)
	if err := row.Scan(dest...); err != nil {
		return rec, err
	}
	rec.Width, rec.Height, rec.Dim = int(w), int(h), int(dim)
	rec.MTime = mtimeFromNS(mt)
	rec.ExtractedAt = rec.ExtractedAt.UTC()
	if len(md) > 0 && string(md) != "{}" {
		if err := json.Unmarshal(md, &rec.Metadata); err != nil {
			return rec, fmt.Errorf("stored metadata of %s: %w", rec.ID, err)
		}
	}
	return rec, nil
}

// Get returns the record with id, with its vector.
func (s *Sink) Get(ctx context.Context, id string) (schema.Record, bool, error) {
	pool, _, err := s.state(false)
	if err != nil {
		return schema.Record{}, false, err
	}
	var v pgvector.Vector
	var rec schema.Record
	err = withRetries(ctx, s.retryPolicy, func() (err error) {
		rec, err = scanRecord(pool.QueryRow(ctx, `SELECT `+recordColumns+`, embedding::vector FROM `+s.names.Qualified("")+` WHERE id = $1`, id), &v)
		return err
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return schema.Record{}, false, nil
	case err != nil:
		return schema.Record{}, false, s.wrap("get "+id, err)
	}
	rec.Vector = v.Slice()
	return rec, true, nil
}

// Search returns the k rows of modelID nearest to vec by cosine distance
// (pgvector's <=>), nearest first, ties by id. Hits carry no vector.
//
// When the model has a valid binary index (CreateIndex), the search has two
// stages in one read-only transaction: the k×N rows nearest by Hamming
// distance of binary_quantize(embedding)::bit(DIM) come from the HNSW index
// (hnsw.ef_search raised to k×N, at most 1000; iterative scan beyond), and
// are re-ranked by exact cosine distance. N is WithCandidates. Otherwise
// the search scans the model's rows and is exact. Rows whose vector has
// zero norm have no cosine distance: they sort last with Distance NaN.
func (s *Sink) Search(ctx context.Context, modelID string, vec []float32, k int) ([]connector.Hit, error) {
	pool, _, err := s.state(false)
	if err != nil {
		return nil, err
	}
	if k < 0 {
		return nil, fmt.Errorf("postgres sink %s: search: k = %d", s.redacted, k)
	}
	items := s.names.Qualified("")
	var dim int32
	var indexed bool
	err = withRetries(ctx, s.retryPolicy, func() error {
		return pool.QueryRow(ctx, `SELECT t.dim, coalesce((SELECT i.indisvalid AND i.indisready FROM pg_index i
			WHERE i.indexrelid = to_regclass($2) AND i.indrelid = to_regclass($3)), false)
		FROM `+items+` t WHERE t.model_id = $1 LIMIT 1`,
			modelID, pgx.Identifier{s.names.Schema, s.indexName(modelID)}.Sanitize(), items).Scan(&dim, &indexed)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, s.wrap("search", err)
	}
	if err := schema.CheckVector(vec, int(dim)); err != nil {
		return nil, fmt.Errorf("postgres sink %s: search model %s: query %w", s.redacted, modelID, err)
	}
	var norm float64
	for _, f := range vec {
		norm += float64(f) * float64(f)
	}
	if norm == 0 {
		return nil, fmt.Errorf("postgres sink %s: search: the query vector is zero and has no cosine distance", s.redacted)
	}
	if k == 0 {
		return nil, nil
	}
	var hits []connector.Hit
	err = withRetries(ctx, s.retryPolicy, func() error {
		hits = hits[:0]
		return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			var rows pgx.Rows
			var err error
			if indexed {
				n := k * s.candidates
				sql, settings := indexedSearchSQL(items, int(dim), n)
				if _, err := tx.Exec(ctx, settings); err != nil {
					return err
				}
				rows, err = tx.Query(ctx, sql, pgvector.NewVector(vec), modelID, n, k)
			} else {
				// NaN (zero-norm rows) sorts after every number in PostgreSQL.
				rows, err = tx.Query(ctx, `SELECT `+recordColumns+`, embedding <=> $1::vector AS distance
				FROM `+items+` WHERE model_id = $2 ORDER BY distance, id LIMIT $3`, pgvector.NewVector(vec), modelID, k)
			}
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var d *float64
				rec, err := scanRecord(rows, &d)
				if err != nil {
					return err
				}
				h := connector.Hit{Record: rec, Distance: math.NaN()}
				if d != nil {
					h.Distance = *d
				}
				hits = append(hits, h)
			}
			return rows.Err()
		})
	})
	if err != nil {
		return nil, s.wrap("search", err)
	}
	return hits, nil
}

// indexedSearchSQL is the two-stage query of the binary strategy ($1 query
// vector, $2 model id, $3 candidates, $4 k) and the transaction-local
// settings it needs: hnsw.ef_search ≥ candidates (pgvector's maximum is
// 1000; beyond, an iterative scan supplies the rest), and custom plans, so
// that the planner sees the model id as a constant and can use the partial
// index even for a cached prepared statement. Sorts are disabled for the
// query: every plan ends with the re-rank's sort, so the planner then takes
// the HNSW scan (which delivers the candidates in order) over scanning and
// sorting the model's rows, which a small table or stale statistics would
// make look cheaper.
func indexedSearchSQL(items string, dim, candidates int) (sql, settings string) {
	settings = fmt.Sprintf("SET LOCAL hnsw.ef_search = %d; SET LOCAL plan_cache_mode = force_custom_plan; "+
		"SET LOCAL enable_sort = off; SET LOCAL enable_incremental_sort = off", min(max(candidates, 40), maxEfSearch))
	if candidates > maxEfSearch {
		settings += "; SET LOCAL hnsw.iterative_scan = strict_order"
	}
	sql = fmt.Sprintf(`SELECT `+recordColumns+`, embedding <=> $1::vector AS distance FROM (
	SELECT * FROM %s WHERE model_id = $2
	ORDER BY binary_quantize(embedding)::bit(%d) <~> binary_quantize($1::vector)::bit(%d)
	LIMIT $3) c
ORDER BY distance, id LIMIT $4`, items, dim, dim)
	return sql, settings
}

// scanRun reads a run row selected as runColumns.
func scanRun(r pgx.CollectableRow) (schema.Run, error) {
	var run schema.Run
	var ended *time.Time
	var outcome string
	err := r.Scan(&run.ID, &run.Job, &run.Kind, &run.Source, &run.Shard, &run.ModelID, &run.StartedAt, &ended, &outcome, &run.Error,
		&run.Listed, &run.Written, &run.Extracted, &run.Reused, &run.Unchanged, &run.Failed, &run.Skipped, &run.Deleted,
		&run.Runner.Host, &run.Runner.BootID, &run.Runner.PIDNS, &run.Runner.PID, &run.Runner.Start)
	run.Outcome = schema.RunOutcome(outcome)
	run.StartedAt = run.StartedAt.UTC()
	if ended != nil {
		run.EndedAt = ended.UTC()
	}
	return run, err
}

// LatestRuns implements connector.LatestRunReader.
func (s *Sink) LatestRuns(ctx context.Context, job, source string) ([]schema.Run, error) {
	pool, _, err := s.state(false)
	if err != nil {
		return nil, err
	}
	var runs []schema.Run
	err = withRetries(ctx, s.retryPolicy, func() error {
		rows, _ := pool.Query(ctx, `SELECT DISTINCT ON (shard) `+runColumns+` FROM `+s.names.Qualified("_runs")+`
WHERE job = $1 AND source = $2 ORDER BY shard, started_at DESC, id DESC`, job, source)
		runs, err = pgx.CollectRows(rows, scanRun)
		return err
	})
	return runs, s.wrap(fmt.Sprintf("latest runs of job %q over %s", job, source), err)
}

// Status reports rows per model, the ledger and the latest runs, from one
// snapshot.
func (s *Sink) Status(ctx context.Context) (connector.Status, error) {
	pool, _, err := s.state(false)
	if err != nil {
		return connector.Status{}, err
	}
	var st connector.Status
	var what string
	err = withRetries(ctx, s.retryPolicy, func() error { return s.statusTx(ctx, pool, &st, &what) })
	if err != nil {
		return connector.Status{}, s.wrap("status: "+what, err)
	}
	return st, nil
}

func (s *Sink) statusTx(ctx context.Context, pool *pgxpool.Pool, st *connector.Status, what *string) error {
	*st = connector.Status{ByClass: map[string]int64{}}
	items, failures, runs := s.names.Qualified(""), s.names.Qualified("_failures"), s.names.Qualified("_runs")
	return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		*what = "models"
		rows, _ := tx.Query(ctx, `SELECT model_id, layer, dim, count(*) FROM `+items+` GROUP BY model_id, layer, dim ORDER BY model_id, layer, dim`)
		models, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (connector.ModelCount, error) {
			var m connector.ModelCount
			var dim int32
			err := r.Scan(&m.ModelID, &m.Layer, &dim, &m.Rows)
			m.Dim = int(dim)
			return m, err
		})
		if err != nil {
			return err
		}
		st.Models = models

		*what = "ledger"
		rows, _ = tx.Query(ctx, `SELECT class, count(*) FROM `+failures+` GROUP BY class ORDER BY class`)
		var c string
		var n int64
		if _, err := pgx.ForEachRow(rows, []any{&c, &n}, func() error {
			st.ByClass[c] = n
			st.Failures += n
			return nil
		}); err != nil {
			return err
		}

		*what = "recent ledger entries"
		rows, _ = tx.Query(ctx, `SELECT id, source, key, size, mtime_ns, etag, sha256, model_id, stage, class, reason,
			attempts, first_seen, last_seen FROM `+failures+` ORDER BY last_seen DESC, id LIMIT 10`)
		recent, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (schema.Failure, error) {
			var f schema.Failure
			var mt *int64
			var class string
			var attempts int32
			err := r.Scan(&f.ID, &f.Source, &f.Key, &f.Size, &mt, &f.ETag, &f.SHA256, &f.ModelID, &f.Stage, &class,
				&f.Reason, &attempts, &f.FirstSeen, &f.LastSeen)
			f.MTime, f.Class, f.Attempts = mtimeFromNS(mt), schema.FailureClass(class), int(attempts)
			f.FirstSeen, f.LastSeen = f.FirstSeen.UTC(), f.LastSeen.UTC()
			return f, err
		})
		if err != nil {
			return err
		}
		st.Recent = recent

		*what = "runs"
		rows, _ = tx.Query(ctx, `SELECT `+runColumns+` FROM `+runs+` ORDER BY started_at DESC, id DESC LIMIT 10`)
		rs, err := pgx.CollectRows(rows, scanRun)
		if err != nil {
			return err
		}
		st.Runs = rs
		return nil
	})
}

// ScanVectors streams the rows of modelID in key order from one snapshot
// (REPEATABLE READ, read only). The server sorts (spilling to disk beyond
// work_mem) with the "C" collation, which compares bytes whatever the
// database's locale; the client holds one row at a time.
func (s *Sink) ScanVectors(ctx context.Context, modelID string, fn func(schema.Record) error) error {
	pool, _, err := s.state(false)
	if err != nil {
		return err
	}
	items := s.names.Qualified("")
	var fnErr error
	// The table is locked first, so that a lock timeout (retried by
	// waitLocks) comes before fn has seen any row.
	err = s.waitLocks(ctx, "scan vectors of "+modelID, pool, func() error {
		return s.lockedTx(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `LOCK TABLE `+items+` IN ACCESS SHARE MODE`); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `SELECT `+recordColumns+`, embedding::vector FROM `+items+`
			WHERE model_id = $1 ORDER BY source COLLATE "C", key COLLATE "C"`, modelID)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var v pgvector.Vector
				rec, err := scanRecord(rows, &v)
				if err != nil {
					return err
				}
				rec.Vector = v.Slice()
				if fnErr = fn(rec); fnErr != nil {
					return fnErr
				}
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			return rows.Err()
		})
	})
	if fnErr != nil {
		return fnErr
	}
	return s.wrap("scan vectors of "+modelID, err)
}
