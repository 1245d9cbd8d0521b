package host

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/internal/tmpfs"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/workflow"
)

// truncateWAL empties the SQLite file's WAL (its pages copied into the database),
// so that a write has to grow the WAL: on a full disk, every write fails.
func truncateWAL(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var busy, frames, copied int
	if err := db.QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &copied); err != nil || busy != 0 {
		t.Fatalf("truncate the WAL: busy %d, %v", busy, err)
	}
}

// TestDiskFull runs a host on a SQLite file on a real 2 MB filesystem, filled up:
// a new run is refused before it does anything, with the store's words; a run
// whose checkpoint cannot be written ends ERROR at once with the real cause,
// logged once; once space returns, recovery takes the run left RUNNING over and
// completes it.
func TestDiskFull(t *testing.T) {
	dir := tmpfs.Mount(t, 2<<20)
	path := filepath.Join(dir, "kern.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	truncateWAL(t, path)
	filler := tmpfs.Fill(t, dir, "filler")

	gate := make(chan struct{})
	var researched atomic.Int32
	findings := strings.Repeat("facts ", (128<<10)/6) // more than the WAL holds already
	wf := &workflow.Workflow{Name: "Article", Steps: []workflow.Step{
		workflow.FuncStep("research", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			researched.Add(1)
			select {
			case <-gate:
				return workflow.StepOutput{Content: findings}, nil
			case <-ctx.Done():
				return workflow.StepOutput{}, context.Cause(ctx)
			}
		}),
		workflow.AgentStep("writing", &agent.Agent{Name: "Writer", Model: scripted.New("the article")}, ""),
	}}
	var logs syncBuffer
	h := startHost(t, st, Options{Workflows: []*workflow.Workflow{wf}, Lease: 3 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	req := Request{Kind: run.KindWorkflow, Component: "article", Input: "dragons", SessionID: "s"}

	// A full disk: the run is refused, with why, before its work began.
	r, err := h.Start(req)
	if r != nil || !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "database or disk is full") {
		t.Fatalf("Start on a full disk = %v, %v; want ErrUnavailable, database or disk is full", r, err)
	}
	if n := researched.Load(); n != 0 {
		t.Errorf("the refused run's first step ran %d times", n)
	}

	// Space returns: a run starts. The disk fills while its first step works.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r, err = h.Start(req)
	if err != nil {
		t.Fatalf("Start once space returned: %v", err)
	}
	id := r.ID()
	eventually.Succeeds(t, 10*time.Second, func() error {
		evs, err := st.Events(t.Context(), id, 0, 0)
		if err != nil || len(evs) < 2 {
			return fmt.Errorf("%d events stored, %v", len(evs), err)
		}
		return nil
	})
	filler = tmpfs.Fill(t, dir, "filler")
	close(gate)
	out, err := r.Wait(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	const want = `checkpoint after step "research": store: database or disk is full (13)`
	if out.Status != run.StatusError || out.Error != want {
		t.Errorf("run ended %s %q; want ERROR %q", out.Status, out.Error, want)
	}
	if err := r.Exec().PersistErr(); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("PersistErr = %v, want ErrUnavailable", err)
	}
	// Logged once, at ERROR, with the cause (the run's own goroutine has ended).
	<-r.Exec().Done()
	eventually.Succeeds(t, 10*time.Second, func() error {
		var lines []string
		for l := range strings.Lines(logs.String()) {
			if strings.Contains(l, "level=ERROR") && strings.Contains(l, "run_id="+id) {
				lines = append(lines, l)
			}
		}
		if len(lines) != 1 || !strings.Contains(lines[0], "database or disk is full") {
			return fmt.Errorf("ERROR lines of the run: %q", lines)
		}
		return nil
	})

	// Space returns: the run, left RUNNING, is taken over once its lease lapsed,
	// and completes.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually.Succeeds(t, 30*time.Second, func() error {
		got, err := st.GetRun(t.Context(), id)
		if err != nil || got.Status != run.StatusCompleted {
			return fmt.Errorf("stored run: %v, %v", got, err)
		}
		if len(got.Output.StepResults) != 2 || got.Output.StepResults[0].Content != findings {
			return fmt.Errorf("stored steps: %d", len(got.Output.StepResults))
		}
		return nil
	})
	evs, err := st.Events(t.Context(), id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if ev.Index != i || ev.Ends(id) != (i == len(evs)-1) {
			t.Errorf("stored event %d: index %d, %s", i, ev.Index, ev.Type)
		}
	}
	if last := evs[len(evs)-1]; last.Type != run.EventWorkflowCompleted {
		t.Errorf("last stored event %s", last.Type)
	}
}
