package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/storetest"
)

// testURL is the PostgreSQL the tests use.
func testURL() string {
	if u := os.Getenv("KERN_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// unreachable says why PostgreSQL cannot be used, or is empty when it can.
var unreachable string

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	conn, err := adminConn(ctx)
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(ctx)
	}
	cancel()
	if err != nil {
		unreachable = fmt.Sprintf("cannot reach PostgreSQL at KERN_TEST_POSTGRES_URL=%q: %v", redact(testURL()), err)
		fmt.Fprintf(os.Stderr, "\n"+
			"!!! store/postgres: PostgreSQL TESTS SKIPPED: %s\n"+
			"!!! Start PostgreSQL (trust auth, database test) or set KERN_TEST_POSTGRES_URL to enable them.\n\n",
			unreachable)
	}
	goleak.VerifyTestMain(m)
}

// adminConn connects to the test database outside any store.
func adminConn(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgxpool.ParseConfig(testURL()) // which knows the pool_ parameters
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, cfg.ConnConfig)
}

// testConfig is the test database's connection configuration.
func testConfig(t testing.TB) *pgx.ConnConfig {
	cfg, err := pgxpool.ParseConfig(testURL())
	if err != nil {
		t.Fatal(err)
	}
	return cfg.ConnConfig
}

// withParam adds a parameter to a postgres:// URL.
func withParam(u, key, value string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + url.QueryEscape(key) + "=" + url.QueryEscape(value)
}

// redact hides a URL's password.
func redact(u string) string {
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil || cfg.ConnConfig.Password == "" {
		return u
	}
	return "(a URL with a password)"
}

// needPostgres skips the test, loudly, when PostgreSQL cannot be reached; in CI,
// where PostgreSQL is started for the tests, it fails it instead.
func needPostgres(t testing.TB) {
	t.Helper()
	if unreachable == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("PostgreSQL is required in CI: %s", unreachable)
	}
	t.Skipf("PostgreSQL TESTS SKIPPED: %s; start PostgreSQL or set KERN_TEST_POSTGRES_URL to enable them", unreachable)
}

// newSchema returns the name of a fresh schema, dropped with everything in it
// when the test ends.
func newSchema(t testing.TB) string {
	t.Helper()
	needPostgres(t)
	b := make([]byte, 6)
	rand.Read(b)
	name := "kern_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := adminConn(ctx)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// openTest opens a store in a fresh schema of its own, closed when the test ends.
func openTest(t testing.TB, opts ...Option) *Store {
	t.Helper()
	schema := newSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, testURL(), append([]Option{WithSchema(schema)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	needPostgres(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t) })
}

// TestMigrateConcurrently opens one new schema from several pools at once: each
// migration is applied once, and every Open succeeds.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	const n = 6
	var (
		wg     sync.WaitGroup
		errs   = make([]error, n)
		stores = make([]*Store, n)
	)
	for i := range n {
		wg.Go(func() {
			stores[i], errs[i] = Open(t.Context(), testURL(), WithSchema(schema), WithMaxConns(2))
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
	s2, err := Open(t.Context(), testURL(), WithSchema(s.Schema()))
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
	s2, err := Open(t.Context(), testURL(), WithSchema(s.Schema()))
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
		st, err := Open(ctx, testURL(), WithSchema(s.Schema()), WithMaxConns(2))
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
