package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

var (
	_ connector.RunAbandoner     = (*Sink)(nil)
	_ connector.DeadRunAbandoner = (*Sink)(nil)
	_ connector.LatestRunReader  = (*Sink)(nil)
)

// AbandonRuns implements connector.RunAbandoner, fenced like Write.
func (s *Sink) AbandonRuns(ctx context.Context, job, shard string, endedAt time.Time, reason string) (int64, error) {
	pool, _, err := s.state(true)
	if err != nil {
		return 0, err
	}
	var n int64
	err = s.waitLocks(ctx, "close abandoned runs of job "+job, pool, func() error {
		return s.inTx(ctx, pool, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `UPDATE `+s.names.Qualified("_runs")+` SET outcome = $1, ended_at = $2, error = $3
WHERE job = $4 AND shard = $5 AND outcome = $6`, string(schema.RunAbandoned), endedAt, reason, job, shard, string(schema.RunRunning))
			n = tag.RowsAffected()
			return err
		})
	})
	return n, s.wrap("close abandoned runs of job "+job, err)
}

// AbandonDeadRuns implements connector.DeadRunAbandoner: the open runs of
// host are read and those whose runner is gone closed, in one (fenced)
// transaction; the rows are locked while gone judges them, so a run that
// ends meanwhile keeps its end.
func (s *Sink) AbandonDeadRuns(ctx context.Context, host string, gone func(schema.Runner) bool, endedAt time.Time, reason string) (int64, error) {
	pool, _, err := s.state(true)
	if err != nil {
		return 0, err
	}
	runs := s.names.Qualified("_runs")
	var n int64
	err = s.waitLocks(ctx, "close the runs of dead runners of host "+host, pool, func() error {
		n = 0
		return s.inTx(ctx, pool, func(tx pgx.Tx) error {
			rows, _ := tx.Query(ctx, `SELECT id, runner_host, runner_boot_id, runner_pid_ns, runner_pid, runner_start FROM `+runs+`
WHERE outcome = $1 AND runner_host = $2 FOR UPDATE`, string(schema.RunRunning), host)
			var dead []string
			var id string
			var r schema.Runner
			if _, err := pgx.ForEachRow(rows, []any{&id, &r.Host, &r.BootID, &r.PIDNS, &r.PID, &r.Start}, func() error {
				if gone(r) {
					dead = append(dead, id)
				}
				return nil
			}); err != nil || len(dead) == 0 {
				return err
			}
			tag, err := tx.Exec(ctx, `UPDATE `+runs+` SET outcome = $1, ended_at = $2, error = $3 WHERE id = ANY($4)`,
				string(schema.RunAbandoned), endedAt, reason, dead)
			n = tag.RowsAffected()
			return err
		})
	})
	return n, s.wrap("close the runs of dead runners of host "+host, err)
}

// holdsData is the migrations.DataProbe of AutoMigrateFresh: whether any
// of the table's tables holds a row (called once the first migration
// created them), on the migration connection.
func (s *Sink) holdsData(ctx context.Context) (bool, error) {
	var has bool
	err := s.migConn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+s.names.Qualified("")+`) OR EXISTS (SELECT 1 FROM `+
		s.names.Qualified("_failures")+`) OR EXISTS (SELECT 1 FROM `+s.names.Qualified("_runs")+`)`).Scan(&has)
	return has, err
}
