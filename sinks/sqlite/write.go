package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// row is an upsert ready for the database.
type row struct {
	rec      schema.Record
	mtime    sql.NullInt64
	metadata string
	vector   []byte
}

type failureRow struct {
	f     schema.Failure
	mtime sql.NullInt64
}

type metaRow struct {
	u     connector.MetaUpdate
	mtime sql.NullInt64
}

// prepared is a batch validated and encoded before any I/O.
type prepared struct {
	upserts  []row
	failures []failureRow
	metadata []metaRow
}

// prepare validates (connector.Batch.Normalize: dedupe, model, dimension,
// finiteness, defaults) and encodes b before any I/O.
func prepare(b connector.Batch, model schema.ModelIdentity, now time.Time) (prepared, error) {
	nb, err := b.Normalize(model, now)
	if err != nil {
		return prepared{}, err
	}
	var p prepared
	for _, r := range nb.Upserts {
		md, err := encodeMetadata(r.Metadata)
		if err != nil {
			return prepared{}, fmt.Errorf("upsert %s: metadata: %w", connector.ItemName(r.ID, r.Key), err)
		}
		p.upserts = append(p.upserts, row{rec: r, mtime: mtimeNS(r.MTime), metadata: md, vector: encodeVector(r.Vector)})
	}
	for _, f := range nb.Failures {
		p.failures = append(p.failures, failureRow{f: f, mtime: mtimeNS(f.MTime)})
	}
	for _, u := range nb.Metadata {
		p.metadata = append(p.metadata, metaRow{u: u, mtime: mtimeNS(u.MTime)})
	}
	return p, nil
}

const upsertItem = `INSERT INTO items
	(id, source, key, size, mtime_ns, etag, sha256, width, height, format, model_id, layer, dim, extracted_at, metadata, vector)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
	source = excluded.source, key = excluded.key, size = excluded.size, mtime_ns = excluded.mtime_ns,
	etag = excluded.etag, sha256 = excluded.sha256, width = excluded.width, height = excluded.height,
	format = excluded.format, model_id = excluded.model_id, layer = excluded.layer, dim = excluded.dim,
	extracted_at = excluded.extracted_at, metadata = excluded.metadata, vector = excluded.vector`

// A ledger upsert counts a new attempt only when last_seen moves forward:
// replaying the same batch (a lost commit reply) changes nothing, and an
// entry older than the stored one is ignored. first_seen is kept.
const upsertFailure = `INSERT INTO failures
	(id, source, key, size, mtime_ns, etag, sha256, model_id, stage, class, reason, attempts, first_seen, last_seen)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
	source = excluded.source, key = excluded.key, size = excluded.size, mtime_ns = excluded.mtime_ns,
	etag = excluded.etag, sha256 = excluded.sha256, model_id = excluded.model_id, stage = excluded.stage,
	class = excluded.class, reason = excluded.reason,
	attempts = CASE WHEN failures.last_seen = excluded.last_seen THEN failures.attempts ELSE failures.attempts + 1 END,
	first_seen = min(failures.first_seen, excluded.first_seen),
	last_seen = excluded.last_seen
WHERE excluded.last_seen >= failures.last_seen`

// runColumns are the columns of a run row, in the order upsertRun binds
// them and scanRuns reads them.
const runColumns = `id, job, kind, source, shard, model_id, started_at, ended_at, outcome, error,
	 listed, written, extracted, reused, unchanged, failed, skipped, deleted,
	 runner_host, runner_boot_id, runner_pid_ns, runner_pid, runner_start`

const upsertRun = `INSERT INTO runs (` + runColumns + `)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
	job = excluded.job, kind = excluded.kind, source = excluded.source, shard = excluded.shard, model_id = excluded.model_id,
	started_at = excluded.started_at, ended_at = excluded.ended_at, outcome = excluded.outcome,
	error = excluded.error, listed = excluded.listed, written = excluded.written,
	extracted = excluded.extracted, reused = excluded.reused, unchanged = excluded.unchanged,
	failed = excluded.failed, skipped = excluded.skipped, deleted = excluded.deleted, runner_host = excluded.runner_host,
	runner_boot_id = excluded.runner_boot_id, runner_pid_ns = excluded.runner_pid_ns,
	runner_pid = excluded.runner_pid, runner_start = excluded.runner_start`

// Write commits b in one transaction: ledger upserts, then row upserts
// (which remove the ledger entries of their ids), then metadata updates
// (rows that do not exist are left alone), then the run row. Vectors are
// checked before any I/O.
func (s *Sink) Write(ctx context.Context, b connector.Batch) error {
	w, model, err := s.writable()
	if err != nil {
		return err
	}
	p, err := prepare(b, model, time.Now())
	if err != nil {
		return fmt.Errorf("sqlite sink %s: write: %w", s.path, err)
	}
	if len(p.upserts) == 0 && len(p.failures) == 0 && len(p.metadata) == 0 && b.Run == nil {
		return ctx.Err()
	}
	desc := fmt.Sprintf("write batch of %d upserts, %d metadata updates, %d ledger entries", len(p.upserts), len(p.metadata), len(p.failures))
	if err := inTx(ctx, w, func(tx *sql.Tx) error { return writeTx(ctx, tx, p, b.Run) }); err != nil {
		return fmt.Errorf("sqlite sink %s: %s: %w", s.path, desc, err)
	}
	return nil
}

func writeTx(ctx context.Context, tx *sql.Tx, p prepared, run *schema.Run) error {
	if len(p.failures) > 0 {
		st, err := tx.PrepareContext(ctx, upsertFailure)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, r := range p.failures {
			f := r.f
			if _, err := st.ExecContext(ctx, f.ID, f.Source, f.Key, f.Size, r.mtime, f.ETag, f.SHA256, f.ModelID,
				f.Stage, string(f.Class), f.Reason, f.Attempts, formatTime(f.FirstSeen), formatTime(f.LastSeen)); err != nil {
				return fmt.Errorf("ledger entry %s: %w", connector.ItemName(f.ID, f.Key), err)
			}
		}
	}
	if len(p.upserts) > 0 {
		st, err := tx.PrepareContext(ctx, upsertItem)
		if err != nil {
			return err
		}
		defer st.Close()
		del, err := tx.PrepareContext(ctx, `DELETE FROM failures WHERE id = ?`)
		if err != nil {
			return err
		}
		defer del.Close()
		for _, u := range p.upserts {
			r := u.rec
			if _, err := st.ExecContext(ctx, r.ID, r.Source, r.Key, r.Size, u.mtime, r.ETag, r.SHA256, r.Width, r.Height,
				r.Format, r.ModelID, r.Layer, r.Dim, formatTime(r.ExtractedAt), u.metadata, u.vector); err != nil {
				return fmt.Errorf("upsert %s: %w", connector.ItemName(r.ID, r.Key), err)
			}
			if _, err := del.ExecContext(ctx, r.ID); err != nil {
				return fmt.Errorf("clear ledger entry %s: %w", connector.ItemName(r.ID, r.Key), err)
			}
		}
	}
	if len(p.metadata) > 0 {
		st, err := tx.PrepareContext(ctx, `UPDATE items SET size = ?, mtime_ns = ?, etag = ?,
			sha256 = CASE WHEN ? = '' THEN sha256 ELSE ? END WHERE id = ?`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, m := range p.metadata {
			u := m.u
			if _, err := st.ExecContext(ctx, u.Size, m.mtime, u.ETag, u.SHA256, u.SHA256, u.ID); err != nil {
				return fmt.Errorf("metadata update %s: %w", u.ID, err)
			}
		}
	}
	if run != nil {
		r := run
		if _, err := tx.ExecContext(ctx, upsertRun, r.ID, r.Job, r.Kind, r.Source, r.Shard, r.ModelID, formatTime(r.StartedAt),
			formatNullTime(r.EndedAt), string(r.Outcome), r.Error, r.Listed, r.Written, r.Extracted, r.Reused,
			r.Unchanged, r.Failed, r.Skipped, r.Deleted, r.Runner.Host, r.Runner.BootID, r.Runner.PIDNS, r.Runner.PID, r.Runner.Start); err != nil {
			return fmt.Errorf("run %s: %w", r.ID, err)
		}
	}
	return nil
}

// inTx runs fn in a write transaction and commits it; any error (including
// a cancelled ctx before the commit) rolls everything back.
func inTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// maxVars bounds the bind parameters of one IN (...) list.
const maxVars = 500

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// Delete removes the rows and ledger entries of ids in source, in one
// transaction. Ids of other sources are left alone.
func (s *Sink) Delete(ctx context.Context, source string, ids []string) error {
	w, _, err := s.writable()
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return ctx.Err()
	}
	err = inTx(ctx, w, func(tx *sql.Tx) error {
		for start := 0; start < len(ids); start += maxVars {
			chunk := ids[start:min(start+maxVars, len(ids))]
			args := make([]any, 0, len(chunk)+1)
			args = append(args, source)
			for _, id := range chunk {
				args = append(args, id)
			}
			for _, table := range []string{"items", "failures"} {
				q := `DELETE FROM ` + table + ` WHERE source = ? AND id IN (` + placeholders(len(chunk)) + `)`
				if _, err := tx.ExecContext(ctx, q, args...); err != nil {
					return fmt.Errorf("%s: %w", table, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite sink %s: delete %d ids of %s: %w", s.path, len(ids), source, err)
	}
	return nil
}
