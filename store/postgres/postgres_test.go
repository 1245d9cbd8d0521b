package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/storetest"
)

func TestMain(m *testing.M) {
	if err := pgtest.Ping(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "\n!!! store/postgres: PostgreSQL TESTS SKIPPED: %v\n"+
			"!!! Start PostgreSQL (trust auth, database test) or set KERN_TEST_POSTGRES_URL to enable them.\n\n", err)
	}
	goleak.VerifyTestMain(m)
}

// openTest opens a store in a fresh schema of its own, closed when the test ends.
func openTest(t testing.TB, opts ...Option) *Store {
	t.Helper()
	schema := pgtest.Schema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, pgtest.URL(), append([]Option{WithSchema(schema)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	pgtest.Need(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t) })
}

// TestMigrateConcurrently opens one new schema from several pools at once: each
// migration is applied once, and every Open succeeds.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	const n = 6
	var (
		wg     sync.WaitGroup
		errs   = make([]error, n)
		stores = make([]*Store, n)
	)
	for i := range n {
		wg.Go(func() {
			stores[i], errs[i] = Open(t.Context(), pgtest.URL(), WithSchema(schema), WithMaxConns(2))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	var versions []int
	rows, err := stores[0].pool.Query(t.Context(), "SELECT version FROM "+pgx.Identifier{schema, "kern_schema"}.Sanitize()+" ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	versions, err = pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != SchemaVersion() || versions[len(versions)-1] != SchemaVersion() {
		t.Errorf("kern_schema versions = %v, want 1..%d once each", versions, SchemaVersion())
	}
	// Every store works on the one schema.
	for i, s := range stores {
		r := &store.Run{ID: fmt.Sprintf("run-%d", i), Status: "RUNNING"}
		if err := s.CreateRun(t.Context(), r); err != nil {
			t.Errorf("store %d: CreateRun: %v", i, err)
		}
	}
	runs, err := stores[0].ListRuns(t.Context(), store.RunQuery{})
	if err != nil || len(runs) != n {
		t.Errorf("ListRuns = %d runs, %v; want %d", len(runs), err, n)
	}
}

// TestSchemaTooNew refuses a database whose schema a newer kern wrote, naming
// both versions.
func TestSchemaTooNew(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	_, err := s.pool.Exec(t.Context(), "INSERT INTO "+pgx.Identifier{s.Schema(), "kern_schema"}.Sanitize()+
		" (version, name) VALUES (999, '0999_future.sql')")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Open(t.Context(), pgtest.URL(), WithSchema(s.Schema()))
	if err == nil {
		s2.Close()
		t.Fatal("Open succeeded on a schema at version 999")
	}
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Errorf("Open: %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{"999", fmt.Sprint(SchemaVersion())} {
		if !containsWord(err.Error(), want) {
			t.Errorf("Open: %q does not name version %s", err, want)
		}
	}
}

func containsWord(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i:i+len(w)] == w && (i == 0 || !isDigit(s[i-1])) && (i+len(w) == len(s) || !isDigit(s[i+len(w)])) {
			return true
		}
	}
	return false
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// TestReopen keeps what was written across a Close and an Open of the same schema.
func TestReopen(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	if err := s.CreateRun(t.Context(), &store.Run{ID: "r1", Status: "COMPLETED", Input: "hi"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := Open(t.Context(), pgtest.URL(), WithSchema(s.Schema()))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	r, err := s2.GetRun(t.Context(), "r1")
	if err != nil || r.Input != "hi" {
		t.Fatalf("GetRun after reopen = %+v, %v", r, err)
	}
}

// TestInterruptRace runs recovery from several replicas at once on one schema:
// each lapsed run is ended by exactly one of them, and a run with a live lease by
// none.
func TestInterruptRace(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	now := time.Now()
	const lapsed = 200
	for i := range lapsed {
		r := &store.Run{ID: fmt.Sprintf("lapsed-%03d", i), Status: run.StatusRunning, Replica: "dead",
			LeaseUntil: now.Add(-time.Minute), Output: run.Output{Content: "partial"}}
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	live := &store.Run{ID: "live", Status: run.StatusRunning, Replica: "alive", LeaseUntil: now.Add(time.Minute)}
	if err := s.CreateRun(ctx, live); err != nil {
		t.Fatal(err)
	}
	const replicas = 4
	var (
		wg    sync.WaitGroup
		ended [replicas][]*store.Run
		errs  [replicas]error
	)
	for i := range replicas {
		st, err := Open(ctx, pgtest.URL(), WithSchema(s.Schema()), WithMaxConns(2))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		wg.Go(func() { ended[i], errs[i] = st.Interrupt(ctx, now, "interrupted") })
	}
	wg.Wait()
	seen := map[string]int{}
	for i := range replicas {
		if errs[i] != nil {
			t.Errorf("replica %d: %v", i, errs[i])
		}
		for _, r := range ended[i] {
			seen[r.ID]++
			if r.Status != run.StatusError || r.Output.Error != "interrupted" || r.Output.Content != "partial" {
				t.Errorf("replica %d ended %s as %s/%q with content %q", i, r.ID, r.Status, r.Output.Error, r.Output.Content)
			}
		}
	}
	if len(seen) != lapsed {
		t.Errorf("%d runs ended, want %d", len(seen), lapsed)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("run %s ended by %d replicas", id, n)
		}
	}
	if got, err := s.GetRun(ctx, "live"); err != nil || got.Status != run.StatusRunning {
		t.Errorf("run with a live lease: %+v, %v", got, err)
	}
}

// TestReadCommitted: the store's transactions are READ COMMITTED even when the
// connection string asks for a stricter default, as its appends need.
func TestReadCommitted(t *testing.T) {
	url := pgtest.WithParam(pgtest.URL(), "default_transaction_isolation", "repeatable read")
	s, err := Open(context.Background(), url, WithSchema(pgtest.Schema(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var level string
	if err := s.pool.QueryRow(context.Background(), "SHOW transaction_isolation").Scan(&level); err != nil {
		t.Fatal(err)
	}
	if level != "read committed" {
		t.Errorf("transaction_isolation = %q, want read committed", level)
	}
}
