// Package dupes finds the duplicate images of one model id in a sink, for
// `imgvec dupes`: exact duplicates (the same sha256) and near duplicates
// (cosine distance of their vectors at most a threshold).
//
// # Contract
//
//   - Find reads the rows through scan (connector.VectorScanner, key
//     order) and returns groups of at least two rows: kind Exact for each
//     set of rows with the same sha256; kind Near for each set of rows
//     connected by distances ≤ Threshold (single linkage: a chain of close
//     pairs joins one group) that holds at least two different sha256s.
//     Exact copies are compared once (their vectors are equal) and belong
//     to the near group of their content too.
//   - Pairs are found through Options.Search (the k nearest of each
//     distinct content through the sink's index) when it is set, else by
//     comparing every pair exactly, a block of rows at a time: memory holds
//     one block of vectors (BlockBytes) plus the ids, keys and hashes of
//     every row; the sink is scanned once per block.
//   - Each member carries its cosine distance to its group's first member
//     (the first in key order); groups come largest first, then exact
//     before near, then by their first member's source and key; members in
//     key order. The same data gives the same groups.
//   - A zero vector has no cosine distance: it is in no near group.
//   - Errors from scan or Search are returned wrapped; ctx is honoured by
//     them.
package dupes

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// Kinds of groups.
const (
	Exact = "exact"
	Near  = "near"
)

// Member is one row of a group.
type Member struct {
	ID       string  `json:"id"`
	Source   string  `json:"source"`
	Key      string  `json:"key"`
	SHA256   string  `json:"sha256"`
	Distance float64 `json:"distance"` // cosine distance to the group's first member
}

// Group is a set of duplicates.
type Group struct {
	Kind    string   `json:"kind"`
	Members []Member `json:"members"`
}

// Options tune Find.
type Options struct {
	Threshold float64 // largest cosine distance of a near pair
	// Search, when set, returns the k nearest rows of the model to vec
	// (connector.Searcher.Search bound to the model id); K is k.
	Search func(ctx context.Context, vec []float32, k int) ([]connector.Hit, error)
	K      int
	// BlockBytes bounds the vectors the exact comparison holds at once
	// (DefaultBlockBytes when 0).
	BlockBytes int
}

// DefaultBlockBytes is the vector memory of one block of the exact
// comparison.
const DefaultBlockBytes = 256 << 20

// Scan streams the rows of one model id in key order.
type Scan func(fn func(schema.Record) error) error

// row is what Find keeps of every row.
type row struct {
	id, source, key, sha256 string
	rep                     int // index of the first row with the same sha256 (itself if first)
}

// Find returns the duplicate groups of the rows scan yields.
func Find(ctx context.Context, scan Scan, o Options) ([]Group, error) {
	var rows []row
	bySHA := map[string]int{}
	byID := map[string]int{}
	err := scan(func(r schema.Record) error {
		i := len(rows)
		rep := i
		if r.SHA256 != "" {
			if first, ok := bySHA[r.SHA256]; ok {
				rep = first
			} else {
				bySHA[r.SHA256] = i
			}
		}
		rows = append(rows, row{id: r.ID, source: r.Source, key: r.Key, sha256: r.SHA256, rep: rep})
		byID[r.ID] = i
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dupes: list rows: %w", err)
	}
	uf := newUnionFind(len(rows))
	for i, r := range rows {
		uf.union(i, r.rep)
	}
	if o.Search != nil {
		err = nearByIndex(ctx, scan, rows, byID, uf, o)
	} else {
		err = nearExact(scan, rows, uf, o)
	}
	if err != nil {
		return nil, err
	}
	groups := collect(rows, uf)
	if err := distances(scan, groups, byID); err != nil {
		return nil, err
	}
	slices.SortFunc(groups, func(a, b Group) int {
		return cmp.Or(cmp.Compare(len(b.Members), len(a.Members)), cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.Members[0].Source, b.Members[0].Source), cmp.Compare(a.Members[0].Key, b.Members[0].Key))
	})
	return groups, nil
}

// nearByIndex asks for the k nearest rows of each distinct content and
// joins those within the threshold.
func nearByIndex(ctx context.Context, scan Scan, rows []row, byID map[string]int, uf *unionFind, o Options) error {
	i := -1
	err := scan(func(r schema.Record) error {
		i++
		if i >= len(rows) || rows[i].id != r.ID {
			return fmt.Errorf("the rows changed during the scan (at %s)", schema.Printable(r.Key))
		}
		if rows[i].rep != i || isZero(r.Vector) {
			return nil
		}
		hits, err := o.Search(ctx, r.Vector, o.K)
		if err != nil {
			return fmt.Errorf("search neighbours of %s: %w", schema.Printable(r.Key), err)
		}
		for _, h := range hits {
			if j, ok := byID[h.ID]; ok && h.Distance <= o.Threshold {
				uf.union(i, j)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dupes: %w", err)
	}
	return nil
}

// nearExact compares every pair of distinct contents, one block of rows
// (unit vectors) at a time: a pass holds the contents from row lo on, as
// many as BlockBytes allows, and compares every later row with them as the
// scan streams it; the next pass starts at the first content that did not
// fit.
func nearExact(scan Scan, rows []row, uf *unionFind, o Options) error {
	blockBytes := cmp.Or(o.BlockBytes, DefaultBlockBytes)
	for lo := 0; lo < len(rows); {
		var block [][]float32
		var blockIdx []int
		open, next := true, len(rows)
		i := -1
		err := scan(func(r schema.Record) error {
			i++
			if i >= len(rows) || rows[i].id != r.ID {
				return fmt.Errorf("the rows changed during the scan (at %s)", schema.Printable(r.Key))
			}
			if i < lo || rows[i].rep != i || isZero(r.Vector) {
				return nil
			}
			v := unit(r.Vector)
			for k, b := range block {
				if 1-dot(v, b) <= o.Threshold {
					uf.union(i, blockIdx[k])
				}
			}
			switch {
			case !open:
			case len(block) == 0 || (len(block)+1)*4*len(v) <= blockBytes:
				block = append(block, v)
				blockIdx = append(blockIdx, i)
			default:
				open, next = false, i
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("dupes: compare vectors: %w", err)
		}
		lo = next
	}
	return nil
}

// collect turns the union-find classes into groups: each sha256 class of
// two rows or more is an exact group; each class of rows with two
// different sha256s or more is a near group. Members in key (scan) order.
func collect(rows []row, uf *unionFind) []Group {
	classes := map[int][]int{}
	var roots []int
	for i := range rows {
		root := uf.find(i)
		if _, ok := classes[root]; !ok {
			roots = append(roots, root)
		}
		classes[root] = append(classes[root], i)
	}
	exact := map[int][]int{}
	for i, r := range rows {
		if r.sha256 != "" {
			exact[r.rep] = append(exact[r.rep], i)
		}
	}
	member := func(i int) Member {
		return Member{ID: rows[i].id, Source: rows[i].source, Key: rows[i].key, SHA256: rows[i].sha256}
	}
	var groups []Group
	for i := range rows {
		if idx := exact[i]; len(idx) > 1 {
			g := Group{Kind: Exact}
			for _, j := range idx {
				g.Members = append(g.Members, member(j))
			}
			groups = append(groups, g)
		}
	}
	for _, root := range roots {
		idx := classes[root]
		contents := 0
		for _, j := range idx {
			if rows[j].rep == j {
				contents++
			}
		}
		if contents > 1 {
			g := Group{Kind: Near}
			for _, j := range idx {
				g.Members = append(g.Members, member(j))
			}
			groups = append(groups, g)
		}
	}
	return groups
}

// distances fills each near member's distance to its group's first
// member, which comes first in the scan: one more scan, holding one vector
// per near group.
func distances(scan Scan, groups []Group, byID map[string]int) error {
	type slot struct{ group, member int }
	at := map[int]slot{}
	for g, gr := range groups {
		if gr.Kind != Near {
			continue // exact copies: distance 0
		}
		for m, mem := range gr.Members {
			at[byID[mem.ID]] = slot{g, m}
		}
	}
	if len(at) == 0 {
		return nil
	}
	firsts := map[int][]float32{}
	i := -1
	err := scan(func(r schema.Record) error {
		i++
		s, ok := at[i]
		if !ok || groups[s.group].Members[s.member].ID != r.ID {
			return nil
		}
		v := unit(r.Vector)
		if s.member == 0 {
			firsts[s.group] = v
			return nil
		}
		if groups[s.group].Members[0].SHA256 == r.SHA256 && r.SHA256 != "" {
			return nil // the first member's bytes: distance 0, exactly
		}
		first, ok := firsts[s.group]
		if !ok {
			return fmt.Errorf("the rows changed during the scan (at %s)", schema.Printable(r.Key))
		}
		groups[s.group].Members[s.member].Distance = max(0, 1-dot(v, first))
		return nil
	})
	if err != nil {
		return fmt.Errorf("dupes: distances: %w", err)
	}
	return nil
}

// isZero reports a vector without a direction: it has no cosine distance
// and is nobody's near duplicate.
func isZero(v []float32) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}

// unit returns v scaled to length 1 (a zero vector stays zero).
func unit(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	if s == 0 {
		return out
	}
	inv := 1 / math.Sqrt(s)
	for i, x := range v {
		out[i] = float32(float64(x) * inv)
	}
	return out
}

func dot(a, b []float32) float64 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return float64(s)
}

type unionFind struct{ parent []int }

func newUnionFind(n int) *unionFind {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return &unionFind{p}
}

func (u *unionFind) find(i int) int {
	for u.parent[i] != i {
		u.parent[i] = u.parent[u.parent[i]]
		i = u.parent[i]
	}
	return i
}

// union joins the classes of i and j; the smaller index becomes the root,
// so that roots do not depend on the order of unions.
func (u *unionFind) union(i, j int) {
	a, b := u.find(i), u.find(j)
	if a > b {
		a, b = b, a
	}
	if a != b {
		u.parent[b] = a
	}
}
