package connector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/imgvec/imgvec/schema"
)

// reader reads and hashes items and decides how each continues. After a
// soft stop it takes no new item; a read in progress completes.
func (rs *runState) reader(gctx, softCtx context.Context, in <-chan *item, out chan<- *item) error {
	return relay(gctx, softCtx, in, out, func(it *item) error { return rs.read(gctx, it) }, nil)
}

func (rs *runState) read(ctx context.Context, it *item) error {
	if it.kind == kindFailed { // refused when listed
		return nil
	}
	start := time.Now()
	data, err := rs.readSource(ctx, it)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, fs.ErrNotExist) {
		// Vanished since the listing: a vanished item, not a failure.
		it.kind = kindVanished
		return nil
	}
	if err != nil {
		class := schema.FailIO
		switch {
		case errors.Is(err, ErrTooLarge):
			class = schema.FailTooLarge
		case errors.Is(err, ErrGone):
			class = schema.FailGone
			it.gone = it.found && it.stored.Failed && it.stored.Class == schema.FailGone
		}
		it.failWith(err, "read", class)
		return nil
	}
	if it.kind == kindUnchanged {
		rs.observe(StageRead, 1, start)
		return nil
	}
	sum := sha256.Sum256(data)
	it.size, it.sha = int64(len(data)), hex.EncodeToString(sum[:])
	rs.observe(StageRead, 1, start)
	if len(data) == 0 {
		it.fail("read", schema.FailEmpty, "zero bytes", nil)
		return nil
	}
	// Same bytes as the stored row of the current model: keep the vector.
	if it.found && !it.stored.Failed && it.stored.ModelID == rs.modelID && it.stored.SHA256 == it.sha {
		it.kind = kindMeta
		return nil
	}
	// The same bytes may be stored under another key (a copy or a move):
	// the filter may say so falsely (a lookup that finds nothing), and
	// says so for every item until the stored stream has been read.
	if rs.d.shas.mayHaveString(it.sha) {
		vec, err := rs.lookup(ctx, it.sha)
		if err != nil {
			return err
		}
		if vec != nil {
			it.kind, it.vec = kindReuse, vec
			return nil
		}
	}
	it.kind, it.data = kindExtract, data
	return nil
}

// readSource reads the item's bytes; an ItemReader source also gives the
// fingerprint they were read at and the item's metadata.
func (rs *runState) readSource(ctx context.Context, it *item) ([]byte, error) {
	ir, ok := rs.src.(ItemReader)
	if !ok {
		return rs.src.Read(ctx, it.entry.Key)
	}
	var stored *schema.Fingerprint
	if it.found && !it.stored.Failed && it.stored.ModelID == rs.modelID {
		stored = &it.stored.Fingerprint
	}
	c, err := ir.ReadItem(ctx, it.entry, stored)
	if err != nil {
		return nil, err
	}
	if c.NotModified && stored != nil {
		it.kind = kindUnchanged
		return nil, nil
	}
	it.entry.Size, it.entry.MTime, it.entry.ETag = c.Entry.Size, c.Entry.MTime, c.Entry.ETag
	it.meta = c.Metadata
	return c.Data, nil
}

// lookup returns the stored vector of the current model with that sha256,
// or nil if there is none (any more) or it is unusable.
func (rs *runState) lookup(ctx context.Context, sha string) ([]float32, error) {
	rs.sinkMu.Lock()
	m, err := rs.sink.VectorsBySHA256(ctx, rs.modelID, []string{sha})
	rs.sinkMu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("look up stored vector by sha256 %s: %w", sha, err)
	}
	vec := m[sha]
	if schema.CheckVector(vec, rs.model.Dim) != nil {
		return nil, nil
	}
	return vec, nil
}
