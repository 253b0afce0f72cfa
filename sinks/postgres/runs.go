package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

var _ connector.RunAbandoner = (*Sink)(nil)

// AbandonRuns implements connector.RunAbandoner, fenced like Write.
func (s *Sink) AbandonRuns(ctx context.Context, job string, endedAt time.Time, reason string) (int64, error) {
	pool, _, err := s.state(true)
	if err != nil {
		return 0, err
	}
	var n int64
	err = s.waitLocks(ctx, "close abandoned runs of job "+job, pool, func() error {
		return s.inTx(ctx, pool, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `UPDATE `+s.names.Qualified("_runs")+` SET outcome = $1, ended_at = $2, error = $3
WHERE job = $4 AND outcome = $5`, string(schema.RunAbandoned), endedAt, reason, job, string(schema.RunRunning))
			n = tag.RowsAffected()
			return err
		})
	})
	return n, s.wrap("close abandoned runs of job "+job, err)
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
