package connectortest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// Model returns a valid model identity with dimension dim, distinguished by
// name (different names give different model ids).
func Model(name string, dim int) schema.ModelIdentity {
	sum := sha256.Sum256([]byte(name))
	return schema.ModelIdentity{
		ModelSHA256: fmt.Sprintf("%x", sum[:]),
		Layer:       "fc7",
		Preprocess:  "fake-v1",
		Dim:         dim,
		Normalized:  false,
	}
}

// Vector is the vector the fake Embedder computes for data: dim values
// derived from sha256(data), deterministic and finite.
func Vector(data []byte, dim int) []float32 {
	v := make([]float32, dim)
	var h [32]byte
	for i := range v {
		if i%8 == 0 {
			var ctr [8]byte
			binary.LittleEndian.PutUint64(ctr[:], uint64(i/8))
			h = sha256.Sum256(append(append([]byte{}, data...), ctr[:]...))
		}
		u := binary.LittleEndian.Uint32(h[(i%8)*4:])
		v[i] = float32(u)/float32(math.MaxUint32)*2 - 1
	}
	return v
}

// CorruptPrefix marks bytes the fake Embedder refuses to decode
// (schema.FailDecode), whatever their key.
var CorruptPrefix = []byte("corrupt")

// Embedder is a fake connector.Embedder. Configure the exported fields
// before use; do not change them while a run uses the Embedder. Like the
// real one, every method is safe for concurrent use (several runs may
// share one fake); OnInfer may then be called from several goroutines at
// once.
type Embedder struct {
	Model schema.ModelIdentity // defaults to Model("fake", 8)
	Batch int                  // defaults to 4

	// PrepareErr fails Prepare for these keys.
	PrepareErr map[string]*schema.ItemError
	// PreparePanic makes Prepare panic for these keys.
	PreparePanic map[string]bool
	// InferErr fails these keys inside Infer (Result.Err).
	InferErr map[string]*schema.ItemError
	// NaN makes Infer return a NaN vector for these keys.
	NaN map[string]bool
	// Fatal makes Infer return this error for a batch containing the key.
	Fatal map[string]error

	PrepareDelay time.Duration
	InferDelay   time.Duration // honours ctx
	// OnInfer, if set, is called at the start of each Infer with the keys
	// of the batch.
	OnInfer func(keys []string)
	// Concurrency is what InferConcurrency returns (0: the pipeline's
	// default, one Infer at a time).
	Concurrency int

	mu         sync.Mutex
	prepared   int
	released   int
	inferCalls int
	inferred   int
	batches    [][]string
	inInfer    int
	overlaps   int
	maxInInfer int
	live       map[*schema.Prepared]bool
	doubleFree int
}

var (
	_ connector.Embedder           = (*Embedder)(nil)
	_ connector.ConcurrentEmbedder = (*Embedder)(nil)
)

// NewEmbedder returns a fake with the given model and batch size.
func NewEmbedder(model schema.ModelIdentity, batch int) *Embedder {
	return &Embedder{Model: model, Batch: batch}
}

func (e *Embedder) Identity() schema.ModelIdentity {
	if e.Model == (schema.ModelIdentity{}) {
		return Model("fake", 8)
	}
	return e.Model
}

// InferConcurrency is Concurrency.
func (e *Embedder) InferConcurrency() int { return e.Concurrency }

func (e *Embedder) BatchSize() int {
	if e.Batch == 0 {
		return 4
	}
	return e.Batch
}

func (e *Embedder) Prepare(key string, data []byte) (*schema.Prepared, error) {
	if e.PrepareDelay > 0 {
		time.Sleep(e.PrepareDelay)
	}
	if e.PreparePanic[key] {
		panic("fake decoder panic on " + key)
	}
	if ie := e.PrepareErr[key]; ie != nil {
		cp := *ie
		return nil, &cp
	}
	if bytes.HasPrefix(data, CorruptPrefix) {
		return nil, &schema.ItemError{Item: key, Stage: "decode", Class: schema.FailDecode, Reason: "fake: corrupt bytes"}
	}
	p := &schema.Prepared{Key: key, Tensor: Vector(data, e.Identity().Dim), Width: 10, Height: 20, Format: "fake"}
	e.mu.Lock()
	e.prepared++
	if e.live == nil {
		e.live = make(map[*schema.Prepared]bool)
	}
	e.live[p] = true
	e.mu.Unlock()
	return p, nil
}

func (e *Embedder) Infer(ctx context.Context, batch []*schema.Prepared) ([]schema.VectorResult, error) {
	keys := make([]string, len(batch))
	for i, p := range batch {
		keys[i] = p.Key
	}
	e.mu.Lock()
	e.inInfer++
	if e.inInfer > 1 {
		e.overlaps++
	}
	e.maxInInfer = max(e.maxInInfer, e.inInfer)
	e.inferCalls++
	e.batches = append(e.batches, keys)
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.inInfer--
		e.mu.Unlock()
	}()
	if e.OnInfer != nil {
		e.OnInfer(keys)
	}
	if e.InferDelay > 0 {
		t := time.NewTimer(e.InferDelay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := e.Fatal[k]; err != nil {
			return nil, err
		}
	}
	out := make([]schema.VectorResult, len(batch))
	for i, p := range batch {
		switch {
		case e.InferErr[p.Key] != nil:
			cp := *e.InferErr[p.Key]
			out[i].Err = &cp
		case e.NaN[p.Key]:
			v := make([]float32, len(p.Tensor))
			v[0] = float32(math.NaN())
			out[i].Vector = v
		default:
			out[i].Vector = append([]float32(nil), p.Tensor...)
		}
	}
	e.mu.Lock()
	e.inferred += len(batch)
	e.mu.Unlock()
	return out, nil
}

func (e *Embedder) Release(p *schema.Prepared) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.live[p] {
		e.doubleFree++
		return
	}
	delete(e.live, p)
	e.released++
}

// EmbedderStats are the fake's counters.
type EmbedderStats struct {
	Prepared, Released int // successful Prepare calls; Release calls of live values
	InferCalls         int
	Inferred           int        // items in successful Infer calls
	Batches            [][]string // keys of every Infer call, in order
	Overlaps           int        // Infer calls that overlapped another (allowed; one run's pipeline makes none unless Concurrency > 1)
	MaxInFlight        int        // the most Infer calls in flight at once
	BadReleases        int        // Release of a value not live (double release or foreign)
}

// Stats returns the counters.
func (e *Embedder) Stats() EmbedderStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	b := make([][]string, len(e.batches))
	copy(b, e.batches)
	return EmbedderStats{e.prepared, e.released, e.inferCalls, e.inferred, b, e.overlaps, e.maxInInfer, e.doubleFree}
}

// InferredKeys returns every key that went through Infer, sorted by call.
func (s EmbedderStats) InferredKeys() []string {
	var out []string
	for _, b := range s.Batches {
		out = append(out, b...)
	}
	return out
}

// String is a summary for test failures.
func (s EmbedderStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "prepared %d, released %d, infer calls %d, inferred %d, overlaps %d, most in flight %d, bad releases %d",
		s.Prepared, s.Released, s.InferCalls, s.Inferred, s.Overlaps, s.MaxInFlight, s.BadReleases)
	return b.String()
}
