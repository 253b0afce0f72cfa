package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"

	"github.com/spf13/cobra"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/sinks"
)

func newIndexCmd() *cobra.Command {
	var (
		sinkURI string
		modelID string
		asJSON  bool
		o       connector.IndexOptions
		cf      configFlags
	)
	// withIndexes opens the sink for index management (it must keep
	// indexes), runs f on it and closes it: every subcommand works this way.
	withIndexes := func(cmd *cobra.Command, f func(s sinks.Sink, ix connector.IndexManager) error) error {
		if err := cf.applySink(cmd.Flags(), &sinkURI); err != nil {
			return err
		}
		uri := sinkURI
		if uri == "" {
			uri = os.Getenv("IMGVEC_PG_DSN")
		}
		s, err := wiring.NewSink(uri, false, "")
		if err != nil {
			return err
		}
		ix, ok := s.(connector.IndexManager)
		if !ok {
			return wiring.Usagef("index: only %s sinks have vector indexes (the others search exactly)", sinks.Indexed())
		}
		if err := s.OpenRead(cmd.Context()); err != nil {
			return err
		}
		defer s.Close()
		return f(s, ix)
	}
	printIndexes := func(cmd *cobra.Command, infos []connector.IndexInfo) error {
		out := cmd.OutOrStdout()
		if asJSON {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(infos)
		}
		if len(infos) == 0 {
			fmt.Fprintln(out, "no vector index: searches are exact")
			return nil
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "INDEX\tSTRATEGY\tMODEL ID\tDIM\tVALID\tSIZE")
		for _, i := range infos {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%t\t%d MiB\n", i.Name, i.Strategy, i.ModelID, i.Dim, i.Valid, i.SizeBytes>>20)
		}
		return tw.Flush()
	}
	cmd := &cobra.Command{
		Use:   "index create binary|exact | drop | status  --sink postgres://…",
		Short: "PostgreSQL: create, drop or show the vector index (binary HNSW + exact re-rank, or none)",
	}
	create := &cobra.Command{
		Use:   "create binary|exact",
		Short: "Build the index for every stored model id (or --model-id); exact drops it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := connector.ParseIndexStrategy(args[0])
			if err != nil {
				return wiring.Usage(err)
			}
			return withIndexes(cmd, func(s sinks.Sink, ix connector.IndexManager) error {
				ids := []string{modelID}
				if modelID == "" {
					status, err := s.Status(cmd.Context())
					if err != nil {
						return err
					}
					ids = ids[:0]
					for _, m := range status.Models {
						ids = append(ids, m.ModelID)
					}
					if len(ids) == 0 {
						return fmt.Errorf("index create: the sink holds no vectors yet; sync first, or pass --model-id")
					}
				}
				var infos []connector.IndexInfo
				for _, id := range ids {
					info, err := ix.CreateIndex(cmd.Context(), st, id, 0, o)
					if err != nil {
						return err
					}
					if info.Name != "" {
						infos = append(infos, info)
					}
				}
				return printIndexes(cmd, infos)
			})
		},
	}
	create.Flags().StringVar(&modelID, "model-id", "", "only this model id (default: every stored one)")
	create.Flags().IntVar(&o.M, "m", 0, "HNSW m (default pgvector's, 16)")
	create.Flags().IntVar(&o.EfConstruction, "ef-construction", 0, "HNSW ef_construction (default pgvector's, 64)")
	create.Flags().BoolVar(&o.Concurrently, "concurrently", false, "CREATE INDEX CONCURRENTLY: writers are not blocked")
	drop := &cobra.Command{
		Use:   "drop",
		Short: "Drop the vector index of every model id (or --model-id)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withIndexes(cmd, func(_ sinks.Sink, ix connector.IndexManager) error {
				infos, err := ix.DropIndex(cmd.Context(), modelID)
				if err != nil {
					return err
				}
				for _, i := range infos {
					fmt.Fprintf(cmd.OutOrStdout(), "dropped %s (%s)\n", i.Name, i.ModelID)
				}
				return nil
			})
		},
	}
	drop.Flags().StringVar(&modelID, "model-id", "", "only this model id (default: all)")
	status := &cobra.Command{
		Use:   "status",
		Short: "List the vector indexes (models without one are searched exactly)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withIndexes(cmd, func(_ sinks.Sink, ix connector.IndexManager) error {
				infos, err := ix.IndexStatus(cmd.Context())
				if err != nil {
					return err
				}
				return printIndexes(cmd, infos)
			})
		},
	}
	cmd.PersistentFlags().StringVar(&sinkURI, "sink", "", "postgres://USER@HOST:PORT/DB?schema=S&table=T (default $IMGVEC_PG_DSN)")
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	cf.register(cmd.PersistentFlags())
	cf.registerJob(cmd.PersistentFlags())
	cmd.AddCommand(create, drop, status)
	return cmd
}
