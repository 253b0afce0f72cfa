package milvus

import (
	"context"
	"fmt"
	"time"

	"github.com/milvus-io/milvus-sdk-go/v2/client"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// The runs collection has no runner fields (and Milvus 2.3 cannot add
// fields to a collection), so the sink does not implement
// connector.DeadRunAbandoner: a killed one-shot run stays "running" until
// the next holder of its job's lease closes it (AbandonRuns).
var _ connector.RunAbandoner = (*Sink)(nil)

// AbandonRuns implements connector.RunAbandoner: the job's runs still
// "running" are read at Strong consistency and upserted closed. Milvus has
// no transactions; a crash in between leaves some open, and the next
// holder of the job's lease closes them.
func (s *Sink) AbandonRuns(ctx context.Context, job, shard string, endedAt time.Time, reason string) (int64, error) {
	c, _, model, err := s.state()
	if err != nil {
		return 0, err
	}
	if model == nil {
		return 0, fmt.Errorf("milvus sink %s: opened read-only (OpenRead); AbandonRuns needs Open with a model", s.cfg.base)
	}
	var left []schema.Run
	expr := eq(fJob, job) + " && " + eq(fOutcome, string(schema.RunRunning))
	err = scan(ctx, c, s.cfg.runsName(), expr, runFields, func(rs client.ResultSet) error {
		for i := range rs.Len() {
			left = append(left, row{rs, i}.run())
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("milvus sink %s: read open runs of job %s: %w", s.cfg.base, job, err)
	}
	for _, r := range left {
		r.Outcome, r.EndedAt, r.Error = schema.RunAbandoned, endedAt, reason
		if err := s.upsertRun(ctx, c, r); err != nil {
			return 0, fmt.Errorf("milvus sink %s: close run %s of job %s: %w", s.cfg.base, r.ID, job, err)
		}
	}
	return int64(len(left)), nil
}
