package postgres

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kern-dev/kern/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one numbered schema change.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations are the embedded migrations in order of version: files named
// migrations/NNNN_what.sql, numbered from 1 without gaps.
var migrations = mustLoadMigrations(migrationFS)

func mustLoadMigrations(fsys fs.FS) []migration {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		panic(err)
	}
	var ms []migration
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			panic("store/postgres: migration " + name + " is not named NNNN_what.sql")
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			panic(err)
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			panic(fmt.Sprintf("store/postgres: migration %s: want version %d", m.name, i+1))
		}
	}
	return ms
}

// SchemaVersion is the version of the newest schema this binary knows.
func SchemaVersion() int { return len(migrations) }

// lockKey is the advisory lock that serialises migrations of one schema across
// processes.
func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("kern/store/postgres migrate " + schema))
	return int64(h.Sum64())
}

// migrate brings the schema up to date in one transaction that holds the
// schema's advisory lock, so that processes opening the database at once apply
// each migration exactly once and none reads a half-made schema.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("store/postgres: migrate: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit it is a no-op
	if err := s.migrateTx(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("store/postgres: migrate: commit: %w", err)
	}
	return nil
}

func (s *Store) migrateTx(ctx context.Context, tx pgx.Tx) error {
	schema := pgx.Identifier{s.schema}.Sanitize()
	fail := func(what string, err error) error {
		return fmt.Errorf("store/postgres: migrate schema %s: %s: %w", s.schema, what, err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey(s.schema)); err != nil {
		return fail("lock", err)
	}
	// Look before creating: CREATE SCHEMA IF NOT EXISTS needs the CREATE
	// privilege on the database even when the schema exists.
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", s.schema).Scan(&exists); err != nil {
		return fail("look for schema", err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
			return fail("create schema", err)
		}
	}
	if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+schema); err != nil {
		return fail("set search_path", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS kern_schema (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fail("create kern_schema", err)
	}
	var have int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM kern_schema").Scan(&have); err != nil {
		return fail("read version", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("store/postgres: schema %s is at version %d, this binary knows versions up to %d: %w",
			s.schema, have, len(migrations), store.ErrSchemaTooNew)
	}
	for _, m := range migrations[have:] {
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fail("apply "+m.name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO kern_schema (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
			return fail("record "+m.name, err)
		}
	}
	return nil
}
