package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// TestMigrateSessionsOfRuns opens a schema written before sessions existed from
// their first run: the migration creates the sessions its runs name, from each
// session's first top-level run, and completes a session that was saved.
func TestMigrateSessionsOfRuns(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	ctx := t.Context()
	tx := migratedBefore(t, schema, "_sessions.sql")
	at := func(min int) time.Time { return time.Date(2025, 6, 1, 12, min, 0, 0, time.UTC) }
	for _, r := range []struct {
		id, session, parent, user, kind, component, input string
		created                                           time.Time
	}{
		{"nested", "s1", "top", "u1", "agent", "helper", "nested input", at(0)},
		{"top", "s1", "", "u1", "workflow", "flow", "first input", at(1)},
		{"later", "s1", "", "u2", "agent", "other", "second input", at(5)},
		{"saved-run", "saved", "", "u3", "workflow", "flow", "named by its run", at(2)},
		{"alone", "", "", "u4", "agent", "helper", "no session", at(3)},
	} {
		if _, err := tx.Exec(ctx, `INSERT INTO runs (run_id, session_id, parent_run_id, user_id, kind, component_id,
			status, input, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'COMPLETED', $7, $8, $8)`,
			r.id, r.session, r.parent, r.user, r.kind, r.component, r.input, r.created); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO sessions (session_id, user_id, kind, component_id, state, created_at, updated_at)
		VALUES ('saved', 'u3', 'workflow', 'flow', '{"k":"v"}', $1, $1)`, at(3)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, pgtest.URL(), WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, total, err := s.ListSessions(ctx, store.SessionQuery{})
	if err != nil || total != 2 {
		t.Fatalf("ListSessions = %d sessions, %v; want 2", total, err)
	}
	s1, saved := got[0], got[1]
	if s1.ID != "s1" || s1.UserID != "u1" || s1.Kind != run.KindWorkflow || s1.ComponentID != "flow" ||
		s1.Name != "first input" || len(s1.State) != 0 || !s1.CreatedAt.Equal(at(0)) || !s1.UpdatedAt.Equal(at(5)) {
		t.Errorf("session of runs = %+v; want the top-level run's, from the first run's time to the last's", s1)
	}
	if saved.ID != "saved" || saved.Name != "named by its run" || saved.State["k"] != "v" ||
		!saved.CreatedAt.Equal(at(2)) || !saved.UpdatedAt.Equal(at(3)) {
		t.Errorf("saved session = %+v; want its state kept, its name and first time from its run", saved)
	}
}

// migratedBefore creates schema with the migrations before the one whose name ends
// in suffix applied, in a transaction it returns with search_path set to schema,
// for the test to store what that version held and commit; rolled back if not.
func migratedBefore(t *testing.T, schema, suffix string) pgx.Tx {
	t.Helper()
	ctx := t.Context()
	conn, err := pgtest.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) }) //nolint:errcheck // after Commit it is a no-op
	quoted := pgx.Identifier{schema}.Sanitize()
	for _, q := range []string{"CREATE SCHEMA " + quoted, "SET LOCAL search_path TO " + quoted,
		`CREATE TABLE kern_schema (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range migrations {
		if strings.HasSuffix(m.name, suffix) {
			break
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO kern_schema (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
			t.Fatal(err)
		}
	}
	return tx
}
