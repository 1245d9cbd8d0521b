// Package pgtest gives each test a PostgreSQL schema of its own, as River's
// riverdbtest does: the tests of every package share one database and run in
// parallel, each in a fresh schema dropped when it ends.
//
// The database is KERN_TEST_POSTGRES_URL (DefaultURL if unset). Without a server
// that answers, the tests that need one skip, loudly; under CI (CI set, and not
// "false") they fail instead, since CI starts PostgreSQL for them.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultURL is the test database when KERN_TEST_POSTGRES_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// SchemaPrefix begins the name of every schema Schema makes.
const SchemaPrefix = "kern_test_"

// patience bounds a probe, a connection and a schema's drop.
const patience = 30 * time.Second

// URL returns the test database's URL.
func URL() string {
	if u := os.Getenv("KERN_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// WithParam returns the postgres:// URL u with the query parameter key set to
// value (added after those u has).
func WithParam(u, key, value string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + url.QueryEscape(key) + "=" + url.QueryEscape(value)
}

// SchemaURL returns the test database's URL with schema as its schema parameter,
// as kern's --db flag takes it.
func SchemaURL(schema string) string { return WithParam(URL(), "schema", schema) }

// Config returns the test database's connection configuration.
func Config(t testing.TB) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(URL()) // which knows the pool_ parameters
	if err != nil {
		t.Fatalf("pgtest: KERN_TEST_POSTGRES_URL: %v", err)
	}
	return cfg.ConnConfig
}

// Connect opens a connection to the test database outside any store, for a test
// to look at or break what a store does.
func Connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgxpool.ParseConfig(URL())
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, cfg.ConnConfig)
}

// reachable remembers that the server answered once; a failed probe is tried
// again by the next test, since a server may be restarting.
var reachable struct {
	sync.Mutex
	ok bool
}

// Ping reports why the test database cannot be used, or nil when it answers.
func Ping(ctx context.Context) error {
	reachable.Lock()
	defer reachable.Unlock()
	if reachable.ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := Connect(ctx)
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(ctx)
	}
	if err != nil {
		return fmt.Errorf("cannot reach PostgreSQL at KERN_TEST_POSTGRES_URL=%q: %w", redact(URL()), err)
	}
	reachable.ok = true
	return nil
}

// Need skips t, loudly, when the test database does not answer; under CI it fails
// t instead.
func Need(t testing.TB) {
	t.Helper()
	err := Ping(context.Background())
	if err == nil {
		return
	}
	if InCI() {
		t.Fatalf("PostgreSQL is required in CI: %v", err)
	}
	t.Skipf("!!! PostgreSQL TESTS SKIPPED: %v; start PostgreSQL (trust auth, database test) or set KERN_TEST_POSTGRES_URL to enable them", err)
}

// InCI reports whether the tests run in CI, where PostgreSQL must answer.
func InCI() bool {
	ci := os.Getenv("CI")
	on, err := strconv.ParseBool(ci)
	return ci != "" && (err != nil || on)
}

// Schema returns the name of a fresh schema for t (Need first), dropped with
// everything in it when t ends, after the cleanups registered later (the stores
// opened on it). The schema itself is created by whatever opens it first.
func Schema(t testing.TB) string {
	t.Helper()
	Need(t)
	b := make([]byte, 6)
	rand.Read(b)
	name := SchemaPrefix + hex.EncodeToString(b)
	t.Cleanup(func() { Drop(t, name) })
	return name
}

// deadlockDetected is PostgreSQL's SQLSTATE for a transaction it aborted to break a
// deadlock.
const deadlockDetected = "40P01"

// Drop drops schema, with everything in it, failing t if it cannot.
func Drop(t testing.TB, schema string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	conn, err := Connect(ctx)
	if err != nil {
		t.Errorf("pgtest: drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	drop := "DROP SCHEMA IF EXISTS " + pgx.Identifier{schema}.Sanitize() + " CASCADE"
	for attempt := 1; ; attempt++ {
		_, err = conn.Exec(ctx, drop)
		// A drop that cascades over many objects can deadlock with backends of the
		// test still letting go of their locks (a store whose server connection a
		// test cut): PostgreSQL aborted this side, so the drop is tried again.
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != deadlockDetected || attempt == 5 {
			break
		}
	}
	if err != nil {
		t.Errorf("pgtest: drop schema %s: %v", schema, err)
	}
}

// redact hides a URL's password.
func redact(u string) string {
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil || cfg.ConnConfig.Password == "" {
		return u
	}
	return "(a URL with a password)"
}
