package sqlite

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/internal/tmpfs"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// On a full disk (a real 2 MB filesystem, filled up) a write fails with
// store.ErrUnavailable, lasting, in SQLite's words; once space returns, writes
// succeed again on the same store.
func TestDiskFull(t *testing.T) {
	dir := tmpfs.Mount(t, 2<<20)
	path := filepath.Join(dir, "kern.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// Empty the WAL, so that any write has to grow it.
	var busy, frames, copied int
	if err := s.ck.QueryRowContext(t.Context(), `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &copied); err != nil || busy != 0 {
		t.Fatalf("truncate the WAL: busy %d, %v", busy, err)
	}
	filler := tmpfs.Fill(t, dir, "filler")
	newRun := func() *store.Run {
		return &store.Run{ID: run.NewID(), Kind: run.KindWorkflow, ComponentID: "wf", Status: run.StatusRunning,
			Input: "go", CreatedAt: time.Now()}
	}
	for range 2 { // the writer's connection goes on failing cleanly
		err := s.CreateRun(t.Context(), newRun())
		var ue *store.UnavailableError
		if !errors.As(err, &ue) || !ue.Lasting || !strings.HasPrefix(ue.Error(), "database or disk is full") {
			t.Fatalf("CreateRun on a full disk = %v; want a lasting UnavailableError, database or disk is full", err)
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r := newRun()
	if err := s.CreateRun(t.Context(), r); err != nil {
		t.Fatalf("CreateRun once space returned: %v", err)
	}
	if _, err := s.GetRun(t.Context(), r.ID); err != nil {
		t.Fatal(err)
	}
}
