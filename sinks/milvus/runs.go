package milvus

import (
	"context"
	"fmt"
	"time"

	"github.com/milvus-io/milvus-sdk-go/v2/client"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

var (
	_ connector.RunAbandoner     = (*Sink)(nil)
	_ connector.DeadRunAbandoner = (*Sink)(nil)
	_ connector.LatestRunReader  = (*Sink)(nil)
)

// AbandonRuns implements connector.RunAbandoner: the runs of the job's
// shard still "running" are read at Strong consistency and upserted
// closed. Milvus has no transactions; a crash in between leaves some
// open, and the next holder of the shard's lease closes them.
func (s *Sink) AbandonRuns(ctx context.Context, job, shard string, endedAt time.Time, reason string) (int64, error) {
	expr := eq(fJob, job) + " && " + eq(fShard, shard) + " && " + eq(fOutcome, string(schema.RunRunning))
	n, err := s.closeRuns(ctx, expr, func(schema.Run) bool { return true }, endedAt, reason)
	if err != nil {
		return n, fmt.Errorf("milvus sink %s: close abandoned runs of job %s: %w", s.cfg.base, job, err)
	}
	return n, nil
}

// AbandonDeadRuns implements connector.DeadRunAbandoner, like AbandonRuns
// without a transaction: a run closed here was judged gone, so no process
// is left to end it between the read and the upsert.
func (s *Sink) AbandonDeadRuns(ctx context.Context, host string, gone func(schema.Runner) bool, endedAt time.Time, reason string) (int64, error) {
	expr := eq(fRunnerHost, host) + " && " + eq(fOutcome, string(schema.RunRunning))
	n, err := s.closeRuns(ctx, expr, func(r schema.Run) bool { return gone(r.Runner) }, endedAt, reason)
	if err != nil {
		return n, fmt.Errorf("milvus sink %s: close the runs of dead runners of host %s: %w", s.cfg.base, host, err)
	}
	return n, nil
}

// closeRuns marks the runs matching expr for which close says so as
// abandoned.
func (s *Sink) closeRuns(ctx context.Context, expr string, close func(schema.Run) bool, endedAt time.Time, reason string) (int64, error) {
	c, _, model, err := s.state()
	if err != nil {
		return 0, err
	}
	if model == nil {
		return 0, fmt.Errorf("opened read-only (OpenRead); closing runs needs Open with a model")
	}
	var left []schema.Run
	err = scan(ctx, c, s.cfg.runsName(), expr, runFields, func(rs client.ResultSet) error {
		for i := range rs.Len() {
			if r := (row{rs, i}).run(); close(r) {
				left = append(left, r)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read open runs: %w", err)
	}
	for _, r := range left {
		r.Outcome, r.EndedAt, r.Error = schema.RunAbandoned, endedAt, reason
		if err := s.upsertRun(ctx, c, r); err != nil {
			return 0, fmt.Errorf("close run %s: %w", r.ID, err)
		}
	}
	return int64(len(left)), nil
}

// LatestRuns implements connector.LatestRunReader: the job's runs over
// source are read whole (a job has a few runs per schedule tick) and the
// newest of each shard kept.
func (s *Sink) LatestRuns(ctx context.Context, job, source string) ([]schema.Run, error) {
	c, _, _, err := s.state()
	if err != nil {
		return nil, err
	}
	latest := map[string]schema.Run{}
	err = scan(ctx, c, s.cfg.runsName(), eq(fJob, job)+" && "+eq(fSource, source), runFields, func(rs client.ResultSet) error {
		for i := range rs.Len() {
			r := row{rs, i}.run()
			if l, ok := latest[r.Shard]; !ok || connector.NewerRun(r, l) {
				latest[r.Shard] = r
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("milvus sink %s: latest runs of job %q over %s: %w", s.cfg.base, job, source, err)
	}
	runs := make([]schema.Run, 0, len(latest))
	for _, r := range latest {
		runs = append(runs, r)
	}
	return runs, nil
}
