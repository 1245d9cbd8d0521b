package agentos

import (
	"context"
	"database/sql"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kern-dev/kern/internal/tmpfs"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/workflow"
)

// TestDiskFullAnswers503: on a SQLite file whose disk is full (a real 2 MB
// filesystem, filled up), a new run, streamed or not, is answered 503 with the
// store's words, before it starts.
func TestDiskFullAnswers503(t *testing.T) {
	dir := tmpfs.Mount(t, 2<<20)
	path := filepath.Join(dir, "kern.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// Empty the WAL, so that any write has to grow it.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var busy, frames, copied int
	err = db.QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &copied)
	db.Close()
	if err != nil || busy != 0 {
		t.Fatalf("truncate the WAL: busy %d, %v", busy, err)
	}
	tmpfs.Fill(t, dir, "filler")

	e := newEnv(t, Config{Store: st, Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	for _, stream := range []string{"true", "false"} {
		code, body := e.do("POST", "/workflows/quick/runs", formType, form("message", "go", "stream", stream))
		detail, _ := body["detail"].(string)
		if code != http.StatusServiceUnavailable || !strings.HasPrefix(detail, "store unavailable: database or disk is full") {
			t.Errorf("stream=%s: %d %v; want 503, store unavailable: database or disk is full", stream, code, body)
		}
	}
}
