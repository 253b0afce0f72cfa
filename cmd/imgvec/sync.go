package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"
	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/jobrun"
	"github.com/imgvec/imgvec/schema"
)

// addConnectorCommands adds the commands that work on a sink.
func addConnectorCommands(root *cobra.Command, g *globalFlags) {
	root.AddCommand(
		newRunCmd(g, connector.KindSync, "sync", "One incremental pass: extract new and changed images, delete vanished ones"),
		newRunCmd(g, connector.KindBackfill, "backfill", "One-shot full load (resumable; never deletes)"),
		newSearchCmd(g), newMapCmd(), newStatusCmd(), newMigrateCmd(), newIndexCmd(), newConfigCmd(), newExportCmd(), newDupesCmd(),
	)
}

// registerRunFlags binds the flags of a sync or backfill onto j's fields:
// the settings of a config job, which applyJob puts under the flags given.
func registerRunFlags(fs *pflag.FlagSet, j *config.Job, kind string) {
	registerModelFlags(fs, j)
	registerSourceFlags(fs, j)
	fs.StringVar(&j.Index, "index", "", "PostgreSQL vector index: exact (none) or binary (HNSW on binary-quantized vectors + exact re-rank; built after the load when missing)")
	fs.StringArrayVar(&j.Sources, "source", nil, "image folder (path or file:// URI), s3://BUCKET/PREFIX[?endpoint=URL&region=R&path_style=true], or URL manifest (.jsonl/.csv/.tsv[.gz], path or http(s) URL); repeatable")
	fs.StringVar(&j.Sink, "sink", defaultSink, "where vectors go: sqlite://PATH, postgres://USER@HOST:PORT/DB?schema=S&table=T or milvus://HOST:PORT?collection=NAME")
	jobVar(fs, &j.Name, "job name recorded with the run; with --config, the job to run. A named job takes the job's lease: one runner per job at a time")
	fs.StringVar(&j.LockDSN, "lock-dsn", "", "PostgreSQL database holding job leases (default: the sink's own database, or a lock file beside a SQLite sink)")
	fs.BoolVar(&j.RetryFailed, "retry-failed", false, "retry items in the failure ledger even if they did not change")
	shardVar(fs, &j.Shard, "I/N: handle only shard I of N of the items (by item id; N runs with I = 0..N-1 cover them once); the lease is per job and shard")
	rangeVar(fs, &j.Grace, "grace", "", config.DefaultGrace, config.GraceRange, "on SIGINT/SIGTERM, how long in-flight batches may take to commit")
	rangeVar(fs, &j.Workers, "workers", "", 0, config.WorkersRange, "decode workers; 0 = number of CPUs")
	if kind == connector.KindSync {
		fs.StringVar(&j.MaxDelete, "max-delete", "", "abort deletion when more items vanished than this count or percentage (e.g. 100 or 10%)")
	}
}

func newRunCmd(g *globalFlags, kind, use, short string) *cobra.Command {
	var (
		j       config.Job
		dryRun  bool
		reshard bool
		cf      configFlags
	)
	cmd := &cobra.Command{
		Use:   use + " (--source PATH [--source PATH...] [--sink URI] | --config FILE [--job NAME])",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fileJob, ok, err := cf.job(j.Name)
			if err != nil {
				return err
			}
			if ok {
				if err := applyJob(cmd.Flags(), func() { j = fileJob }); err != nil {
					return err
				}
			}
			if len(j.Sources) == 0 {
				return wiring.Usagef("%s: at least one --source (or --config FILE) is required", use)
			}
			md, err := connector.ParseMaxDelete(j.MaxDelete)
			if err != nil {
				return wiring.Usage(err)
			}
			shard, err := connector.ParseShard(j.Shard)
			if err != nil {
				return wiring.Usage(err)
			}
			ctx := cmd.Context()
			sink, err := wiring.NewSink(j.Sink, !dryRun, j.Index)
			if err != nil {
				return err
			}
			opts := connector.Options{
				Sink: sink, Kind: kind, Job: j.Name, RetryFailed: j.RetryFailed, MaxDelete: md,
				Shard: shard, Reshard: reshard, Grace: j.Grace, PrepareWorkers: j.Workers, Logger: slog.Default(),
			}
			if dryRun {
				m, err := wiring.LoadModel(ctx, j)
				if err != nil {
					return err
				}
				opts.Model = m.Identity(!j.NoNormalize)
			} else {
				x, err := wiring.OpenExtractor(ctx, j)
				if err != nil {
					return err
				}
				defer x.Close()
				opts.Embedder = x
				opts.Model = x.Identity()
			}
			opts.StartedAt = time.Now() // the first run's duration counts the sink's waits at Open
			open := func(ctx context.Context) error { return sink.Open(ctx, opts.Model) }
			if dryRun {
				open = sink.OpenRead // the plan only reads: a read-only copy will do
			}
			if err := open(ctx); err != nil {
				return err
			}
			defer sink.Close()
			job := jobrun.Job{Sources: j.Sources, Open: wiring.SourceOpener(j), Template: opts}
			if dryRun {
				return jobrun.Plan(ctx, job, func(p connector.Plan) { printPlan(cmd, ctx, sink, p) })
			}
			l, release, err := wiring.OneShotLease(ctx, j.Name, shard, j.Sink, j.LockDSN, slog.Default())
			if err != nil {
				return err
			}
			defer release()
			var itemFailures bool
			job.Progress = func(string) func(connector.Progress) { return newProgress(cmd.ErrOrStderr(), g.quiet, use) }
			job.Finished = func(run schema.Run, _ error) {
				if run.ID != "" {
					printRun(cmd, run)
				}
				itemFailures = itemFailures || run.Failed > 0
			}
			hard, stop := hardStop(ctx)
			defer stop()
			if err := jobrun.Run(ctx, hard, job, l); err != nil {
				return err
			}
			if itemFailures {
				return errItemFailures
			}
			return nil
		},
	}
	registerRunFlags(cmd.Flags(), &j, kind)
	cmd.Flags().BoolVar(&reshard, "reshard", false, "with --shard: run even though the job's runs under another shard count are unfinished (then run all N shards)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan (new, changed, unchanged, moved, to delete, failed, estimated time) and change nothing")
	cf.register(cmd.Flags())
	return cmd
}

func printPlan(cmd *cobra.Command, ctx context.Context, sink connector.StatusReader, p connector.Plan) {
	out := cmd.OutOrStdout()
	fmt.Fprintln(out, schema.Printable(p.String()))
	rate, basis := extractionRate(ctx, sink, p.ModelID)
	if rate <= 0 {
		fmt.Fprintf(out, "estimated time: unknown (%s)\n", basis)
		return
	}
	fmt.Fprintf(out, "estimated time: %s to read and embed %d items at %.1f items/s (%s)\n", p.Estimate(rate), p.ToRead(), rate, basis)
}

// extractionRate estimates items/s from the recent finished runs of the
// model the sink recorded: extracted items over their duration.
func extractionRate(ctx context.Context, sink connector.StatusReader, modelID string) (float64, string) {
	st, err := sink.Status(ctx)
	if err != nil {
		return 0, "could not read past runs: " + err.Error()
	}
	var items int64
	var secs float64
	for _, r := range st.Runs {
		if r.ModelID != modelID || r.EndedAt.IsZero() || r.Extracted == 0 {
			continue
		}
		items += r.Extracted
		secs += r.EndedAt.Sub(r.StartedAt).Seconds()
	}
	if items == 0 || secs <= 0 {
		return 0, "no earlier run of this model to measure the rate from"
	}
	return float64(items) / secs, "the rate of earlier runs of this model"
}

func printRun(cmd *cobra.Command, r schema.Run) {
	shard := ""
	if r.Shard != "" {
		shard = " shard " + r.Shard
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s %s%s: %s in %s — listed %d, written %d (extracted %d, reused %d), unchanged %d, failed %d, skipped %d, deleted %d\n",
		r.Kind, schema.Printable(r.Source), shard, r.Outcome, r.EndedAt.Sub(r.StartedAt).Round(time.Millisecond),
		r.Listed, r.Written, r.Extracted, r.Reused, r.Unchanged, r.Failed, r.Skipped, r.Deleted)
}
