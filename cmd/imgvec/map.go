package main

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	"log/slog"
	"math"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"
	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/extract/imaging"
	"github.com/imgvec/imgvec/mapview"
	"github.com/imgvec/imgvec/mapview/layout"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/sinks"
)

// mapSettings are the flags of `imgvec map` beyond the job's.
type mapSettings struct {
	limit, sample, thumbs, thumbSize, neighbours int
	seed                                         int64
	colorBy, out, png, size                      string
}

func newMapCmd() *cobra.Command {
	var (
		j  config.Job
		s  mapSettings
		cf configFlags
	)
	cmd := &cobra.Command{
		Use:   "map --out map.html [--png map.png] [--sink URI] [--model M] [--limit N] [--sample N] [--color-by source|format|meta:NAME]",
		Short: "Lay out the stored vectors of one model in 2-D: an offline HTML map with thumbnails and neighbours, or a PNG",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fileJob, fromFile, err := cf.job(cf.name)
			if err != nil {
				return err
			}
			if fromFile {
				if err := applyJob(cmd.Flags(), func() { j = fileJob }); err != nil {
					return err
				}
			}
			if s.out == "" && s.png == "" {
				return wiring.Usagef("map: give --out FILE.html, --png FILE.png or both")
			}
			width, height, err := parseSize(s.size)
			if err != nil {
				return err
			}
			if _, err := groupOf(s.colorBy); err != nil {
				return err
			}
			ctx := cmd.Context()
			sink, err := wiring.NewSink(j.Sink, false, "")
			if err != nil {
				return err
			}
			if err := sink.OpenRead(ctx); err != nil {
				return err
			}
			defer sink.Close()
			modelID, err := mapModelID(ctx, sink, j, fromFile || cmd.Flags().Changed("model"))
			if err != nil {
				return err
			}
			page, err := buildMap(ctx, sink, modelID, j, s)
			if err != nil {
				return err
			}
			if s.out != "" {
				if err := writeFileWith(s.out, func(b *bytes.Buffer) error { return mapview.WriteHTML(b, page) }); err != nil {
					return err
				}
			}
			if s.png != "" {
				if err := writeFileWith(s.png, func(b *bytes.Buffer) error { return mapview.WritePNG(b, page, width, height) }); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "map: %d points of model %s (%s)\n", len(page.Items), modelID, page.Note)
			return nil
		},
	}
	f := cmd.Flags()
	registerModelFlags(f, &j)
	registerSourceFlags(f, &j) // the thumbnails are read through the sources
	f.StringArrayVar(&j.Sources, "source", nil, "a source the rows came from, as given to sync (an S3 endpoint, say), to read thumbnails through; other sources are opened from their stored names")
	f.StringVar(&j.Sink, "sink", defaultSink, "where vectors are: sqlite://PATH, postgres://… or milvus://…")
	rangeVar(f, &s.limit, "limit", "", 0, config.MapLimitRange, "map at most this many vectors, the first in key order (0: all)")
	rangeVar(f, &s.sample, "sample", "", 10000, config.MapSampleRange, "lay out this many vectors (a seeded sample) and place the others near their nearest sampled ones")
	rangeVar(f, &s.thumbs, "thumbs", "", 10000, config.MapThumbsRange, "thumbnails for at most this many points (the sample's first; others show a grey tile)")
	rangeVar(f, &s.thumbSize, "thumb-size", "", 64, config.MapThumbSizeRange, "thumbnail size in pixels")
	rangeVar(f, &s.neighbours, "neighbours", "", 8, config.MapNeighboursRange, "nearest neighbours listed for each point")
	f.Int64Var(&s.seed, "seed", 1, "seed of the sample and the layout: the same data and seed give the same map")
	f.StringVar(&s.colorBy, "color-by", "source", "colour points by source, format or meta:NAME (a metadata field)")
	f.StringVar(&s.out, "out", "", "write the map as one self-contained HTML file")
	f.StringVar(&s.png, "png", "", "write a static picture of the map")
	f.StringVar(&s.size, "size", "1200x900", "size of the --png picture, WIDTHxHEIGHT")
	cf.register(f)
	cf.registerJob(f)
	return cmd
}

func parseSize(s string) (int, int, error) {
	w, h, ok := strings.Cut(s, "x")
	width, err1 := strconv.Atoi(w)
	height, err2 := strconv.Atoi(h)
	if !ok || err1 != nil || err2 != nil || width < 16 || height < 16 || width > 16384 || height > 16384 {
		return 0, 0, wiring.Usagef("map: --size %q: want WIDTHxHEIGHT, 16 to 16384 each (e.g. 1200x900)", s)
	}
	return width, height, nil
}

// groupOf returns what --color-by colours a row by.
func groupOf(colorBy string) (func(schema.Record) string, error) {
	switch {
	case colorBy == "source":
		return func(r schema.Record) string { return r.Source }, nil
	case colorBy == "format":
		return func(r schema.Record) string { return r.Format }, nil
	case strings.HasPrefix(colorBy, "meta:") && len(colorBy) > len("meta:"):
		name := strings.TrimPrefix(colorBy, "meta:")
		return func(r schema.Record) string {
			if v, ok := r.Metadata[name]; ok {
				return v
			}
			return "(no " + name + ")"
		}, nil
	}
	return nil, wiring.Usagef("map: --color-by %q: want source, format or meta:NAME", colorBy)
}

// mapModelID is the model id to map: --model's (a stored model id as
// status shows it, or a model whose identity is computed as sync would),
// else the sink's only one.
func mapModelID(ctx context.Context, sink sinks.Sink, j config.Job, given bool) (string, error) {
	st, err := sink.Status(ctx)
	if err != nil {
		return "", err
	}
	want := ""
	if given {
		want = j.Model
		if !slices.ContainsFunc(st.Models, func(m connector.ModelCount) bool { return m.ModelID == want }) {
			m, err := wiring.LoadModel(ctx, j)
			if err != nil {
				return "", err
			}
			want = m.Identity(!j.NoNormalize).ID()
		}
	}
	m, err := pickModel(st.Models, want, "map")
	return m.ModelID, err
}

// mapRow is one stored row of the map.
type mapRow struct {
	rec    schema.Record // Vector dropped after the first pass
	rank   uint64        // the seeded hash that orders the sample
	sample int           // index among the sampled rows, or −1
	point  layout.Point
	near   []mapview.Neighbour // indices into rows until the page renumbers them
	placed bool
}

// errMapLimit stops a scan at --limit.
var errMapLimit = errors.New("map: limit reached")

// buildMap reads the model's rows, lays out a seeded sample of them,
// places the rest, and makes the page with thumbnails.
func buildMap(ctx context.Context, scanner connector.VectorScanner, modelID string, j config.Job, s mapSettings) (mapview.Page, error) {
	group, _ := groupOf(s.colorBy)
	started := time.Now()
	// Pass 1: every row's metadata, and the vectors of the s.sample rows
	// of lowest rank (a max-heap holds the current ones).
	var rows []mapRow
	index := map[string]int{}
	samp := &rankHeap{rows: &rows}
	err := scanner.ScanVectors(ctx, modelID, func(r schema.Record) error {
		if s.limit > 0 && len(rows) == s.limit {
			return errMapLimit
		}
		vec := r.Vector
		r.Vector = nil
		index[r.ID] = len(rows)
		rows = append(rows, mapRow{rec: r, rank: rankOf(s.seed, r.ID), sample: -1})
		i := len(rows) - 1
		switch {
		case samp.Len() < s.sample:
			heap.Push(samp, sampled{row: i, vec: slices.Clone(vec)})
		case rows[i].rank < rows[samp.items[0].row].rank:
			samp.items[0] = sampled{row: i, vec: slices.Clone(vec)}
			heap.Fix(samp, 0)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errMapLimit) {
		return mapview.Page{}, fmt.Errorf("map: read the vectors of %s: %w", modelID, err)
	}
	if len(rows) == 0 {
		return mapview.Page{}, fmt.Errorf("map: no vectors of model %s are stored", modelID)
	}
	// The layout sees the sample in key order, so that the map depends on
	// the data and the seed only.
	sample := samp.items
	slices.SortFunc(sample, func(a, b sampled) int { return cmp.Compare(a.row, b.row) })
	vecs := make([][]float32, len(sample))
	for k, sm := range sample {
		vecs[k] = sm.vec
		rows[sm.row].sample = k
	}
	lo := layout.Options{Seed: uint64(s.seed)}
	m, err := layout.Fit(ctx, vecs, lo)
	if err != nil {
		return mapview.Page{}, fmt.Errorf("map: %w", err)
	}
	norms := make([]float64, len(vecs))
	for k, v := range vecs {
		norms[k] = math.Sqrt(dot(v, v))
	}
	for k, sm := range sample {
		r := &rows[sm.row]
		r.point, r.placed = m.Points()[k], true
		r.near = nearestByCosine(sm.vec, norms[k], m.Neighbours(k), vecs, norms, sample, s.neighbours)
	}
	fitted := time.Since(started)
	// Pass 2, when some rows were not sampled: place them in batches.
	if len(sample) < len(rows) {
		var batch []int
		var batchVecs [][]float32
		flush := func() error {
			pts, near, err := m.Place(ctx, batchVecs)
			if err != nil {
				return err
			}
			for b, i := range batch {
				rows[i].point, rows[i].placed = pts[b], true
				rows[i].near = nearestByCosine(batchVecs[b], math.Sqrt(dot(batchVecs[b], batchVecs[b])), near[b], vecs, norms, sample, s.neighbours)
			}
			batch, batchVecs = batch[:0], batchVecs[:0]
			return nil
		}
		seen := 0
		err := scanner.ScanVectors(ctx, modelID, func(r schema.Record) error {
			if seen++; s.limit > 0 && seen > s.limit {
				return errMapLimit
			}
			i, ok := index[r.ID]
			if !ok || rows[i].sample >= 0 || len(r.Vector) != len(vecs[0]) {
				return nil // new since the first pass, or sampled
			}
			batch, batchVecs = append(batch, i), append(batchVecs, slices.Clone(r.Vector))
			if len(batch) == 2048 {
				return flush()
			}
			return nil
		})
		if err == nil || errors.Is(err, errMapLimit) {
			err = flush()
		}
		if err != nil {
			return mapview.Page{}, fmt.Errorf("map: place the vectors of %s: %w", modelID, err)
		}
	}
	page := mapview.Page{Title: "imgvec map", ModelID: modelID, ColorBy: s.colorBy, LinkBase: map[string]string{}}
	renumber := make([]int, len(rows))
	for i := range rows {
		renumber[i] = -1
		if rows[i].placed {
			renumber[i] = len(page.Items)
			page.Items = append(page.Items, mapview.Item{Source: rows[i].rec.Source, Key: rows[i].rec.Key,
				X: rows[i].point.X, Y: rows[i].point.Y, Group: group(rows[i].rec), Thumb: -1})
		}
	}
	for i := range rows {
		if p := renumber[i]; p >= 0 {
			for _, nb := range rows[i].near {
				if q := renumber[nb.Index]; q >= 0 {
					page.Items[p].Neighbours = append(page.Items[p].Neighbours, mapview.Neighbour{Index: q, Distance: nb.Distance})
				}
			}
		}
	}
	laidOut := time.Since(started)
	failed, err := addThumbnails(ctx, &page, rows, renumber, j, s)
	if err != nil {
		return mapview.Page{}, err
	}
	// The page says what was done, not how long it took: the same data
	// and seed give the same file.
	page.Note = fmt.Sprintf("%d laid out, %d placed near them", len(sample), len(page.Items)-len(sample))
	slog.Info("map built", "points", len(page.Items), "sampled", len(sample), "layout", fitted.Round(time.Millisecond),
		"placed", (laidOut - fitted).Round(time.Millisecond), "thumbnails", (time.Since(started) - laidOut).Round(time.Millisecond), "grey_tiles", failed)
	return page, nil
}

// rankOf is a row's place in the seeded sample order: a hash of the seed
// and the id, so that the sample does not depend on the scan's order.
func rankOf(seed int64, id string) uint64 {
	h := fnv.New64a()
	binary.Write(h, binary.LittleEndian, seed)
	h.Write([]byte(id))
	return h.Sum64()
}

type sampled struct {
	row int
	vec []float32
}

// rankHeap is a max-heap of sampled rows by rank: its top is the one a
// row of lower rank replaces.
type rankHeap struct {
	rows  *[]mapRow
	items []sampled
}

func (h *rankHeap) Len() int { return len(h.items) }
func (h *rankHeap) Less(a, b int) bool {
	return (*h.rows)[h.items[a].row].rank > (*h.rows)[h.items[b].row].rank
}
func (h *rankHeap) Swap(a, b int) { h.items[a], h.items[b] = h.items[b], h.items[a] }
func (h *rankHeap) Push(x any)    { h.items = append(h.items, x.(sampled)) }
func (h *rankHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// nearestByCosine ranks the candidates (indices into the sample, from the
// layout's PCA-space neighbours) by the cosine distance of the stored
// vectors and keeps the k nearest, as row indices.
func nearestByCosine(v []float32, norm float64, cands []int32, vecs [][]float32, norms []float64, sample []sampled, k int) []mapview.Neighbour {
	out := make([]mapview.Neighbour, 0, len(cands))
	for _, c := range cands {
		d := 1.0
		if norm > 0 && norms[c] > 0 {
			d = 1 - dot(v, vecs[c])/(norm*norms[c])
		}
		out = append(out, mapview.Neighbour{Index: sample[c].row, Distance: float32(d)})
	}
	slices.SortStableFunc(out, func(a, b mapview.Neighbour) int { return cmp.Compare(a.Distance, b.Distance) })
	return out[:min(k, len(out))]
}

// addThumbnails reads and decodes, through each row's source, the
// thumbnails of up to s.thumbs points (the lowest ranks: the sample
// first), one per distinct sha256, with bounded concurrency; a row whose
// source cannot be opened or whose image cannot be read or decoded keeps
// a grey tile. It returns how many thumbnails failed.
func addThumbnails(ctx context.Context, page *mapview.Page, rows []mapRow, renumber []int, j config.Job, s mapSettings) (int, error) {
	var want []int // rows, by rank
	for i := range rows {
		if renumber[i] >= 0 {
			want = append(want, i)
		}
	}
	slices.SortFunc(want, func(a, b int) int { return cmp.Compare(rows[a].rank, rows[b].rank) })
	want = want[:min(s.thumbs, len(want))]
	if len(want) == 0 {
		return 0, nil
	}
	// One read per distinct content; rows without a sha256 stand alone.
	type job struct {
		row   int
		thumb imaging.RGB
		err   error
	}
	var jobs []*job
	byContent := map[string]*job{}
	jobOf := make(map[int]*job, len(want))
	for _, i := range want {
		sha := rows[i].rec.SHA256
		if jb, ok := byContent[sha]; ok && sha != "" {
			jobOf[i] = jb
			continue
		}
		jb := &job{row: i}
		jobs, jobOf[i] = append(jobs, jb), jb
		byContent[sha] = jb
	}
	// The job's sources (--source, or the config's) are read with their
	// full references (an S3 endpoint, say); other stored sources are
	// opened from their names.
	opener := wiring.SourceOpener(j)
	sources := map[string]connector.Source{}
	for _, ref := range j.Sources {
		src, err := opener(ref)
		if err != nil {
			return 0, err
		}
		defer src.Close()
		sources[src.Name()] = src
	}
	openErr := map[string]error{}
	for _, jb := range jobs {
		name := rows[jb.row].rec.Source
		if _, done := sources[name]; done || openErr[name] != nil {
			continue
		}
		src, err := opener(sourceRef(name))
		if err != nil {
			openErr[name] = err
			slog.Warn("map: cannot open the source for thumbnails; its points get grey tiles", "source", schema.Printable(sinks.Redact(name)), "err", err)
			continue
		}
		defer src.Close()
		sources[name] = src
	}
	for name := range sources {
		if root, local := strings.CutPrefix(name, "file://"); local {
			page.LinkBase[name] = (&url.URL{Scheme: "file", Path: root + "/"}).String()
		}
	}
	spec := imaging.ImageNet
	spec.Resize, spec.Crop, spec.FastJPEG = s.thumbSize, s.thumbSize, true
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(4, runtime.GOMAXPROCS(0)))
	for _, jb := range jobs {
		src := sources[rows[jb.row].rec.Source]
		if src == nil {
			jb.err = errors.New("source not open")
			continue
		}
		key := rows[jb.row].rec.Key
		g.Go(func() error {
			data, err := src.Read(gctx, key)
			if err != nil {
				jb.err = err
				return nil
			}
			img, _, err := imaging.Decode(key, data, imaging.DecodeOptions{MaxPixels: j.MaxPixels, MaxBytes: j.MaxBytes,
				IgnoreOrientation: j.IgnoreExifOrientation, Spec: spec})
			if err != nil {
				jb.err = err
				return nil
			}
			jb.thumb, jb.err = imaging.ResizeCrop(img, spec)
			img.Release()
			return nil
		})
	}
	g.Wait()
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("map: thumbnails: %w", err)
	}
	sprites := mapview.NewSprites(s.thumbSize)
	tile := map[*job]int{}
	failed := 0
	for _, jb := range jobs {
		if jb.err != nil {
			failed++
			slog.Debug("map: thumbnail failed (grey tile)", "key", schema.Printable(rows[jb.row].rec.Key), "err", jb.err)
			continue
		}
		t, err := sprites.Add(rgbImage(jb.thumb))
		if err != nil {
			return 0, err
		}
		tile[jb] = t
	}
	for _, i := range want {
		if t, ok := tile[jobOf[i]]; ok {
			page.Items[renumber[i]].Thumb = t
		}
	}
	if failed > 0 {
		slog.Warn("map: some thumbnails could not be made; they show as grey tiles", "failed", failed, "of", len(jobs))
	}
	page.Thumbs = sprites
	return failed, nil
}

// sourceRef turns a stored source identity back into a --source
// reference: folders and buckets are their own; a URL manifest's is its
// location after "manifest+".
func sourceRef(name string) string {
	ref, manifest := strings.CutPrefix(name, "manifest+")
	if manifest {
		if p, local := strings.CutPrefix(ref, "file://"); local {
			return p
		}
	}
	return ref
}

func rgbImage(c imaging.RGB) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, c.Width, c.Height))
	for p := range c.Width * c.Height {
		copy(img.Pix[4*p:4*p+3], c.Pix[3*p:3*p+3])
		img.Pix[4*p+3] = 255
	}
	return img
}

// writeFileWith writes what fill makes to path, through a temporary file
// renamed into place, so that a failed map leaves no half file.
func writeFileWith(path string, fill func(*bytes.Buffer) error) error {
	var b bytes.Buffer
	if err := fill(&b); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("map: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("map: write %s: %w", path, err)
	}
	return nil
}
