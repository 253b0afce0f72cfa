package milvus

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/milvus-io/milvus-sdk-go/v2/client"
	"github.com/milvus-io/milvus-sdk-go/v2/entity"

	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
)

// step is one Milvus migration: Go functions instead of SQL. Each is
// idempotent (create-if-absent, drop-if-present), because Milvus has no
// transaction to put the step and its ledger row in: the ledger row is
// written after the step, so a crash between them leaves a step that the
// next `migrate up` runs again harmlessly.
type step struct {
	name     string
	up, down string // what the step does, shown by --dry-run
	apply    func(ctx context.Context, s *Sink, dir migrations.Direction) error
}

var steps = []step{{
	name: "initial",
	up:   "create collections NAME_failures (ledger) and NAME_runs (runs), indexed and loaded; item collections NAME_vN are created per model at Open",
	down: "drop NAME_failures, NAME_runs, every item collection NAME_vN (and its meta rows) and the alias NAME",
	apply: func(ctx context.Context, s *Sink, dir migrations.Direction) error {
		if dir == migrations.DirectionUp {
			for _, sc := range []*entity.Schema{failuresSchema(s.cfg.failuresName()), runsSchema(s.cfg.runsName())} {
				if err := create(ctx, s.c, sc, placeholderIndex()); err != nil {
					return err
				}
			}
			return nil
		}
		names, err := CollectionNames(ctx, s.c)
		if err != nil {
			return err
		}
		if err := s.c.DropAlias(ctx, s.cfg.base); err != nil && !notFound(err) && !unsupported(err) {
			return fmt.Errorf("drop alias %s: %w", s.cfg.base, err)
		}
		for _, name := range names {
			if _, ok := s.cfg.itemsVersion(name); ok || name == s.cfg.failuresName() || name == s.cfg.runsName() {
				if err := s.c.DropCollection(ctx, name); err != nil && !notFound(err) {
					return fmt.Errorf("drop collection %s: %w", name, err)
				}
			}
		}
		// The meta rows of the dropped collections go with them.
		expr := eq(fID, metaCurrent)
		for _, prefix := range []string{metaRetiredPrefix, metaItemsPrefix, metaCompletePrefix} {
			expr += " || " + fID + " like " + quote(prefix+"%")
		}
		return s.c.Delete(ctx, s.cfg.metaName(), "", expr)
	},
}, {
	name: "runs_shard",
	up:   "rebuild NAME_runs with the fields shard, skipped and runner_* (copied through NAME_runs_rebuild; a collection already at that layout is kept)",
	down: "rebuild NAME_runs without the fields shard, skipped and runner_* (their values are lost)",
	apply: func(ctx context.Context, s *Sink, dir migrations.Direction) error {
		if dir == migrations.DirectionUp {
			return s.rebuildRuns(ctx, 2)
		}
		return s.rebuildRuns(ctx, 1)
	},
}}

func milvusMigrations() []migrations.Migration {
	ms := make([]migrations.Migration, len(steps))
	for i, st := range steps {
		ms[i] = migrations.Migration{Version: i + 1, Name: st.name, Up: st.up, Down: st.down}
	}
	return ms
}

// driver implements migrations.Driver over the meta collection NAME_meta,
// whose rows "migration/NNNN" are the ledger.
type driver struct{ s *Sink }

type ledgerRow struct {
	Name      string    `json:"name"`
	AppliedAt time.Time `json:"applied_at"`
}

func (d driver) Applied(ctx context.Context) ([]migrations.AppliedVersion, error) {
	ok, err := d.s.c.HasCollection(ctx, d.s.cfg.metaName())
	if err != nil {
		return nil, fmt.Errorf("check collection %s: %w", d.s.cfg.metaName(), err)
	}
	if !ok {
		return nil, nil
	}
	if err := loadAll(ctx, d.s.c, d.s.cfg.metaName()); err != nil {
		return nil, err
	}
	rows, err := d.s.metaScan(ctx, metaMigration)
	if err != nil {
		return nil, err
	}
	var out []migrations.AppliedVersion
	for k, v := range rows {
		var version int
		var lr ledgerRow
		if _, err := fmt.Sscanf(k, metaMigration+"%d", &version); err != nil || json.Unmarshal([]byte(v), &lr) != nil {
			return nil, fmt.Errorf("migration ledger row %q in %s is malformed", k, d.s.cfg.metaName())
		}
		out = append(out, migrations.AppliedVersion{Version: version, Name: lr.Name, AppliedAt: lr.AppliedAt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

func (d driver) Apply(ctx context.Context, st migrations.Step) error {
	if err := create(ctx, d.s.c, metaSchema(d.s.cfg.metaName()), placeholderIndex()); err != nil {
		return err
	}
	if err := loadAll(ctx, d.s.c, d.s.cfg.metaName()); err != nil {
		return err
	}
	key := fmt.Sprintf("%s%04d", metaMigration, st.Version)
	_, present, err := d.s.metaGet(ctx, key)
	if err != nil {
		return err
	}
	if present != (st.Direction == migrations.DirectionDown) {
		return fmt.Errorf("%w: version %04d", migrations.ErrConflict, st.Version)
	}
	if st.Version < 1 || st.Version > len(steps) {
		return fmt.Errorf("milvus migration %04d: unknown version", st.Version)
	}
	if err := steps[st.Version-1].apply(ctx, d.s, st.Direction); err != nil {
		return fmt.Errorf("milvus migration %04d_%s %s: %w", st.Version, st.Name, st.Direction, err)
	}
	if st.Direction == migrations.DirectionDown {
		return d.s.retry(ctx, "delete migration ledger row", func(ctx context.Context) error {
			return d.s.c.Delete(ctx, d.s.cfg.metaName(), "", eq(fID, key))
		})
	}
	row, _ := json.Marshal(ledgerRow{Name: st.Name, AppliedAt: time.Now().UTC()})
	return d.s.metaPut(ctx, key, string(row))
}

func (s *Sink) migrator() (*migrations.Migrator, error) {
	return migrations.New(driver{s}, milvusMigrations())
}

// OpenMigrator connects without Open's checks and returns the runner for
// `imgvec migrate up|down|status`. It is valid until Close.
func (s *Sink) OpenMigrator(ctx context.Context) (*migrations.Migrator, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	return s.migrator()
}

// metaPut upserts one meta row.
func (s *Sink) metaPut(ctx context.Context, key, value string) error {
	return s.retry(ctx, "write meta row "+key, func(ctx context.Context) error {
		_, err := s.c.Upsert(ctx, s.cfg.metaName(), "",
			entity.NewColumnVarChar(fID, []string{key}),
			entity.NewColumnFloatVector(fVector, placeholderDim, [][]float32{placeholder}),
			entity.NewColumnVarChar(fValue, []string{value}))
		return err
	})
}

func (s *Sink) metaGet(ctx context.Context, key string) (string, bool, error) {
	rs, err := s.c.Query(ctx, s.cfg.metaName(), nil, eq(fID, key), []string{fValue}, strong)
	if err != nil {
		return "", false, fmt.Errorf("read meta row %s: %w", key, err)
	}
	if rs.Len() == 0 {
		return "", false, nil
	}
	v, err := rs.GetColumn(fValue).GetAsString(0)
	return v, err == nil, err
}

// metaScan returns the meta rows whose key starts with prefix, one of the
// constants above, possibly followed by a collection name (no like
// wildcards in them).
func (s *Sink) metaScan(ctx context.Context, prefix string) (map[string]string, error) {
	out := map[string]string{}
	err := scan(ctx, s.c, s.cfg.metaName(), fID+" like "+quote(prefix+"%"), []string{fID, fValue}, func(rs client.ResultSet) error {
		for i := range rs.Len() {
			k, _ := rs.GetColumn(fID).GetAsString(i)
			v, _ := rs.GetColumn(fValue).GetAsString(i)
			out[k] = v
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read meta rows %s*: %w", prefix, err)
	}
	return out, nil
}

// rebuildRuns brings NAME_runs to layout version (runsSchemaV): Milvus 2.3
// cannot add or drop fields, so the rows are copied into NAME_runs_rebuild
// of the new layout, NAME_runs is dropped and created anew, the rows are
// copied back and NAME_runs_rebuild is dropped. Crash-safe and idempotent:
// NAME_runs is dropped only once the copy holds every row, so the state
// found says what is left to do —
//
//   - NAME_runs at the old layout: any NAME_runs_rebuild is a partial copy;
//     start over.
//   - NAME_runs missing, or at the new layout, beside NAME_runs_rebuild:
//     the copy is complete; (re)create NAME_runs, copy back (upserts), drop
//     the copy.
//   - NAME_runs at the new layout alone: done.
func (s *Sink) rebuildRuns(ctx context.Context, version int) error {
	runs, tmp := s.cfg.runsName(), s.cfg.runsName()+"_rebuild"
	want := runsSchemaV(runs, version)
	has := func(name string) (bool, error) {
		ok, err := s.c.HasCollection(ctx, name)
		if err != nil {
			return false, fmt.Errorf("check collection %s: %w", name, err)
		}
		return ok, nil
	}
	hasRuns, err := has(runs)
	if err != nil {
		return err
	}
	hasTmp, err := has(tmp)
	if err != nil {
		return err
	}
	atLayout := false
	if hasRuns {
		coll, err := s.c.DescribeCollection(ctx, runs)
		if err != nil {
			return fmt.Errorf("describe %s: %w", runs, err)
		}
		atLayout = sameFields(coll.Schema, want)
		if !atLayout {
			if hasTmp {
				if err := s.c.DropCollection(ctx, tmp); err != nil && !notFound(err) {
					return fmt.Errorf("drop partial copy %s: %w", tmp, err)
				}
			}
			if err := s.copyRuns(ctx, runs, tmp, version, coll.Schema); err != nil {
				return err
			}
			if err := s.c.DropCollection(ctx, runs); err != nil && !notFound(err) {
				return fmt.Errorf("drop %s: %w", runs, err)
			}
			hasTmp, atLayout = true, false
		}
	}
	if !hasTmp {
		return nil // at the layout already (or nothing to rebuild: step 1 creates it)
	}
	tmpSchema := runsSchemaV(tmp, version)
	if err := s.copyRuns(ctx, tmp, runs, version, tmpSchema); err != nil {
		return err
	}
	if err := s.c.DropCollection(ctx, tmp); err != nil && !notFound(err) {
		return fmt.Errorf("drop %s: %w", tmp, err)
	}
	return nil
}

// copyRuns creates to (runs layout version, if absent), copies every row
// of from (whose schema is fromSchema) into it, and checks that to holds
// at least as many rows.
func (s *Sink) copyRuns(ctx context.Context, from, to string, version int, fromSchema *entity.Schema) error {
	if err := create(ctx, s.c, runsSchemaV(to, version), placeholderIndex()); err != nil {
		return err
	}
	if err := loadAll(ctx, s.c, from, to); err != nil {
		return err
	}
	var batch []schema.Run
	var copied int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.upsertRuns(ctx, s.c, to, version, batch); err != nil {
			return err
		}
		copied += int64(len(batch))
		batch = batch[:0]
		return nil
	}
	err := scan(ctx, s.c, from, "", runFieldsOf(fromSchema), func(rs client.ResultSet) error {
		for i := range rs.Len() {
			batch = append(batch, row{rs, i}.run())
		}
		return flush()
	})
	if err != nil {
		return fmt.Errorf("copy runs %s → %s: %w", from, to, err)
	}
	n, err := count(ctx, s.c, to, "")
	if err != nil {
		return err
	}
	if n < copied {
		return fmt.Errorf("copy runs %s → %s: %d rows copied, %d found", from, to, copied, n)
	}
	return nil
}

// sameFields reports whether got has exactly want's field names.
func sameFields(got, want *entity.Schema) bool {
	if len(got.Fields) != len(want.Fields) {
		return false
	}
	names := map[string]bool{}
	for _, f := range got.Fields {
		names[f.Name] = true
	}
	for _, f := range want.Fields {
		if !names[f.Name] {
			return false
		}
	}
	return true
}
