package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// prepared is a batch validated and encoded before any I/O.
type prepared struct {
	upserts  [][]any // itemColumns values, ids unique (last occurrence wins)
	ids      []string
	failures []schema.Failure
	fmtimes  []*int64
	metadata []connector.MetaUpdate
	mmtimes  []*int64
}

// itemColumns are the items table's columns in COPY order.
var itemColumns = []string{"id", "source", "key", "size", "mtime_ns", "etag", "sha256", "width", "height", "format",
	"model_id", "layer", "dim", "extracted_at", "metadata", "embedding"}

// mtimeNS maps an mtime to the mtime_ns column: NULL for the zero time.
// connector.Batch.Normalize has checked that it fits.
func mtimeNS(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	ns := t.UnixNano()
	return &ns
}

func mtimeFromNS(ns *int64) time.Time {
	if ns == nil {
		return time.Time{}
	}
	return time.Unix(0, *ns).UTC()
}

// prepare validates (connector.Batch.Normalize: ids deduplicated, last
// occurrence wins, since ON CONFLICT DO UPDATE refuses a key twice in one
// statement; model, dimension, finiteness, defaults) and encodes b before
// any I/O; vectors are encoded as the column's type st.
func prepare(b connector.Batch, model schema.ModelIdentity, st Storage, now time.Time) (prepared, error) {
	nb, err := b.Normalize(model, now)
	if err != nil {
		return prepared{}, err
	}
	var p prepared
	for _, r := range nb.Upserts {
		md := []byte("{}")
		if len(r.Metadata) > 0 {
			if md, err = json.Marshal(r.Metadata); err != nil {
				return prepared{}, fmt.Errorf("upsert %s: metadata: %w", connector.ItemName(r.ID, r.Key), err)
			}
		}
		vec, err := encodeVector(st, r.Vector)
		if err != nil {
			return prepared{}, fmt.Errorf("upsert %s: %w", connector.ItemName(r.ID, r.Key), err)
		}
		p.ids = append(p.ids, r.ID)
		p.upserts = append(p.upserts, []any{r.ID, r.Source, r.Key, r.Size, mtimeNS(r.MTime), r.ETag, r.SHA256, int32(r.Width), int32(r.Height),
			r.Format, r.ModelID, r.Layer, int32(r.Dim), r.ExtractedAt, md, vec})
	}
	for _, f := range nb.Failures {
		p.failures = append(p.failures, f)
		p.fmtimes = append(p.fmtimes, mtimeNS(f.MTime))
	}
	for _, u := range nb.Metadata {
		p.metadata = append(p.metadata, u)
		p.mmtimes = append(p.mmtimes, mtimeNS(u.MTime))
	}
	return p, nil
}

// testHookCopyRow, when set by a test, is called before each row is
// handed to COPY (fault injection: the fault test terminates the backend
// from it).
var testHookCopyRow func(i int)

// stageTable is the per-transaction temp table the upserts are COPYed into.
const stageTable = "imgvec_stage"

type queries struct {
	itemsIdent                                                                 pgx.Identifier
	anyExists, clearLedgerIDs                                                  string
	createStage, mergeStage, clearLedger, upsertFailure, updateMeta, upsertRun string
}

// runColumns are the columns of a run row, in the order upsertRun binds
// them and scanRun reads them.
const runColumns = `id, job, kind, source, shard, model_id, started_at, ended_at, outcome, error,
	listed, written, extracted, reused, unchanged, failed, skipped, deleted,
	runner_host, runner_boot_id, runner_pid_ns, runner_pid, runner_start`

func (s *Sink) queries() queries {
	items, failures, runs := s.names.Qualified(""), s.names.Qualified("_failures"), s.names.Qualified("_runs")
	cols := "id, source, key, size, mtime_ns, etag, sha256, width, height, format, model_id, layer, dim, extracted_at, metadata, embedding"
	return queries{
		itemsIdent:     pgx.Identifier{s.names.Schema, s.names.Table},
		anyExists:      `SELECT EXISTS (SELECT 1 FROM ` + items + ` WHERE id = ANY($1))`,
		clearLedgerIDs: `DELETE FROM ` + failures + ` WHERE id = ANY($1)`,
		createStage:    `CREATE TEMP TABLE ` + stageTable + ` (LIKE ` + items + ` INCLUDING DEFAULTS) ON COMMIT DROP`,
		mergeStage: `INSERT INTO ` + items + ` (` + cols + `) SELECT ` + cols + ` FROM ` + stageTable + `
ON CONFLICT (id) DO UPDATE SET
	source = EXCLUDED.source, key = EXCLUDED.key, size = EXCLUDED.size, mtime_ns = EXCLUDED.mtime_ns,
	etag = EXCLUDED.etag, sha256 = EXCLUDED.sha256, width = EXCLUDED.width, height = EXCLUDED.height,
	format = EXCLUDED.format, model_id = EXCLUDED.model_id, layer = EXCLUDED.layer, dim = EXCLUDED.dim,
	extracted_at = EXCLUDED.extracted_at, metadata = EXCLUDED.metadata, embedding = EXCLUDED.embedding`,
		clearLedger: `DELETE FROM ` + failures + ` f USING ` + stageTable + ` s WHERE f.id = s.id`,
		// A ledger upsert counts a new attempt only when last_seen moves
		// forward: a replayed batch changes nothing; first_seen is kept.
		upsertFailure: `INSERT INTO ` + failures + ` AS f
	(id, source, key, size, mtime_ns, etag, sha256, model_id, stage, class, reason, attempts, first_seen, last_seen)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (id) DO UPDATE SET
	source = EXCLUDED.source, key = EXCLUDED.key, size = EXCLUDED.size, mtime_ns = EXCLUDED.mtime_ns,
	etag = EXCLUDED.etag, sha256 = EXCLUDED.sha256, model_id = EXCLUDED.model_id, stage = EXCLUDED.stage,
	class = EXCLUDED.class, reason = EXCLUDED.reason,
	attempts = CASE WHEN f.last_seen = EXCLUDED.last_seen THEN f.attempts ELSE f.attempts + 1 END,
	first_seen = LEAST(f.first_seen, EXCLUDED.first_seen),
	last_seen = EXCLUDED.last_seen
WHERE EXCLUDED.last_seen >= f.last_seen`,
		updateMeta: `UPDATE ` + items + ` SET size = $1, mtime_ns = $2, etag = $3,
	sha256 = CASE WHEN $4 = '' THEN sha256 ELSE $4 END WHERE id = $5`,
		upsertRun: `INSERT INTO ` + runs + ` (` + runColumns + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
ON CONFLICT (id) DO UPDATE SET
	job = EXCLUDED.job, kind = EXCLUDED.kind, source = EXCLUDED.source, shard = EXCLUDED.shard, model_id = EXCLUDED.model_id,
	started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at, outcome = EXCLUDED.outcome,
	error = EXCLUDED.error, listed = EXCLUDED.listed, written = EXCLUDED.written,
	extracted = EXCLUDED.extracted, reused = EXCLUDED.reused, unchanged = EXCLUDED.unchanged,
	failed = EXCLUDED.failed, skipped = EXCLUDED.skipped, deleted = EXCLUDED.deleted, runner_host = EXCLUDED.runner_host,
	runner_boot_id = EXCLUDED.runner_boot_id, runner_pid_ns = EXCLUDED.runner_pid_ns,
	runner_pid = EXCLUDED.runner_pid, runner_start = EXCLUDED.runner_start`,
	}
}

// Write commits b in one transaction: ledger upserts; row upserts (binary
// COPY straight into the table while none of the ids is stored, else into
// a temp table and one INSERT ... ON CONFLICT (id) DO UPDATE: see
// copyPath; then the removal of their ids' ledger entries); metadata
// updates (rows that do not exist are left alone); then the run row.
// Vectors are checked before any I/O. Errors that are safe to retry are
// retried (see retry.go).
func (s *Sink) Write(ctx context.Context, b connector.Batch) error {
	pool, model, err := s.state(true)
	if err != nil {
		return err
	}
	p, err := prepare(b, model, s.Storage(), time.Now())
	if err != nil {
		return fmt.Errorf("postgres sink %s: write: %w", s.redacted, err)
	}
	if len(p.upserts) == 0 && len(p.failures) == 0 && len(p.metadata) == 0 && b.Run == nil {
		return ctx.Err()
	}
	desc := fmt.Sprintf("write batch of %d upserts, %d metadata updates, %d ledger entries into %s",
		len(p.upserts), len(p.metadata), len(p.failures), s.names.Qualified(""))
	q := s.queries()
	path := pathDirect
	if s.storedIDs.Load() {
		path = pathLookup
	}
	var staged bool
	err = s.waitLocks(ctx, desc, pool, func() error {
		return withRetries(ctx, s.retryPolicy, func() error {
			err := s.inTx(ctx, pool, func(tx pgx.Tx) (err error) { staged, err = writeTx(ctx, tx, q, p, b.Run, path); return err })
			var pe *pgconn.PgError
			if path != pathStaged && errors.As(err, &pe) && pe.Code == "23505" && pe.TableName == s.names.Table {
				// One of the ids is stored (an earlier run's row, or a
				// concurrent writer's since the lookup): the transaction
				// rolled back; upsert through the stage table instead.
				path = pathStaged
				err = s.inTx(ctx, pool, func(tx pgx.Tx) (err error) { staged, err = writeTx(ctx, tx, q, p, b.Run, path); return err })
			}
			return err
		})
	})
	if err == nil && len(p.upserts) > 0 {
		s.storedIDs.Store(staged)
	}
	return s.wrap(desc, err)
}

// copyPath is how writeTx stores a batch's rows.
type copyPath int

const (
	// pathDirect COPYs straight into the table, as if none of the ids were
	// stored; if one is, the COPY fails with a unique violation and Write
	// reruns the batch with pathStaged. What a backfill's batches take.
	pathDirect copyPath = iota
	// pathLookup looks whether any id is stored first, then takes the
	// direct or the staged path: for the batch after one that had stored
	// ids (a sync re-embedding changed files or a new model), so that a
	// run of such batches does not pay a failed COPY each.
	pathLookup
	// pathStaged COPYs into a temp table, then INSERT ... ON CONFLICT (id)
	// DO UPDATE.
	pathStaged
)

// writeTx writes the batch in tx; staged reports whether its rows took the
// staged path.
func writeTx(ctx context.Context, tx pgx.Tx, q queries, p prepared, run *schema.Run, path copyPath) (staged bool, err error) {
	if len(p.failures) > 0 {
		var bt pgx.Batch
		for i, f := range p.failures {
			bt.Queue(q.upsertFailure, f.ID, f.Source, f.Key, f.Size, p.fmtimes[i], f.ETag, f.SHA256, f.ModelID,
				f.Stage, string(f.Class), f.Reason, int32(f.Attempts), f.FirstSeen, f.LastSeen)
		}
		if err := tx.SendBatch(ctx, &bt).Close(); err != nil {
			return false, fmt.Errorf("ledger entries: %w", err)
		}
	}
	if len(p.upserts) > 0 {
		src := pgx.CopyFromSlice(len(p.upserts), func(i int) ([]any, error) {
			if testHookCopyRow != nil {
				testHookCopyRow(i)
			}
			return p.upserts[i], nil
		})
		direct := path == pathDirect
		if path == pathLookup {
			// QueryExecModeExec: planned on every call with the current
			// table size. A cached generic plan, made while the table was
			// small (a backfill's first batches), keeps scanning the whole
			// table as it grows: 14 ms a batch at 10k rows, 0.4 ms with
			// the primary key.
			var exists bool
			if err := tx.QueryRow(ctx, q.anyExists, pgx.QueryExecModeExec, p.ids).Scan(&exists); err != nil {
				return false, fmt.Errorf("look up stored ids: %w", err)
			}
			direct = !exists
		}
		staged = !direct
		if direct {
			if _, err := tx.CopyFrom(ctx, q.itemsIdent, itemColumns, src); err != nil {
				return false, fmt.Errorf("copy rows: %w", err)
			}
			if _, err := tx.Exec(ctx, q.clearLedgerIDs, pgx.QueryExecModeExec, p.ids); err != nil {
				return false, fmt.Errorf("clear ledger entries of upserted rows: %w", err)
			}
		} else {
			if _, err := tx.Exec(ctx, q.createStage); err != nil {
				return false, fmt.Errorf("create stage table: %w", err)
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{stageTable}, itemColumns, src); err != nil {
				return false, fmt.Errorf("copy rows: %w", err)
			}
			if _, err := tx.Exec(ctx, q.mergeStage); err != nil {
				return false, fmt.Errorf("upsert rows: %w", err)
			}
			if _, err := tx.Exec(ctx, q.clearLedger); err != nil {
				return false, fmt.Errorf("clear ledger entries of upserted rows: %w", err)
			}
		}
	}
	if len(p.metadata) > 0 {
		var bt pgx.Batch
		for i, u := range p.metadata {
			bt.Queue(q.updateMeta, u.Size, p.mmtimes[i], u.ETag, u.SHA256, u.ID)
		}
		if err := tx.SendBatch(ctx, &bt).Close(); err != nil {
			return false, fmt.Errorf("metadata updates: %w", err)
		}
	}
	if run != nil {
		r := run
		var ended *time.Time
		if !r.EndedAt.IsZero() {
			ended = &r.EndedAt
		}
		if _, err := tx.Exec(ctx, q.upsertRun, r.ID, r.Job, r.Kind, r.Source, r.Shard, r.ModelID, r.StartedAt, ended,
			string(r.Outcome), r.Error, r.Listed, r.Written, r.Extracted, r.Reused, r.Unchanged, r.Failed, r.Skipped, r.Deleted,
			r.Runner.Host, r.Runner.BootID, r.Runner.PIDNS, r.Runner.PID, r.Runner.Start); err != nil {
			return false, fmt.Errorf("run %s: %w", r.ID, err)
		}
	}
	return staged, nil
}

// Delete removes the rows and ledger entries of ids in source, in one
// transaction. Ids of other sources are left alone.
func (s *Sink) Delete(ctx context.Context, source string, ids []string) error {
	pool, _, err := s.state(true)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return ctx.Err()
	}
	desc := fmt.Sprintf("delete %d ids of %s", len(ids), source)
	err = s.waitLocks(ctx, desc, pool, func() error {
		return withRetries(ctx, s.retryPolicy, func() error {
			return s.inTx(ctx, pool, func(tx pgx.Tx) error {
				for _, table := range []string{s.names.Qualified(""), s.names.Qualified("_failures")} {
					if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE source = $1 AND id = ANY($2)`, source, ids); err != nil {
						return fmt.Errorf("%s: %w", table, err)
					}
				}
				return nil
			})
		})
	})
	return s.wrap(desc, err)
}
