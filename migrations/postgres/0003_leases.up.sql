-- Job leases: one active runner per job across replicas (imgvec serve,
-- and sync/backfill given --job). A runner takes the row when it is free
-- or expired, bumping epoch; it renews expires_at while it runs; every
-- batch commit checks (holder, epoch, expires_at > clock_timestamp()) with
-- FOR SHARE in the same transaction, so a runner whose lease was taken over
-- cannot commit (see sinks/postgres/lease.go).
CREATE TABLE {{table "_leases"}} (
    job         text PRIMARY KEY,
    holder      text NOT NULL,
    epoch       bigint NOT NULL CHECK (epoch > 0),
    acquired_at timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- Run history by job ("imgvec status", and SQL over the runs table).
CREATE INDEX {{name "_runs_job"}} ON {{table "_runs"}} (job, started_at);
