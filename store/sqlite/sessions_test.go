package sqlite

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// TestMigrateSessionsOfRuns opens a database written before sessions existed from
// their first run: the migration creates the sessions its runs name, from each
// session's first top-level run, and completes a session that was saved.
func TestMigrateSessionsOfRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	exec(`CREATE TABLE kern_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`)
	for _, m := range ms {
		if strings.HasSuffix(m.name, "_sessions.sql") {
			break
		}
		exec(m.sql)
		exec(`INSERT INTO kern_schema VALUES (?, ?, 0)`, m.version, m.name)
	}
	at := func(min int) int64 { return time.Date(2025, 6, 1, 12, min, 0, 0, time.UTC).UnixMilli() }
	for _, r := range []struct {
		id, session, parent, user, kind, component, input string
		created                                           int64
	}{
		{"nested", "s1", "top", "u1", "agent", "helper", "nested input", at(0)},
		{"top", "s1", "", "u1", "workflow", "flow", "first input", at(1)},
		{"later", "s1", "", "u2", "agent", "other", "second input", at(5)},
		{"saved-run", "saved", "", "u3", "workflow", "flow", "named by its run", at(2)},
		{"alone", "", "", "u4", "agent", "helper", "no session", at(3)},
	} {
		exec(`INSERT INTO runs (run_id, session_id, parent_run_id, user_id, kind, component_id, status, input, output,
			created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'COMPLETED', ?, CAST('{}' AS BLOB), ?, ?)`,
			r.id, r.session, r.parent, r.user, r.kind, r.component, r.input, r.created, r.created)
	}
	exec(`INSERT INTO sessions (session_id, user_id, kind, component_id, state, created_at, updated_at)
		VALUES ('saved', 'u3', 'workflow', 'flow', CAST('{"k":"v"}' AS BLOB), ?, ?)`, at(3), at(3))
	db.Close()

	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, total, err := s.ListSessions(t.Context(), store.SessionQuery{})
	if err != nil || total != 2 {
		t.Fatalf("ListSessions = %d sessions, %v; want 2", total, err)
	}
	s1, saved := got[0], got[1]
	if s1.ID != "s1" || s1.UserID != "u1" || s1.Kind != run.KindWorkflow || s1.ComponentID != "flow" ||
		s1.Name != "first input" || len(s1.State) != 0 || s1.CreatedAt.UnixMilli() != at(0) || s1.UpdatedAt.UnixMilli() != at(5) {
		t.Errorf("session of runs = %+v; want the top-level run's, from the first run's time to the last's", s1)
	}
	if saved.ID != "saved" || saved.Name != "named by its run" || saved.State["k"] != "v" ||
		saved.CreatedAt.UnixMilli() != at(2) || saved.UpdatedAt.UnixMilli() != at(3) {
		t.Errorf("saved session = %+v; want its state kept, its name and first time from its run", saved)
	}
}
