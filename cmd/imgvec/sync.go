package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/sinks"
)

// addConnectorCommands adds the commands that work on a sink.
func addConnectorCommands(root *cobra.Command, g *globalFlags) {
	root.AddCommand(
		newRunCmd(g, connector.KindSync, "sync", "One incremental pass: extract new and changed images, delete vanished ones"),
		newRunCmd(g, connector.KindBackfill, "backfill", "One-shot full load (resumable; never deletes)"),
		newSearchCmd(g), newStatusCmd(), newMigrateCmd(), newIndexCmd(), newConfigCmd(),
	)
}

// runSettings are what a sync or backfill run takes from its flags, or
// from a config job (settingsFromJob) with the flags given on top.
type runSettings struct {
	model       modelFlags
	source      sourceFlags
	sources     []string
	sink        string
	job         string
	dryRun      bool
	retryFailed bool
	maxDelete   string
	grace       time.Duration
	workers     int
	index       string
	lockDSN     string
}

// register binds the run flags of a command of the given kind to s.
func (s *runSettings) register(fs *pflag.FlagSet, kind string) {
	s.model.register(fs)
	fs.StringVar(&s.index, "index", "", "PostgreSQL vector index: exact (none) or binary (HNSW on binary-quantized vectors + exact re-rank; built after the load when missing)")
	fs.StringArrayVar(&s.sources, "source", nil, "image folder (path or file:// URI); repeatable")
	fs.StringVar(&s.sink, "sink", defaultSink, "where vectors go: sqlite://PATH or postgres://USER@HOST:PORT/DB?schema=S&table=T")
	jobVar(fs, &s.job, "job name recorded with the run; with --config, the job to run. A named job takes the job's lease: one runner per job at a time")
	fs.StringVar(&s.lockDSN, "lock-dsn", "", "PostgreSQL database holding job leases (default: the sink's own database, or a lock file beside a SQLite sink)")
	fs.BoolVar(&s.dryRun, "dry-run", false, "print the plan (new, changed, unchanged, moved, to delete, failed, estimated time) and change nothing")
	fs.BoolVar(&s.retryFailed, "retry-failed", false, "retry items in the failure ledger even if they did not change")
	rangeVar(fs, &s.grace, "grace", "", config.DefaultGrace, config.GraceRange, "on SIGINT/SIGTERM, how long in-flight batches may take to commit")
	rangeVar(fs, &s.workers, "workers", "", 0, config.WorkersRange, "decode workers; 0 = number of CPUs")
	fs.StringSliceVar(&s.source.include, "include", nil, "glob of keys to include (repeatable, ** allowed)")
	fs.StringSliceVar(&s.source.exclude, "exclude", nil, "glob of keys to exclude (repeatable)")
	fs.StringSliceVar(&s.source.extensions, "ext", nil, "file extensions to list (default jpg,jpeg,png,gif,webp,bmp,tif,tiff)")
	fs.BoolVar(&s.source.followSymlinks, "follow-symlinks", false, "follow symbolic links (loops are detected)")
	rangeVar(fs, &s.source.maxBytes, "max-bytes", "", config.DefaultMaxBytes, config.MaxBytesRange, "refuse files larger than this many bytes")
	if kind == connector.KindSync {
		fs.StringVar(&s.maxDelete, "max-delete", "", "abort deletion when more items vanished than this count or percentage (e.g. 100 or 10%)")
	}
}

// settingsFromJob is what the flags would hold for the job's settings.
// --dry-run has no config key: it stays a command-line choice.
func settingsFromJob(j config.Job) runSettings {
	return runSettings{
		model: modelFlags{
			model: j.Model, layer: j.Layer, pool: j.Pool, preprocess: j.Preprocess, batch: j.Batch, device: j.Device, threads: j.Threads,
			noNormalize: j.NoNormalize, ignoreOrientation: j.IgnoreExifOrientation, maxPixels: j.MaxPixels, download: j.Download,
		},
		source: sourceFlags{
			include: j.Include, exclude: j.Exclude, extensions: j.Extensions,
			followSymlinks: j.FollowSymlinks, maxBytes: j.MaxBytes,
		},
		sources: j.Sources, sink: j.Sink, job: j.Name, retryFailed: j.RetryFailed,
		maxDelete: j.MaxDelete, grace: j.Grace, workers: j.Workers, index: j.Index, lockDSN: j.LockDSN,
	}
}

func newRunCmd(g *globalFlags, kind, use, short string) *cobra.Command {
	var (
		s  runSettings
		cf configFlags
	)
	cmd := &cobra.Command{
		Use:   use + " (--source PATH [--source PATH...] [--sink URI] | --config FILE [--job NAME])",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			j, ok, err := cf.job(s.job)
			if err != nil {
				return err
			}
			if ok {
				if err := applyJob(cmd.Flags(), func() { s = settingsFromJob(j) }); err != nil {
					return err
				}
			}
			if len(s.sources) == 0 {
				return usagef("%s: at least one --source (or --config FILE) is required", use)
			}
			md, err := connector.ParseMaxDelete(s.maxDelete)
			if err != nil {
				return usageError{err.Error()}
			}
			ctx := cmd.Context()
			sink, err := newSink(s.sink, !s.dryRun, s.index)
			if err != nil {
				return err
			}
			opts := connector.Options{
				Sink: sink, Kind: kind, Job: s.job, RetryFailed: s.retryFailed, MaxDelete: md,
				Grace: s.grace, PrepareWorkers: s.workers, Logger: slog.Default(),
			}
			if s.dryRun {
				m, err := s.model.loadModel(ctx)
				if err != nil {
					return err
				}
				opts.Model = m.Identity(!s.model.noNormalize)
			} else {
				x, err := s.model.extractor(ctx)
				if err != nil {
					return err
				}
				defer x.Close()
				opts.Embedder = x
				opts.Model = x.Identity()
			}
			opts.StartedAt = time.Now() // the first run's duration counts the sink's waits at Open
			if err := sink.Open(ctx, opts.Model); err != nil {
				return err
			}
			defer sink.Close()
			if !s.dryRun {
				w, release, err := oneShotLease(ctx, s.job, s.sink, s.lockDSN, sink, slog.Default())
				if err != nil {
					return err
				}
				defer release()
				opts.Sink = w
			}
			errs := make([]error, 0, len(s.sources))
			for _, ref := range s.sources {
				src, err := s.source.openSource(ref)
				if err != nil {
					return err
				}
				opts.Source = src
				opts.Progress = newProgress(cmd.ErrOrStderr(), g.quiet, use)
				syn, err := connector.NewSyncer(opts)
				if err != nil {
					src.Close()
					return err
				}
				if s.dryRun {
					plan, err := syn.Plan(ctx)
					src.Close()
					if err != nil {
						return err
					}
					printPlan(cmd, ctx, sink, plan)
					continue
				}
				run, err := runSyncer(ctx, syn)
				opts.StartedAt = time.Time{}
				src.Close()
				printRun(cmd, run)
				errs = append(errs, runError(run, err))
				if err != nil && !errorsIsItemOnly(err) {
					break
				}
			}
			if err := buildDeferredIndex(ctx, cmd, sink); err != nil {
				errs = append(errs, err)
			}
			return joinRunErrors(errs)
		},
	}
	s.register(cmd.Flags(), kind)
	cf.register(cmd.Flags())
	return cmd
}

// buildDeferredIndex builds the vector index a PostgreSQL sink left for the
// end of the run (a backfill into an empty table loads first, then indexes:
// a live index slows bulk loads). After a signal it only says how to build
// it later.
func buildDeferredIndex(ctx context.Context, cmd *cobra.Command, s sinks.Sink) error {
	ix, ok := s.(connector.IndexManager)
	if !ok || !ix.IndexDeferred() {
		return nil
	}
	if ctx.Err() != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), "vector index not built (run stopped); build it with `imgvec index create binary --sink …`")
		return nil
	}
	start := time.Now()
	info, built, err := ix.BuildDeferredIndex(context.WithoutCancel(ctx), connector.IndexOptions{})
	if err != nil {
		return fmt.Errorf("build deferred index: %w", err)
	}
	if built {
		fmt.Fprintf(cmd.ErrOrStderr(), "built index %s (%s, %d MiB) in %s\n", info.Name, info.Strategy, info.SizeBytes>>20, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// errorsIsItemOnly is true for errors after which the next source can
// still run: an incomplete listing or a refused deletion.
func errorsIsItemOnly(err error) bool {
	var dg *connector.DeleteGuardError
	return errors.As(err, &dg) || errors.Is(err, connector.ErrIncompleteListing)
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
	fmt.Fprintf(cmd.ErrOrStderr(), "%s %s: %s in %s — listed %d, written %d (extracted %d, reused %d), unchanged %d, failed %d, deleted %d\n",
		r.Kind, schema.Printable(r.Source), r.Outcome, r.EndedAt.Sub(r.StartedAt).Round(time.Millisecond),
		r.Listed, r.Written, r.Extracted, r.Reused, r.Unchanged, r.Failed, r.Deleted)
}

func newSearchCmd(g *globalFlags) *cobra.Command {
	var (
		mf      modelFlags
		sinkURI string
		image   string
		id      string
		k       int
		asJSON  bool
		cf      configFlags
	)
	cmd := &cobra.Command{
		Use:   "search (--image FILE | --id ID) [-k N] [--json]",
		Short: "Find the stored images most similar to an image file or a stored item",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (image == "") == (id == "") {
				return usagef("search: give exactly one of --image FILE or --id ID")
			}
			j, ok, err := cf.job(cf.name)
			if err != nil {
				return err
			}
			if ok {
				// The job's model and sink: a query must be embedded the
				// way the job embedded what it stored.
				err := applyJob(cmd.Flags(), func() {
					s := settingsFromJob(j)
					mf, sinkURI = s.model, s.sink
				})
				if err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			sink, err := newSink(sinkURI, false, "")
			if err != nil {
				return err
			}
			var query []float32
			var modelID string
			if image != "" {
				x, err := mf.extractor(ctx)
				if err != nil {
					return err
				}
				defer x.Close()
				data, err := os.ReadFile(image)
				if err != nil {
					return fmt.Errorf("search: %w", err)
				}
				p, err := x.Prepare(image, data)
				if err != nil {
					return fmt.Errorf("search: %w", err)
				}
				res, err := x.Infer(ctx, []*schema.Prepared{p})
				x.Release(p)
				if err != nil {
					return fmt.Errorf("search: %w", err)
				}
				if res[0].Err != nil {
					return fmt.Errorf("search: %w", res[0].Err)
				}
				query, modelID = res[0].Vector, x.Identity().ID()
			}
			if err := sink.OpenRead(ctx); err != nil {
				return err
			}
			defer sink.Close()
			if id != "" {
				rec, ok, err := sink.Get(ctx, id)
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("search: no stored item with id %s", id)
				}
				query, modelID = rec.Vector, rec.ModelID
			}
			hits, err := sink.Search(ctx, modelID, query, k+boolInt(id != ""))
			if err != nil {
				return err
			}
			hits = dropID(hits, id, k)
			return printHits(cmd, hits, modelID, asJSON)
		},
	}
	f := cmd.Flags()
	mf.register(f)
	f.StringVar(&sinkURI, "sink", defaultSink, "where vectors are: sqlite://PATH or postgres://…")
	f.StringVar(&image, "image", "", "query image file")
	f.StringVar(&id, "id", "", "query by a stored item id (searches among that item's model id)")
	rangeVar(f, &k, "k", "k", 10, config.SearchKRange, "number of results")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	cf.register(f)
	cf.registerJob(f)
	return cmd
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// dropID removes the query item itself from its own neighbours.
func dropID(hits []connector.Hit, id string, k int) []connector.Hit {
	out := hits[:0]
	for _, h := range hits {
		if id == "" || h.ID != id {
			out = append(out, h)
		}
	}
	if len(out) > k {
		out = out[:k]
	}
	return out
}

type jsonHit struct {
	Rank     int     `json:"rank"`
	ID       string  `json:"id"`
	Source   string  `json:"source"`
	Key      string  `json:"key"`
	Distance float64 `json:"distance"`
	ModelID  string  `json:"model_id"`
}

func printHits(cmd *cobra.Command, hits []connector.Hit, modelID string, asJSON bool) error {
	out := cmd.OutOrStdout()
	if asJSON {
		rows := make([]jsonHit, len(hits))
		for i, h := range hits {
			rows[i] = jsonHit{Rank: i + 1, ID: h.ID, Source: h.Source, Key: h.Key, Distance: h.Distance, ModelID: modelID}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(hits) == 0 {
		fmt.Fprintf(out, "no stored vectors for model %s (run imgvec sync with the same --model)\n", modelID)
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RANK\tDISTANCE\tKEY\tID")
	for i, h := range hits {
		fmt.Fprintf(tw, "%d\t%.4f\t%s\t%s\n", i+1, h.Distance, schema.Printable(h.Key), h.ID)
	}
	return tw.Flush()
}
