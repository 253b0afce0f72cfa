package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/export"
	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"
	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/sinks"
)

func newExportCmd() *cobra.Command {
	var (
		sinkURI, modelID, format, out string
		cf                            configFlags
	)
	cmd := &cobra.Command{
		Use:   "export [--sink URI] [--model ID] [--format npy|parquet|jsonl] --out PATH",
		Short: "Write the stored vectors with their ids, keys and metadata to .npy, Parquet or JSON Lines, in key order",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return wiring.Usagef("export: --out PATH is required (.npy, .parquet, .jsonl, or - for JSON Lines on stdout)")
			}
			f, err := export.ParseFormat(format, out)
			if err != nil {
				return wiring.Usagef("export: %v", err)
			}
			ctx := cmd.Context()
			sink, m, err := openScan(cmd, &cf, sinkURI, modelID)
			if err != nil {
				return err
			}
			defer sink.Close()
			rows, files, err := export.Write(f, out, cmd.OutOrStdout(), m.Dim, func(fn func(schema.Record) error) error {
				return sink.ScanVectors(ctx, m.ModelID, fn)
			})
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			if len(files) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "exported %d rows of model %s (%d-d) to %s\n", rows, m.ModelID, m.Dim, strings.Join(files, " and "))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&sinkURI, "sink", defaultSink, "where vectors are: sqlite://PATH, postgres://… or milvus://…")
	fl.StringVar(&modelID, "model", "", "model id to export, as imgvec status lists it (default: the only one stored)")
	fl.StringVar(&format, "format", "", "npy (float32 N×D matrix + NAME.rows.jsonl), parquet or jsonl (default: from --out's extension)")
	fl.StringVarP(&out, "out", "o", "", "output file, or - for JSON Lines on stdout")
	cf.register(fl)
	cf.registerJob(fl)
	return cmd
}

// openScan opens the sink (sinkURI, or the --config job's unless --sink
// was given) read-only and picks the model id whose rows a scan reads:
// want, or the only one stored. The caller closes the sink.
func openScan(cmd *cobra.Command, cf *configFlags, sinkURI, want string) (sinks.Sink, connector.ModelCount, error) {
	ctx := cmd.Context()
	if err := cf.applySink(cmd.Flags(), &sinkURI); err != nil {
		return nil, connector.ModelCount{}, err
	}
	sink, err := wiring.NewSink(sinkURI, false, "")
	if err != nil {
		return nil, connector.ModelCount{}, err
	}
	if err := sink.OpenRead(ctx); err != nil {
		return nil, connector.ModelCount{}, err
	}
	st, err := sink.Status(ctx)
	if err != nil {
		sink.Close()
		return nil, connector.ModelCount{}, err
	}
	m, err := pickModel(st.Models, want, cmd.Name())
	if err != nil {
		sink.Close()
		return nil, connector.ModelCount{}, err
	}
	return sink, m, nil
}

// pickModel returns the stored model want, or the only model stored when
// want is "". The error lists the model ids there are.
func pickModel(models []connector.ModelCount, want, command string) (connector.ModelCount, error) {
	var ids []string
	for _, m := range models {
		if m.ModelID == want || (want == "" && len(models) == 1) {
			return m, nil
		}
		ids = append(ids, fmt.Sprintf("%s (%d-d, %d rows)", m.ModelID, m.Dim, m.Rows))
	}
	switch {
	case len(models) == 0:
		return connector.ModelCount{}, fmt.Errorf("%s: the sink holds no vectors (run imgvec sync first)", command)
	case want == "":
		return connector.ModelCount{}, wiring.Usagef("%s: the sink holds %d model ids; pick one with --model: %s", command, len(models), strings.Join(ids, ", "))
	}
	return connector.ModelCount{}, wiring.Usagef("%s: the sink holds no rows of model %s; it holds %s", command, schema.Printable(want), strings.Join(ids, ", "))
}
