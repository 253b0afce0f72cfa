package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"
	"github.com/imgvec/imgvec/connector/redact"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check an imgvec.yaml"}
	var cf configFlags
	check := &cobra.Command{
		Use:   "check --config FILE",
		Short: "Validate a config file and print its jobs with their next runs (exit 2 when invalid)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cf.path == "" {
				return wiring.Usagef("config check: --config FILE is required")
			}
			f, err := config.Load(cf.path)
			var ve *config.ValidationError
			if errors.As(err, &ve) {
				fmt.Fprintln(cmd.ErrOrStderr(), ve)
				return wiring.Usagef("config check: %s: %d problem(s)", cf.path, len(ve.Problems))
			}
			if err != nil {
				return wiring.Usage(err)
			}
			if err := checkSinks(f); err != nil {
				return wiring.Usage(err)
			}
			printConfig(cmd.OutOrStdout(), f, time.Now())
			return nil
		},
	}
	cf.register(check.Flags())
	cmd.AddCommand(check)
	return cmd
}

// checkSinks runs the checks a command would make of each job's sink URI
// before connecting (they need no I/O), so a URI the file's own checks let
// through but the sink refuses is caught here, not at the first run.
func checkSinks(f *config.File) error {
	var errs []error
	for _, j := range f.Jobs {
		if _, err := wiring.NewSink(j.Sink, false, j.Index); err != nil {
			errs = append(errs, fmt.Errorf("%s: job %s: sink: %w", f.Path, j.Name, err))
		}
	}
	return errors.Join(errs...)
}

// printConfig lists the jobs with their effective settings and next three
// runs. URIs are redacted: the file may put passwords in them via ${ENV}.
func printConfig(w io.Writer, f *config.File, now time.Time) {
	fmt.Fprintf(w, "%s: OK, %d job(s)\n", f.Path, len(f.Jobs))
	fmt.Fprintf(w, "serve: listen %s, token from $%s, lease_ttl %s, grace %s, run_on_start %t\n",
		f.Serve.Listen, f.Serve.TokenEnv, f.Serve.LeaseTTL, f.Serve.Grace, f.Serve.RunOnStart)
	for _, j := range f.Jobs {
		fmt.Fprintf(w, "\njob %s\n", j.Name)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  source\t%s\n", strings.Join(j.Sources, ", "))
		fmt.Fprintf(tw, "  sink\t%s\n", redact.URI(j.Sink))
		model := j.Model
		if j.Layer != "" {
			model += " (layer " + j.Layer + ")"
		}
		fmt.Fprintf(tw, "  model\t%s, batch %s, device %s\n", model, config.FormatBatch(j.Batch), j.Device)
		sched, err := j.CronSchedule()
		switch {
		case err != nil:
			fmt.Fprintf(tw, "  schedule\t%s: %v\n", j.Schedule, err)
		case sched == nil:
			fmt.Fprintf(tw, "  schedule\tnone: for the one-shot commands (imgvec serve needs one)\n")
		default:
			loc, _ := time.LoadLocation(j.TimeZone)
			next := make([]string, 3)
			t := now
			for i := range next {
				t = sched.Next(t)
				next[i] = t.In(loc).Format("2006-01-02 15:04:05 MST")
			}
			fmt.Fprintf(tw, "  schedule\t%s (%s)\n", j.Schedule, j.TimeZone)
			fmt.Fprintf(tw, "  next runs\t%s\n", strings.Join(next, ", "))
		}
		tw.Flush()
	}
}
