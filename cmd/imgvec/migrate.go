package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/sinks"
)

func newMigrateCmd() *cobra.Command {
	var sinkURI string
	var dryRun bool
	var target int
	var cf configFlags
	cmd := &cobra.Command{
		Use:       "migrate up|down|status [--sink URI]",
		Short:     "Apply, roll back or show the sink's schema migrations",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"up", "down", "status"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cf.applySink(cmd.Flags(), &sinkURI); err != nil {
				return err
			}
			ctx := cmd.Context()
			sink, err := wiring.NewSink(sinkURI, false, "")
			if err != nil {
				return err
			}
			mg, ok := sink.(sinks.Migrator)
			if !ok {
				return fmt.Errorf("migrate: sink %s has no migrations", sinks.Redact(sinkURI))
			}
			out := cmd.OutOrStdout()
			if lz, ok := sink.(sinks.Lazy); ok && (args[0] != "up" || dryRun) {
				// Only `migrate up` creates the database.
				name, absent, err := lz.Absent()
				if err != nil {
					return err
				}
				if absent {
					ms, err := lz.Migrations()
					if err != nil {
						return err
					}
					fmt.Fprintf(out, "database %s does not exist yet: schema version 0 of %d\n", name, len(ms))
					for _, m := range ms {
						if args[0] != "down" {
							fmt.Fprintf(out, "  pending  %04d %s\n", m.Version, m.Name)
						}
					}
					return nil
				}
			}
			open := mg.OpenMigrator
			if rm, ok := sink.(sinks.ReadMigrator); ok && (args[0] == "status" || dryRun) {
				open = rm.OpenMigratorRead // they only read: a read-only copy will do
			}
			m, err := open(ctx)
			if err != nil {
				return err
			}
			defer sink.Close()
			opts := migrations.Options{DryRun: dryRun, TargetVersion: target}
			var res migrations.Result
			switch args[0] {
			case "status":
				st, err := m.Status(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "schema version %d of %d\n", st.Current, st.Latest)
				for _, a := range st.Applied {
					fmt.Fprintf(out, "  applied  %04d\n", a.Version)
				}
				for _, p := range st.Pending {
					fmt.Fprintf(out, "  pending  %04d %s\n", p.Version, p.Name)
				}
				return nil
			case "up":
				res, err = m.Up(ctx, opts)
			case "down":
				res, err = m.Down(ctx, opts)
			default:
				return wiring.Usagef("migrate: want up, down or status, not %q", args[0])
			}
			for _, s := range res.Steps {
				if res.DryRun {
					fmt.Fprintf(out, "would %s %04d %s\n", s.Direction, s.Version, s.Name)
					continue
				}
				fmt.Fprintf(out, "%s %04d %s (%s)\n", s.Direction, s.Version, s.Name, s.Duration.Round(time.Millisecond))
			}
			if err == nil && len(res.Steps) == 0 {
				fmt.Fprintln(out, "nothing to do")
			}
			return err
		},
	}
	cmd.Flags().StringVar(&sinkURI, "sink", defaultSink, "sqlite://PATH or postgres://…")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the steps without applying them")
	cmd.Flags().IntVar(&target, "to", 0, "up: highest version to apply; down: version to end at (default one step)")
	cf.register(cmd.Flags())
	cf.registerJob(cmd.Flags())
	return cmd
}
