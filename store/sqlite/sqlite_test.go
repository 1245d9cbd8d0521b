package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/storetest"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		runChild()
		return
	}
	goleak.VerifyTestMain(m)
}

// openTemp opens a store in a new file under t's temp dir, closed at t's end.
func openTemp(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "kern.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

// checkSchema opens path and checks that every migration was recorded once.
func checkSchema(t *testing.T, path string) {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n, v int
	if err := s.r.QueryRowContext(t.Context(), `SELECT COUNT(*), MAX(version) FROM kern_schema`).Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	if n != SchemaVersion() || v != SchemaVersion() {
		t.Errorf("kern_schema holds %d rows up to version %d, want %d", n, v, SchemaVersion())
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kern.db")
	ctx := t.Context()
	s, err := Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	r := &store.Run{ID: "r1", SessionID: "s1", Kind: run.KindAgent, ComponentID: "a", Status: run.StatusRunning,
		Input: "in", Output: run.Output{RunID: "r1", Status: run.StatusRunning, Content: "partial"}}
	if err := s.CreateRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	evs := []store.Event{{RunID: "r1", Index: 0, Type: run.EventRunStarted, Data: []byte(`{"event":"RunStarted"}`), CreatedAt: time.Now()}}
	if err := s.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveSession(ctx, &store.Session{ID: "s1", Kind: run.KindAgent, ComponentID: "a", State: map[string]any{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.GetRun(ctx, "r1")
	if err != nil || got.Output.Content != "partial" || got.Input != "in" {
		t.Errorf("run after reopen: %+v, %v", got, err)
	}
	if evs, err := s.Events(ctx, "r1", 0, 0); err != nil || len(evs) != 1 {
		t.Errorf("events after reopen: %v, %v", evs, err)
	}
	if sess, err := s.GetSession(ctx, "s1"); err != nil || sess.State["k"] != "v" {
		t.Errorf("session after reopen: %+v, %v", sess, err)
	}
	checkSchema(t, path)
}

func TestOpenConcurrentGoroutines(t *testing.T) {
	t.Parallel()
	for round := range 5 {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("g%d.db", round))
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() {
				s, err := Open(t.Context(), path)
				if err == nil {
					err = s.CreateRun(t.Context(), &store.Run{ID: fmt.Sprint(i), Status: run.StatusPending})
					s.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, opener %d: %v", round, i, err)
			}
		}
		checkSchema(t, path)
	}
}

func TestSchemaTooNew(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kern.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	future := SchemaVersion() + 41
	if _, err := s.w.ExecContext(t.Context(), `INSERT INTO kern_schema (version, name, applied_at) VALUES (?, 'future.sql', 0)`, future); err != nil {
		t.Fatal(err)
	}
	s.Close()

	_, err = Open(t.Context(), path)
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema = %v, want ErrSchemaTooNew", err)
	}
	for _, v := range []int{future, SchemaVersion()} {
		if !strings.Contains(err.Error(), fmt.Sprint(v)) {
			t.Errorf("error %q does not name version %d", err, v)
		}
	}
}

func TestOpenBadDSN(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notDB := filepath.Join(dir, "not-a-db")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("this is not a database\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dsn, want string
	}{
		{"empty", "", "no database path"},
		{"empty sqlite URL", "sqlite://", "no database path"},
		{"empty file URI", "file:", "no database path"},
		{"other scheme", "postgres://localhost/kern", `scheme "postgres"`},
		{"malformed URL", "sqlite://%zz/x.db", "invalid URL escape"},
		{"malformed query", filepath.Join(dir, "x.db") + "?a=%zz", "invalid URL escape"},
		{"memory", ":memory:", "in-memory"},
		{"memory mode", "file:x.db?mode=memory", "mode=memory"},
		{"remote file host", "file://example.com/x.db", "host"},
		{"directory", dir, "is a directory"},
		{"missing directory", filepath.Join(dir, "missing", "kern.db"), "no such file or directory"},
		{"parent is a file", filepath.Join(notDB, "kern.db"), "not a directory"},
		{"not a database", notDB, "not a database"},
		{"bad pragma", filepath.Join(dir, "p.db") + "?_pragma=no_such_thing(", "connect: SQL logic error"},
		{"bad driver parameter", filepath.Join(dir, "q.db") + "?_txlock=sometimes&_time_format=nope", "_time_format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(t.Context(), tt.dsn)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", tt.dsn)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open(%q) = %q, want it to mention %q", tt.dsn, err, tt.want)
			}
		})
	}
}

func TestOpenNoPermission(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root ignores file permissions")
	}
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(t.Context(), filepath.Join(dir, "kern.db")); err == nil {
		s.Close()
		t.Fatal("Open in a read-only directory succeeded")
	}
}

func TestDSNForms(t *testing.T) {
	t.Parallel()
	tests := []struct{ dsn, path string }{
		{"/var/lib/kern.db", "/var/lib/kern.db"},
		{"kern.db", "kern.db"},
		{"sqlite:///var/lib/kern.db", "/var/lib/kern.db"},
		{"sqlite://kern.db", "kern.db"},
		{"sqlite://data/kern.db?_pragma=synchronous(FULL)", "data/kern.db"},
		{"file:/var/lib/kern.db", "/var/lib/kern.db"},
		{"file:///var/lib/kern.db", "/var/lib/kern.db"},
		{"file://localhost/var/lib/kern.db", "/var/lib/kern.db"},
		{"file:my%20runs.db?cache=shared", "my runs.db"},
	}
	for _, tt := range tests {
		path, _, err := parseDSN(tt.dsn)
		if err != nil || path != tt.path {
			t.Errorf("parseDSN(%q) = %q, %v; want %q", tt.dsn, path, err, tt.path)
		}
	}
}

// TestPragmas checks that every connection, of the writer and of the read pool,
// has kern's pragmas, the writer its smaller page cache, and that a pragma in the
// DSN replaces kern's default.
func TestPragmas(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tt := range []struct {
		query string
		sync  int
		cache map[string]int // cache_size by connection
	}{
		{"", 1, map[string]int{"writer": -256, "reader": -2000}},
		{"?_pragma=synchronous(FULL)", 2, map[string]int{"writer": -256, "reader": -2000}},
		{"?_pragma=cache_size(-1024)", 1, map[string]int{"writer": -1024, "reader": -1024}},
	} {
		s, err := Open(t.Context(), filepath.Join(dir, "p.db")+tt.query)
		if err != nil {
			t.Fatal(err)
		}
		for name, db := range map[string]*sql.DB{"writer": s.w, "reader": s.r} {
			// Hold several reader connections at once, so that each is checked.
			var conns []*sql.Conn
			for range 3 {
				c, err := db.Conn(t.Context())
				if err != nil {
					if name == "writer" {
						break
					}
					t.Fatal(err)
				}
				conns = append(conns, c)
				var mode string
				var busy, sync, fk, cache int
				if err := c.QueryRowContext(t.Context(), `SELECT * FROM pragma_journal_mode, pragma_busy_timeout, pragma_synchronous, pragma_foreign_keys, pragma_cache_size`).
					Scan(&mode, &busy, &sync, &fk, &cache); err != nil {
					t.Fatal(err)
				}
				if mode != "wal" || busy != 5000 || sync != tt.sync || fk != 1 || cache != tt.cache[name] {
					t.Errorf("%s%s: journal_mode %s, busy_timeout %d, synchronous %d, foreign_keys %d, cache_size %d",
						name, tt.query, mode, busy, sync, fk, cache)
				}
				if name == "writer" {
					break // its pool holds one connection
				}
			}
			for _, c := range conns {
				c.Close()
			}
		}
		s.Close()
	}
}

// TestWriteRuns: WriteRuns creates and updates runs as CreateRun and UpdateRun do,
// each with its own outcome: one refused leaves the others written.
func TestWriteRuns(t *testing.T) {
	t.Parallel()
	s := openPath(t, filepath.Join(t.TempDir(), "kern.db"))
	rec := func(id string, st run.Status) *store.Run {
		return &store.Run{ID: id, Kind: run.KindWorkflow, Status: st, Input: "go",
			Output: run.Output{RunID: id, Status: st}, CreatedAt: time.Now()}
	}
	if err := s.CreateRun(t.Context(), rec("taken", run.StatusRunning)); err != nil {
		t.Fatal(err)
	}
	cerrs, uerrs := s.WriteRuns(t.Context(),
		[]*store.Run{rec("new", run.StatusRunning), rec("taken", run.StatusRunning)},
		[]*store.Run{rec("taken", run.StatusCompleted), rec("missing", run.StatusCompleted)})
	if len(cerrs) != 2 || cerrs[0] != nil || !errors.Is(cerrs[1], store.ErrExists) {
		t.Errorf("create outcomes = %v, want nil and ErrExists", cerrs)
	}
	if len(uerrs) != 2 || uerrs[0] != nil || !errors.Is(uerrs[1], store.ErrNotFound) {
		t.Errorf("update outcomes = %v, want nil and ErrNotFound", uerrs)
	}
	if r, err := s.GetRun(t.Context(), "new"); err != nil || r.Status != run.StatusRunning {
		t.Errorf("new run = %+v, %v", r, err)
	}
	if r, err := s.GetRun(t.Context(), "taken"); err != nil || r.Status != run.StatusCompleted {
		t.Errorf("updated run = %+v, %v", r, err)
	}
	big := rec("big", run.StatusRunning)
	big.Input = strings.Repeat("x", store.MaxValueSize+1)
	if cerrs, _ := s.WriteRuns(t.Context(), []*store.Run{big, rec("small", run.StatusRunning)}, nil); !errors.Is(cerrs[0], store.ErrTooLarge) || cerrs[1] != nil {
		t.Errorf("outcomes of an oversized run beside another = %v", cerrs)
	}
}
