package migrations

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Migration is one numbered schema change with its inverse.
type Migration struct {
	Version int    // 1, 2, 3, ... without gaps
	Name    string // from the file name, e.g. "initial"
	Up      string // SQL applied by Up
	Down    string // SQL that undoes Up
}

// Direction says which way a step goes.
type Direction string

const (
	DirectionUp   Direction = "up"
	DirectionDown Direction = "down"
)

// ErrInvalidSet is wrapped by Parse errors: a set of migration files with a
// gap, a duplicate version, a missing up or down half, or a file name that
// does not follow NNNN_name.(up|down).sql.
var ErrInvalidSet = errors.New("invalid migration set")

var fileRE = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.(up|down)\.sql$`)

// Parse reads the migration files at the top level of fsys. Every version
// has exactly one NNNN_name.up.sql and one NNNN_name.down.sql with the same
// name; versions start at 0001 and have no gaps. Files not ending in .sql
// are ignored; a .sql file with another name is an error.
func Parse(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migration files: %w", err)
	}
	byVersion := map[int]*Migration{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		m := fileRE.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("%w: file %q does not match NNNN_name.up.sql or NNNN_name.down.sql", ErrInvalidSet, e.Name())
		}
		version, _ := strconv.Atoi(m[1])
		name, dir := m[2], Direction(m[3])
		if version == 0 {
			return nil, fmt.Errorf("%w: file %q: versions start at 0001", ErrInvalidSet, e.Name())
		}
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		mig := byVersion[version]
		if mig == nil {
			mig = &Migration{Version: version, Name: name}
			byVersion[version] = mig
		} else if mig.Name != name {
			return nil, fmt.Errorf("%w: duplicate version %04d: %q and %q", ErrInvalidSet, version, mig.Name, name)
		}
		sql := string(body)
		if strings.TrimSpace(sql) == "" {
			return nil, fmt.Errorf("%w: file %q is empty", ErrInvalidSet, e.Name())
		}
		switch dir {
		case DirectionUp:
			mig.Up = sql
		case DirectionDown:
			mig.Down = sql
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		switch {
		case m.Up == "":
			return nil, fmt.Errorf("%w: version %04d_%s has no .up.sql file", ErrInvalidSet, m.Version, m.Name)
		case m.Down == "":
			return nil, fmt.Errorf("%w: version %04d_%s has no .down.sql file", ErrInvalidSet, m.Version, m.Name)
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	if err := validate(out); err != nil {
		return nil, err
	}
	return out, nil
}

// validate checks that versions are exactly 1..len(ms), in order.
func validate(ms []Migration) error {
	if len(ms) == 0 {
		return fmt.Errorf("%w: no migrations", ErrInvalidSet)
	}
	for i, m := range ms {
		want := i + 1
		switch {
		case m.Version < want:
			return fmt.Errorf("%w: duplicate version %04d", ErrInvalidSet, m.Version)
		case m.Version > want:
			return fmt.Errorf("%w: gap: version %04d is missing before %04d_%s", ErrInvalidSet, want, m.Version, m.Name)
		case m.Up == "" || m.Down == "":
			return fmt.Errorf("%w: version %04d_%s lacks its up or down SQL", ErrInvalidSet, m.Version, m.Name)
		}
	}
	return nil
}
