package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"
	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/jobrun"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/sinks/file"
)

func newEmbedCmd(g *globalFlags) *cobra.Command {
	var j config.Job // the model and folder flags
	var out string
	cmd := &cobra.Command{
		Use:   "embed [flags] PATHS... --out vectors.npy|vectors.jsonl|-",
		Short: "Extract vectors of image files and folders into an .npy matrix (+ .ids.txt) or JSON Lines",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return wiring.Usagef("embed: --out FILE is required (.npy, .jsonl, or - for JSON Lines on stdout)")
			}
			sink, err := file.New(out, cmd.OutOrStdout())
			if err != nil {
				return wiring.Usage(err)
			}
			refs, open, err := embedSources(j, args)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			x, err := wiring.OpenExtractor(ctx, j)
			if err != nil {
				return err
			}
			defer x.Close()
			if err := sink.Open(ctx, x.Identity()); err != nil {
				return err
			}
			published := false
			defer func() {
				if !published {
					sink.Abort()
				}
			}()
			var listed, failed int64
			job := jobrun.Job{
				Sources: refs,
				Open: func(ref string) (connector.Source, error) {
					src, err := open(ref)
					if err != nil {
						return nil, err
					}
					return sink.Track(src), nil // rows in input order
				},
				Template: connector.Options{Sink: sink, Embedder: x, Kind: connector.KindBackfill},
				Progress: func(string) func(connector.Progress) {
					return newProgress(cmd.ErrOrStderr(), g.quiet || out == "-", "embed")
				},
				Finished: func(run schema.Run, _ error) { listed, failed = listed+run.Listed, failed+run.Failed },
			}
			hard, stop := hardStop(ctx)
			defer stop()
			if err := jobrun.Run(ctx, hard, job, jobrun.Lease{}); err != nil {
				return err
			}
			if err := sink.Close(); err != nil {
				return err
			}
			published = true
			printFailureSummary(cmd, sink, listed)
			if failed > 0 {
				return fmt.Errorf("%d of %d images failed: %w", failed, listed, errItemFailures)
			}
			return nil
		},
	}
	registerModelFlags(cmd.Flags(), &j)
	cmd.Flags().StringVarP(&out, "out", "o", "", "output: FILE.npy (+ FILE.ids.txt), FILE.jsonl, or - (JSON Lines on stdout)")
	cmd.Flags().StringSliceVar(&j.Include, "include", nil, "glob of keys to include in folders (repeatable, ** allowed)")
	cmd.Flags().StringSliceVar(&j.Exclude, "exclude", nil, "glob of keys to exclude in folders (repeatable)")
	return cmd
}

func printFailureSummary(cmd *cobra.Command, sink *file.Sink, listed int64) {
	w := cmd.ErrOrStderr()
	fs := sink.Failures()
	fmt.Fprintf(w, "embedded %d of %d images", sink.Rows(), listed)
	if len(fs) == 0 {
		fmt.Fprintln(w)
		return
	}
	byClass := map[string][]string{}
	for _, f := range fs {
		byClass[string(f.Class)] = append(byClass[string(f.Class)], schema.Printable(f.Key))
	}
	classes := make([]string, 0, len(byClass))
	for c := range byClass {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	fmt.Fprintf(w, "; %d failed:\n", len(fs))
	for _, c := range classes {
		keys := byClass[c]
		more := ""
		if len(keys) > 5 {
			keys, more = keys[:5], fmt.Sprintf(" (+%d more)", len(byClass[c])-5)
		}
		fmt.Fprintf(w, "  %-20s %4d  %s%s\n", c, len(byClass[c]), strings.Join(keys, ", "), more)
	}
}
