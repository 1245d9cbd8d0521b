package host

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/workflow"
)

// intentReads is a store that counts the reads of cancel intents, and fails them
// when fail is set (its database unreachable for that read).
type intentReads struct {
	*sqlite.Store
	fail  bool
	reads *atomic.Int32
}

func (s intentReads) PendingCancel(ctx context.Context, id string) (string, bool, error) {
	s.reads.Add(1)
	if s.fail {
		return "", false, errUnreachable
	}
	return s.Store.PendingCancel(ctx, id)
}

// TestStartReadsStoredIntent: a run cancelled by another process before it
// started ends CANCELLED as it starts, also when Start comes right after New
// (before the listener re-read the pending intents).
func TestStartReadsStoredIntent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kern.db")
	other := sqliteStore(t, path) // another process on the file
	id := run.NewID()
	if err := other.CancelRun(ctx, id, "cancelled before it started"); err != nil {
		t.Fatal(err)
	}
	h := startHost(t, sqliteStore(t, path), Options{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, NoRecovery: true})
	r, err := h.Start(Request{Kind: run.KindWorkflow, Component: "quick", Input: "go", RunID: id})
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := r.Wait(ctx); out.Status != run.StatusCancelled || out.Reason != "cancelled before it started" {
		t.Fatalf("run with a stored intent ended %s (%q), want CANCELLED with its reason", out.Status, out.Reason)
	}
}

// TestStartIntentReads: a run given its id is read for a stored intent, and does
// not start when the read fails; a run whose id the host made is not read for.
func TestStartIntentReads(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		id        string
		fail      bool
		wantReads int32
		wantErr   bool
	}{
		{name: "new id", wantReads: 0},
		{name: "given id", id: run.NewID(), wantReads: 1},
		{name: "given id, store down", id: run.NewID(), fail: true, wantReads: 1, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := intentReads{Store: sqliteStore(t, filepath.Join(t.TempDir(), "kern.db")), fail: tc.fail, reads: new(atomic.Int32)}
			h := startHost(t, st, Options{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, NoRecovery: true})
			r, err := h.Start(Request{Kind: run.KindWorkflow, Component: "quick", Input: "go", RunID: tc.id})
			if n := st.reads.Load(); n != tc.wantReads {
				t.Errorf("%d reads of the stored intent, want %d", n, tc.wantReads)
			}
			if tc.wantErr {
				if err == nil || !errors.Is(err, errUnreachable) {
					t.Fatalf("Start with the intent unreadable: %v, want the store's error", err)
				}
				if h.Lookup(tc.id) != nil {
					t.Fatal("the run that could not start is still held")
				}
				if _, err := st.GetRun(ctx, tc.id); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("the run that could not start is stored: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out, _ := r.Wait(ctx); out.Status != run.StatusCompleted {
				t.Fatalf("run ended %s", out.Status)
			}
		})
	}
}

// TestIntentUnreadLeavesRun: a queued run handed to this host, or a run left
// behind that it takes over, does not start when its stored intent cannot be
// read: the queued run goes back to the queue (store.ErrNotHere), the run left
// behind to its lease.
func TestIntentUnreadLeavesRun(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		start func(h *Host, rec *store.Run) error
		want  error
	}{
		{"queued", func(h *Host, rec *store.Run) error { return h.runJob(ctx, rec) }, store.ErrNotHere},
		{"left behind", func(h *Host, rec *store.Run) error { return h.takeover(ctx, rec, &store.Tail{}) }, errUnreachable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := intentReads{Store: sqliteStore(t, filepath.Join(t.TempDir(), "kern.db")), fail: true, reads: new(atomic.Int32)}
			h := startHost(t, st, Options{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, NoRecovery: true})
			id, past := run.NewID(), time.Now().Add(-time.Minute)
			rec := &store.Run{ID: id, SessionID: "s", Kind: run.KindWorkflow, ComponentID: "quick", Status: run.StatusPending,
				Input: "go", Output: run.Output{RunID: id, WorkflowID: "quick"}, Replica: "dead", LeaseUntil: past,
				CreatedAt: past, UpdatedAt: past}
			if err := st.CreateRun(ctx, rec); err != nil {
				t.Fatal(err)
			}
			if err := tc.start(h, rec); !errors.Is(err, tc.want) {
				t.Fatalf("start with the intent unreadable: %v, want %v", err, tc.want)
			}
			if h.Lookup(id) != nil {
				t.Fatal("the run started")
			}
			if got, err := st.GetRun(ctx, id); err != nil || got.Status != run.StatusPending {
				t.Fatalf("the run is stored %s (%v), want it left PENDING", got.Status, err)
			}
		})
	}
}

// flakyQueue is a store whose queue fails to work once, then works until stopped.
type flakyQueue struct {
	*sqlite.Store
	calls chan int // the number of each call of Work
	n     *atomic.Int32
}

func (q flakyQueue) Work(ctx context.Context, _ int, _ []store.Component, _ func(context.Context, *store.Job) error) error {
	n := q.n.Add(1)
	q.calls <- int(n)
	if n == 1 {
		return errUnreachable
	}
	<-ctx.Done()
	return nil
}

func (flakyQueue) Enqueue(context.Context, *store.Job) error { return errors.ErrUnsupported }
func (flakyQueue) CancelQueued(context.Context, string, string) (bool, error) {
	return false, errors.ErrUnsupported
}

// TestQueueWorkRetried: a host whose store's queue fails to start working (the
// database unreachable) tries again until it works.
func TestQueueWorkRetried(t *testing.T) {
	q := flakyQueue{Store: sqliteStore(t, filepath.Join(t.TempDir(), "kern.db")), calls: make(chan int, 2), n: new(atomic.Int32)}
	startHost(t, q, Options{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, NoRecovery: true})
	for want := 1; want <= 2; want++ {
		select {
		case n := <-q.calls:
			if n != want {
				t.Fatalf("call %d of Work, want %d", n, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Work not called a %d time within 10 s after it failed", want)
		}
	}
}
