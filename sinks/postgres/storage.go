package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
)

// Storage is the pgvector type of the items table's embedding column.
type Storage string

const (
	// StorageVector stores float32 elements (4 bytes each): vectors
	// round-trip bit for bit. The default.
	StorageVector Storage = "vector"
	// StorageHalfvec stores IEEE half-precision elements (2 bytes each):
	// half the table, half the bytes to load and to scan, at the cost of
	// rounding each element to 11 significant bits (relative error ≤ 2^-11)
	// and a range of ±65504. Vectors come back as the rounded float32s.
	StorageHalfvec Storage = "halfvec"
)

// WithStorage sets the storage like the DSN's storage parameter (and
// overrides it): the type the embedding column gets while the table is
// empty, and the one Open then insists on. Without either, Open takes the
// table's, and a new table stores vector.
func WithStorage(st Storage) Option { return func(s *Sink) { s.storage = st } }

// maxHalf is the largest finite IEEE half-precision value.
const maxHalf = 65504

// ParseStorage parses "vector" or "halfvec".
func ParseStorage(s string) (Storage, error) {
	switch st := Storage(strings.ToLower(strings.TrimSpace(s))); st {
	case StorageVector, StorageHalfvec:
		return st, nil
	}
	return "", fmt.Errorf("storage %q: want vector or halfvec", s)
}

// ErrStorageMismatch is wrapped by Open's error when the DSN asks for a
// storage the table, which has rows, does not have.
var ErrStorageMismatch = errors.New("storage mismatch")

// Storage is the embedding column's type, as Open found (or made) it; ""
// while the sink is not open.
func (s *Sink) Storage() Storage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stored
}

// settleStorage reads the embedding column's type on the migration
// connection and reconciles it with the DSN's storage parameter: none
// takes the table's; the same is fine; another one is applied when
// mayConvert and the table has no rows (its creation, or before its first
// write: nothing is rounded or rewritten), and refused otherwise with
// ErrStorageMismatch and the statement that converts the table. The caller
// holds s.mu.
func (s *Sink) settleStorage(ctx context.Context, mayConvert bool) (Storage, error) {
	items := s.names.Qualified("")
	const colType = `SELECT t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = to_regclass($1) AND a.attname = 'embedding' AND NOT a.attisdropped`
	var cur string
	if err := s.migConn.QueryRow(ctx, colType, items).Scan(&cur); err != nil {
		return "", s.wrap("read the type of "+items+".embedding", err)
	}
	have, err := ParseStorage(cur)
	if err != nil {
		return "", fmt.Errorf("postgres sink %s: %s.embedding: %w", s.redacted, items, err)
	}
	if s.storage == "" || s.storage == have {
		return have, nil
	}
	if mayConvert {
		converted := false
		err := pgx.BeginFunc(ctx, s.migConn, func(tx pgx.Tx) error {
			// Lock, then look: no writer adds a row between the two.
			if _, err := tx.Exec(ctx, `LOCK TABLE `+items+` IN ACCESS EXCLUSIVE MODE`); err != nil {
				return err
			}
			var rows bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+items+`)`).Scan(&rows); err != nil || rows {
				return err
			}
			// s.storage is one of the two constants: safe to splice.
			if _, err := tx.Exec(ctx, `ALTER TABLE `+items+` ALTER COLUMN embedding TYPE `+string(s.storage)); err != nil {
				return err
			}
			converted = true
			return nil
		})
		if err != nil {
			return "", s.wrap(fmt.Sprintf("set the storage of the empty table %s to %s", items, s.storage), err)
		}
		if converted {
			return s.storage, nil
		}
	}
	how := "lossless"
	if s.storage == StorageHalfvec {
		how = "rounds every element to half precision; fails on elements beyond ±65504"
	}
	return "", fmt.Errorf("postgres sink %s: %w: table %s stores its vectors as %s but the DSN asks for storage=%s "+
		"(the storage is chosen while the table is empty). Drop the storage parameter or set storage=%s, "+
		"or convert the table (rewrites it and rebuilds its indexes; %s): ALTER TABLE %s ALTER COLUMN embedding TYPE %s;",
		s.redacted, ErrStorageMismatch, items, have, s.storage, have, how, items, s.storage)
}

// encodeVector is v as a value of the column's type. For halfvec it
// refuses elements beyond half precision's range (they would become
// infinite); the caller names the item.
func encodeVector(st Storage, v []float32) (any, error) {
	if st != StorageHalfvec {
		return pgvector.NewVector(v), nil
	}
	for i, x := range v {
		if math.Abs(float64(x)) > maxHalf {
			return nil, fmt.Errorf("element %d = %g is beyond halfvec's range (±%d): use storage=vector for this model", i, x, maxHalf)
		}
	}
	return pgvector.NewHalfVector(v), nil
}
