package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"
	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

func newSearchCmd(g *globalFlags) *cobra.Command {
	var (
		j      config.Job // the model and sink flags
		image  string
		id     string
		k      int
		asJSON bool
		cf     configFlags
	)
	cmd := &cobra.Command{
		Use:   "search (--image FILE | --id ID) [-k N] [--json]",
		Short: "Find the stored images most similar to an image file or a stored item",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (image == "") == (id == "") {
				return wiring.Usagef("search: give exactly one of --image FILE or --id ID")
			}
			fileJob, ok, err := cf.job(cf.name)
			if err != nil {
				return err
			}
			if ok {
				// The job's model and sink: a query must be embedded the
				// way the job embedded what it stored.
				if err := applyJob(cmd.Flags(), func() { j = fileJob }); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			sink, err := wiring.NewSink(j.Sink, false, "")
			if err != nil {
				return err
			}
			var query []float32
			var modelID string
			if image != "" {
				x, err := wiring.OpenExtractor(ctx, j)
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
	registerModelFlags(f, &j)
	f.StringVar(&j.Sink, "sink", defaultSink, "where vectors are: sqlite://PATH, postgres://… or milvus://…")
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
