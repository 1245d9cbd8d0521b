package agentos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"kern/run"
	"kern/store/postgres"
	"kern/workflow"
)

// postgresSchema returns the test PostgreSQL's URL and a fresh schema, dropped when
// the test ends; it skips the test, loudly, when PostgreSQL cannot be reached (and
// fails it in CI).
func postgresSchema(t *testing.T) (url, schema string) {
	t.Helper()
	url = os.Getenv("KERN_TEST_POSTGRES_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL is required in CI: %v", err)
		}
		t.Skipf("PostgreSQL TESTS SKIPPED: cannot reach KERN_TEST_POSTGRES_URL: %v", err)
	}
	conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	schema = "kern_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return url, schema
}

// replica starts a server on its own PostgreSQL store in schema.
func replica(t *testing.T, url, schema string) *env {
	t.Helper()
	st, err := postgres.Open(context.Background(), url, postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the server's shutdown (cleanups run last first)
	return newEnv(t, Config{Workflows: []*workflow.Workflow{slowWorkflow("Story")}, Store: st})
}

// TestCancelAcrossReplicas: a run streamed from replica A, cancelled through
// replica B on the same database, ends CANCELLED on A's stream.
func TestCancelAcrossReplicas(t *testing.T) {
	url, schema := postgresSchema(t)
	a, b := replica(t, url, schema), replica(t, url, schema)

	s := a.openStream("POST", "/workflows/story/runs", formType, form("message", "go"))
	seen := s.until(run.EventRunContent)
	runID := seen[0].ev.RunID

	code, body := b.do("POST", "/runs/"+runID+"/cancel", "", "")
	if code != http.StatusOK || (body["status"] != "PENDING" && body["status"] != "RUNNING") {
		t.Fatalf("cancel on B: %d %v; want 200 PENDING or RUNNING", code, body)
	}
	seen = append(seen, s.rest()...)
	checkRun(t, seen, 0, runID, run.EventWorkflowCancelled)

	// A cancel for a run no replica knows is kept: PENDING.
	code, body = b.do("POST", "/runs/later/cancel", "", "")
	if code != http.StatusOK || body["status"] != "PENDING" {
		t.Fatalf("cancel of an unknown run on B: %d %v; want 200 PENDING", code, body)
	}
}
