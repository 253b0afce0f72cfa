package onnxgraph

import (
	"fmt"
	"sort"
	"strings"
)

// TensorInfo is one tensor a node computes, for `model inspect --all`.
type TensorInfo struct {
	Name  string
	Op    string  // op of the node that computes it
	Shape []int64 // inferred or declared shape, batch as -1; nil when unknown
}

// Tensors lists every tensor a node computes, in topological order, with
// its shape where Inspect can infer it or the model declares it.
func (m *Model) Tensors() []TensorInfo {
	a := analyse(m.Graph)
	var ts []TensorInfo
	for _, i := range a.order {
		n := a.g.Nodes[i]
		for _, o := range n.Outputs {
			if o == "" {
				continue
			}
			t := TensorInfo{Name: o, Op: n.OpType}
			if s := a.shapes[o]; s != nil {
				t.Shape = append([]int64{-1}, s[1:]...)
			}
			ts = append(ts, t)
		}
	}
	return ts
}

// Resolve finds what a layer name means: a candidate layer alias (fc7,
// pool5, avgpool, ...; case-insensitive) or the exact name of a tensor a
// node computes (graph outputs included). The error for an unknown name
// wraps ErrNoSuchLayer and lists the aliases and the closest tensor names.
func (m *Model) Resolve(name string) (Layer, error) {
	a := analyse(m.Graph)
	if l, ok := a.resolve(name); ok {
		return l, nil
	}
	return Layer{}, a.noSuchLayer(name)
}

// resolve finds a candidate layer by name, or a tensor computed by a node.
func (a *analysis) resolve(name string) (Layer, bool) {
	for _, l := range a.layers() {
		if strings.EqualFold(l.Name, name) {
			return l, true
		}
	}
	if p, ok := a.producer[name]; ok {
		return a.layer(name, name, a.g.Nodes[p].OpType), true
	}
	return Layer{}, false
}

// maxSuggestions is how many close tensor names an unknown-name error shows.
const maxSuggestions = 5

func (a *analysis) noSuchLayer(name string) error {
	var aliases []string
	for _, l := range a.layers() {
		aliases = append(aliases, l.Name)
	}
	var outs []string
	for _, v := range a.g.Outputs {
		outs = append(outs, v.Name)
	}
	var tensors []string
	for t := range a.producer {
		tensors = append(tensors, t)
	}
	msg := fmt.Sprintf("no candidate layer and no tensor is named %q", name)
	if len(aliases) > 0 {
		msg += "; layers: " + strings.Join(aliases, ", ")
	}
	if len(outs) > 0 {
		msg += "; graph outputs: " + strings.Join(outs, ", ")
	}
	if close := closest(name, tensors, maxSuggestions); len(close) > 0 {
		msg += "; closest tensors: " + strings.Join(close, ", ")
	}
	return fmt.Errorf("onnxgraph: %s (`imgvec model inspect --all` lists every tensor): %w", msg, ErrNoSuchLayer)
}

// closest returns up to n of names nearest to want: names containing it
// first (case-insensitive), then by edit distance, ties by name.
func closest(want string, names []string, n int) []string {
	w := strings.ToLower(want)
	type cand struct {
		name string
		sub  bool
		dist int
	}
	cs := make([]cand, 0, len(names))
	for _, s := range names {
		l := strings.ToLower(s)
		cs = append(cs, cand{s, w != "" && strings.Contains(l, w), editDistance(w, l)})
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].sub != cs[j].sub {
			return cs[i].sub
		}
		if cs[i].dist != cs[j].dist {
			return cs[i].dist < cs[j].dist
		}
		return cs[i].name < cs[j].name
	})
	var out []string
	for _, c := range cs[:min(n, len(cs))] {
		out = append(out, c.name)
	}
	return out
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
