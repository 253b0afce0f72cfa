package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

var (
	_ connector.RunAbandoner     = (*Sink)(nil)
	_ connector.DeadRunAbandoner = (*Sink)(nil)
	_ connector.LatestRunReader  = (*Sink)(nil)
)

// AbandonRuns implements connector.RunAbandoner.
func (s *Sink) AbandonRuns(ctx context.Context, job, shard string, endedAt time.Time, reason string) (int64, error) {
	w, _, err := s.writable()
	if err != nil {
		return 0, err
	}
	var n int64
	err = inTx(ctx, w, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE runs SET outcome = ?, ended_at = ?, error = ? WHERE job = ? AND shard = ? AND outcome = ?`,
			string(schema.RunAbandoned), formatTime(endedAt), reason, job, shard, string(schema.RunRunning))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite sink %s: close abandoned runs of job %s: %w", s.path, job, err)
	}
	return n, nil
}

// AbandonDeadRuns implements connector.DeadRunAbandoner: the open runs of
// host are read and those whose runner is gone closed, in one
// transaction.
func (s *Sink) AbandonDeadRuns(ctx context.Context, host string, gone func(schema.Runner) bool, endedAt time.Time, reason string) (int64, error) {
	w, _, err := s.writable()
	if err != nil {
		return 0, err
	}
	var n int64
	err = inTx(ctx, w, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, runner_host, runner_boot_id, runner_pid_ns, runner_pid, runner_start
FROM runs WHERE outcome = ? AND runner_host = ?`, string(schema.RunRunning), host)
		if err != nil {
			return err
		}
		var dead []string
		for rows.Next() {
			var id string
			var r schema.Runner
			if err := rows.Scan(&id, &r.Host, &r.BootID, &r.PIDNS, &r.PID, &r.Start); err != nil {
				rows.Close()
				return err
			}
			if gone(r) {
				dead = append(dead, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range dead {
			res, err := tx.ExecContext(ctx, `UPDATE runs SET outcome = ?, ended_at = ?, error = ? WHERE id = ? AND outcome = ?`,
				string(schema.RunAbandoned), formatTime(endedAt), reason, id, string(schema.RunRunning))
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += k
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite sink %s: close the runs of dead runners of host %s: %w", s.path, host, err)
	}
	return n, nil
}

// holdsData is the migrations.DataProbe of AutoMigrateFresh: whether any
// table holds a row (called once the first migration created them).
func (s *Sink) holdsData(ctx context.Context) (bool, error) {
	var has bool
	err := s.writer.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM items) OR EXISTS (SELECT 1 FROM failures) OR EXISTS (SELECT 1 FROM runs)`).Scan(&has)
	return has, err
}
