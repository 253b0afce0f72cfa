package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/cmd/imgvec/internal/dupes"
	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"
	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

func newDupesCmd() *cobra.Command {
	var (
		sinkURI, modelID string
		threshold        float64
		k                int
		asJSON, asCSV    bool
		cf               configFlags
	)
	cmd := &cobra.Command{
		Use:   "dupes [--sink URI] [--model ID] [--threshold 0.05] [--json|--csv]",
		Short: "List groups of duplicate images: the same bytes (exact) or vectors within a cosine distance (near)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON && asCSV {
				return wiring.Usagef("dupes: give at most one of --json and --csv")
			}
			if !(threshold >= 0 && threshold <= 2) {
				return wiring.Usagef("dupes: --threshold %v: want a cosine distance from 0 to 2", threshold)
			}
			ctx := cmd.Context()
			sink, m, err := openScan(cmd, &cf, sinkURI, modelID)
			if err != nil {
				return err
			}
			defer sink.Close()
			o := dupes.Options{Threshold: threshold, K: k}
			how := "exact comparison of every pair"
			if is, ok := sink.(connector.IndexedSearcher); ok {
				indexed, err := is.SearchIndexed(ctx, m.ModelID)
				if err != nil {
					return err
				}
				if indexed {
					o.Search = func(ctx context.Context, v []float32, k int) ([]connector.Hit, error) {
						return sink.Search(ctx, m.ModelID, v, k)
					}
					how = fmt.Sprintf("the %d nearest of each image through the sink's index", k)
				}
			}
			groups, err := dupes.Find(ctx, func(fn func(schema.Record) error) error {
				return sink.ScanVectors(ctx, m.ModelID, fn)
			}, o)
			if err != nil {
				return err
			}
			n := map[string][2]int{}
			for _, g := range groups {
				c := n[g.Kind]
				n[g.Kind] = [2]int{c[0] + 1, c[1] + len(g.Members)}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d rows of model %s: %d exact groups (%d images), %d near groups (%d images) at cosine distance ≤ %g (%s)\n",
				m.Rows, m.ModelID, n[dupes.Exact][0], n[dupes.Exact][1], n[dupes.Near][0], n[dupes.Near][1], threshold, how)
			return printGroups(cmd, groups, asJSON, asCSV)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&sinkURI, "sink", defaultSink, "where vectors are: sqlite://PATH, postgres://… or milvus://…")
	fl.StringVar(&modelID, "model", "", "model id, as imgvec status lists it (default: the only one stored)")
	fl.Float64Var(&threshold, "threshold", 0.05, "largest cosine distance of two near duplicates (0 to 2)")
	rangeVar(fl, &k, "k", "k", 10, config.SearchKRange, "neighbours asked for per image where the sink searches through an index")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	fl.BoolVar(&asCSV, "csv", false, "print CSV (one line per member)")
	cf.register(fl)
	cf.registerJob(fl)
	return cmd
}

type jsonGroup struct {
	Group   int            `json:"group"`
	Kind    string         `json:"kind"`
	Size    int            `json:"size"`
	Members []dupes.Member `json:"members"`
}

// printGroups writes the groups as a table (keys printable), JSON or CSV
// (exact strings; one line per member, the group's fields repeated).
func printGroups(cmd *cobra.Command, groups []dupes.Group, asJSON, asCSV bool) error {
	out := cmd.OutOrStdout()
	switch {
	case asJSON:
		rows := make([]jsonGroup, len(groups))
		for i, g := range groups {
			rows[i] = jsonGroup{Group: i + 1, Kind: g.Kind, Size: len(g.Members), Members: g.Members}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	case asCSV:
		w := csv.NewWriter(out)
		w.Write([]string{"group", "kind", "size", "distance", "source", "key", "id", "sha256"})
		for i, g := range groups {
			for _, m := range g.Members {
				w.Write([]string{strconv.Itoa(i + 1), g.Kind, strconv.Itoa(len(g.Members)), strconv.FormatFloat(m.Distance, 'f', 6, 64),
					m.Source, m.Key, m.ID, m.SHA256})
			}
		}
		w.Flush()
		return w.Error()
	}
	if len(groups) == 0 {
		fmt.Fprintln(out, "no duplicates")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tKIND\tSIZE\tDISTANCE\tKEY\tSOURCE")
	for i, g := range groups {
		for _, m := range g.Members {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%.4f\t%s\t%s\n", i+1, g.Kind, len(g.Members), m.Distance, schema.Printable(m.Key), schema.Printable(m.Source))
		}
	}
	return tw.Flush()
}
