package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"

	"github.com/spf13/cobra"

	"github.com/imgvec/imgvec/schema"
)

func newStatusCmd() *cobra.Command {
	var sinkURI string
	var asJSON bool
	var cf configFlags
	cmd := &cobra.Command{
		Use:   "status [--sink URI] [--json]",
		Short: "Show what the sink holds: rows per model id, failures by class, recent failures and runs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cf.applySink(cmd.Flags(), &sinkURI); err != nil {
				return err
			}
			ctx := cmd.Context()
			sink, err := wiring.NewSink(sinkURI, false, "")
			if err != nil {
				return err
			}
			if err := sink.OpenRead(ctx); err != nil {
				return err
			}
			defer sink.Close()
			st, err := sink.Status(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "MODEL ID\tLAYER\tDIM\tROWS")
			for _, m := range st.Models {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", m.ModelID, m.Layer, m.Dim, m.Rows)
			}
			tw.Flush()
			fmt.Fprintf(out, "\nfailure ledger: %d", st.Failures)
			classes := make([]string, 0, len(st.ByClass))
			for c := range st.ByClass {
				classes = append(classes, c)
			}
			sort.Strings(classes)
			for _, c := range classes {
				fmt.Fprintf(out, "  %s=%d", c, st.ByClass[c])
			}
			fmt.Fprintln(out)
			for _, f := range st.Recent {
				fmt.Fprintf(out, "  %s  %-18s %s: %s (attempts %d)\n", f.LastSeen.Format(time.RFC3339), f.Class, schema.Printable(f.Key), schema.Printable(f.Reason), f.Attempts)
			}
			if len(st.Runs) > 0 {
				fmt.Fprintln(out, "\nrecent runs:")
				tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "STARTED\tJOB\tSHARD\tKIND\tOUTCOME\tTOOK\tLISTED\tWRITTEN\tUNCHANGED\tFAILED\tSKIPPED\tDELETED\tSOURCE")
				var errs []string
				for _, r := range st.Runs {
					job, shard, took := cmp.Or(schema.Printable(r.Job), "-"), cmp.Or(r.Shard, "-"), "-"
					if !r.EndedAt.IsZero() {
						took = r.EndedAt.Sub(r.StartedAt).Round(time.Millisecond).String()
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", r.StartedAt.Format(time.RFC3339), job, shard, r.Kind, r.Outcome,
						took, r.Listed, r.Written, r.Unchanged, r.Failed, r.Skipped, r.Deleted, schema.Printable(r.Source))
					if r.Error != "" {
						errs = append(errs, fmt.Sprintf("  %s %s: %s", r.StartedAt.Format(time.RFC3339), r.Outcome, schema.Printable(r.Error)))
					}
				}
				tw.Flush()
				for _, e := range errs {
					fmt.Fprintln(out, e)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&sinkURI, "sink", defaultSink, "sqlite://PATH or postgres://…")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cf.register(cmd.Flags())
	cf.registerJob(cmd.Flags())
	return cmd
}
