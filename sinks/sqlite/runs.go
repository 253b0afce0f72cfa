package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

var _ connector.RunAbandoner = (*Sink)(nil)

// AbandonRuns implements connector.RunAbandoner.
func (s *Sink) AbandonRuns(ctx context.Context, job string, endedAt time.Time, reason string) (int64, error) {
	w, _, err := s.writable()
	if err != nil {
		return 0, err
	}
	var n int64
	err = inTx(ctx, w, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE runs SET outcome = ?, ended_at = ?, error = ? WHERE job = ? AND outcome = ?`,
			string(schema.RunAbandoned), formatTime(endedAt), reason, job, string(schema.RunRunning))
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

// holdsData is the migrations.DataProbe of AutoMigrateFresh: whether any
// table holds a row (called once the first migration created them).
func (s *Sink) holdsData(ctx context.Context) (bool, error) {
	var has bool
	err := s.writer.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM items) OR EXISTS (SELECT 1 FROM failures) OR EXISTS (SELECT 1 FROM runs)`).Scan(&has)
	return has, err
}
