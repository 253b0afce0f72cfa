package main

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/cmd/imgvec/internal/serve"
	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"
)

func newServeCmd() *cobra.Command {
	var (
		cf         configFlags
		listen     string
		runOnStart bool
		only       []string
		replicaID  string
	)
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Run the config's jobs on their schedules; HTTP /healthz, /readyz, /metrics and manual triggers",
		Long: `serve runs every job of the config file (or those named with --job) on its
cron schedule: one run per job at a time (an overlapping tick is skipped and
counted), one active runner per job across replicas (a lease in PostgreSQL,
or a lock file beside a SQLite database). SIGTERM stops new runs and lets the
running batches commit within the grace period; a second signal aborts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cf.path == "" {
				return wiring.Usagef("serve: --config FILE is required")
			}
			f, err := config.Load(cf.path)
			if err != nil {
				return wiring.Usage(err)
			}
			if cmd.Flags().Changed("listen") {
				f.Serve.Listen = listen
			}
			if cmd.Flags().Changed("run-on-start") {
				f.Serve.RunOnStart = runOnStart
			}
			if cmd.Flags().Changed("replica-id") {
				f.Serve.ReplicaID = replicaID
			}
			srv, err := serve.New(f, only, slog.Default())
			if err != nil {
				return err
			}
			return srv.Run(cmd.Context())
		},
	}
	cf.register(cmd.Flags())
	cmd.Flags().StringVar(&listen, "listen", config.DefaultListen, "HTTP address of /healthz, /readyz, /metrics and POST /v1/jobs/{name}/run")
	cmd.Flags().BoolVar(&runOnStart, "run-on-start", false, "run every job once at start, then on its schedule")
	cmd.Flags().StringArrayVar(&only, "job", nil, "serve only this job (repeatable; default: every job of the file)")
	cmd.Flags().StringVar(&replicaID, "replica-id", "", "this replica's identity in job leases: stable across its restarts, unique among live replicas (default: serve.replica_id, else HOST/LISTEN-ADDRESS, or a new one per process when the port is 0)")
	return cmd
}
