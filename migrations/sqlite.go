package migrations

import (
	"embed"
	"io/fs"
)

//go:embed sqlite/*.sql
var sqliteFiles embed.FS

// SQLiteMigrations returns the SQLite sink's migrations (migrations/sqlite),
// validated by Parse.
func SQLiteMigrations() ([]Migration, error) {
	sub, err := fs.Sub(sqliteFiles, "sqlite")
	if err != nil {
		return nil, err
	}
	return Parse(sub)
}
