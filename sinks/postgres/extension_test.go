package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgvec/imgvec/migrations"
)

// A database without the vector extension, migrated by a user who may not
// create it: Open fails with an error naming what the admin must run, and
// applies nothing; once the admin has run it, Open works.
func TestExtensionPermissionDenied(t *testing.T) {
	dsn := testDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "imgvec_noext_" + hex.EncodeToString(b)
	id := pgx.Identifier{name}.Sanitize()
	if _, err := admin.Exec(ctx, `CREATE ROLE `+id+` LOGIN NOSUPERUSER`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if _, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS `+id+` WITH (FORCE)`); err != nil {
			t.Errorf("drop database: %v", err)
		}
		if _, err := admin.Exec(ctx, `DROP ROLE IF EXISTS `+id); err != nil {
			t.Errorf("drop role: %v", err)
		}
		admin.Close(ctx)
	})
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+id+` OWNER `+id+` TEMPLATE template0`); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(name)
	u.Path = "/" + name
	userDSN := u.String()

	s, err := New(withParams(t, userDSN, "schema", "imgvec"), WithAutoMigrate(migrations.AutoMigrateFresh))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Open(ctx, testModel(8))
	if !errors.Is(err, migrations.ErrExtensionPermission) || !strings.Contains(err.Error(), "CREATE EXTENSION IF NOT EXISTS vector;") {
		t.Fatalf("Open without permission to create the extension: %v", err)
	}
	t.Logf("the error: %v", err)
	m, err := s.OpenMigrator(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := m.Status(ctx); err != nil || st.Current != 0 || len(st.Applied) != 0 {
		t.Fatalf("after the refused migration: %+v, %v", st, err)
	}
	_ = s.Close()

	// The admin runs what the message says.
	dbAdmin := *u
	dbAdmin.User = url.User("postgres")
	if orig, _ := url.Parse(dsn); orig.User != nil {
		dbAdmin.User = orig.User
	}
	ac, err := pgx.Connect(ctx, dbAdmin.String())
	if err != nil {
		t.Fatal(err)
	}
	_, err = ac.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS vector;`)
	ac.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(ctx, testModel(8)); err != nil {
		t.Fatalf("Open once the extension exists: %v", err)
	}
	if _, err := s.Status(ctx); err != nil {
		t.Fatal(err)
	}
}
