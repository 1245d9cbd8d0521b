package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// What the suite holds a store.Queue to, beyond the interface's doc comments (a
// store that is no Queue skips these tests):
//
//   - Enqueue stores the run as GetRun returns it at once: PENDING, no replica, a
//     zero LeaseUntil, its identity and output as given. Recovery (Interrupt,
//     Claim) leaves it alone.
//   - Work hands fn each queued run of a served component once, with its stored
//     record, taken: still PENDING, with a lease. Two Work loops on one store
//     never hand out the same run. A loop runs at most workers fns at once, and
//     takes no run while its workers are busy (the others stay queued).
//   - Runs of components not served stay queued.
//   - fn returning store.ErrNotHere puts the run back: queued again (PENDING, zero
//     lease), and handed out again later.
//   - CancelQueued of a queued run stores it CANCELLED, with the reason, and one
//     stored event, its terminal one; it reports false for a run taken, ended or
//     unknown, and a run it cancelled is never handed out.
//   - Queued counts the queued runs up to its limit; taken and ended runs are not
//     counted.

// flow is the component of the runs the queue tests enqueue.
var flow = store.Component{Kind: run.KindWorkflow, ID: "flow"}

// runQueue runs the Queue tests, each on a fresh store, in parallel.
func runQueue(t *testing.T, open func(t *testing.T) store.Store) {
	runOptional(t, open, []optionalTest[store.Queue]{
		{"EnqueueStored", testEnqueueStored},
		{"EnqueueExists", testEnqueueExists},
		{"WorkHandsEachOnce", testWorkHandsEachOnce},
		{"WorkTwoLoops", testWorkTwoLoops},
		{"WorkWorkersBound", testWorkWorkersBound},
		{"WorkServes", testWorkServes},
		{"WorkNotHere", testWorkNotHere},
		{"CancelQueued", testCancelQueued},
		{"CancelQueuedTaken", testCancelQueuedTaken},
		{"QueuedCount", testQueuedCount},
	})
}

// queuedRun returns a run of c to enqueue, created at base plus i milliseconds.
func queuedRun(id string, c store.Component, i int) *store.Job {
	return &store.Job{ID: id, SessionID: "sq-" + id, UserID: "u", Kind: c.Kind, ComponentID: c.ID,
		Status: run.StatusPending, Input: "input of " + id,
		Output:    run.Output{RunID: id, Status: run.StatusPending, Input: "input of " + id, WorkflowID: c.ID},
		CreatedAt: base.Add(time.Duration(i) * time.Millisecond)}
}

func mustEnqueue(t *testing.T, q store.Queue, j *store.Job) {
	t.Helper()
	if err := q.Enqueue(ctxOf(t), j); err != nil {
		t.Fatalf("Enqueue(%s): %v", j.ID, err)
	}
}

// work runs q.Work until the test ends, then checks that it returned nil once
// its context ended and the runs it handed out returned.
func work(t *testing.T, q store.Queue, workers int, serves []store.Component, fn func(context.Context, *store.Job) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Work(ctx, workers, serves, fn) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Work: %v", err)
			}
		case <-time.After(hang):
			t.Errorf("Work did not return within %v of its context's end", hang)
		}
	})
}

// receive waits for a value on ch, failing the test after hang.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hang):
		t.Fatalf("no %s within %v", what, hang)
		panic("unreachable")
	}
}

// checkQueued checks that the run is stored queued: PENDING, no lease.
func checkQueued(t *testing.T, s store.Store, id string) {
	t.Helper()
	got := mustGet(t, s, id)
	if got.Status != run.StatusPending || !got.LeaseUntil.IsZero() || got.Replica != "" {
		t.Errorf("run %s stored %s, lease %v, replica %q; want PENDING with no lease (queued)",
			id, got.Status, got.LeaseUntil, got.Replica)
	}
}

func testEnqueueStored(t *testing.T, s store.Store, q store.Queue) {
	j := queuedRun("q1", flow, 0)
	j.Replica, j.LeaseUntil = "someone", base.Add(time.Hour) // ignored: a queued run has neither
	mustEnqueue(t, q, j)
	if j.Status != run.StatusPending || j.Replica != "" || !j.LeaseUntil.IsZero() || !sameTime(j.CreatedAt, base) {
		t.Errorf("Enqueue set %s, %q, %v, %v; want PENDING, no replica, no lease, CreatedAt kept",
			j.Status, j.Replica, j.LeaseUntil, j.CreatedAt)
	}
	got := mustGet(t, s, "q1")
	checkQueued(t, s, "q1")
	if got.Input != "input of q1" || got.Kind != flow.Kind || got.ComponentID != flow.ID ||
		got.SessionID != "sq-q1" || got.UserID != "u" || !sameTime(got.CreatedAt, base) || got.Output.RunID != "q1" {
		t.Errorf("stored %+v, want the run as enqueued", got)
	}
	// Recovery leaves a queued run alone, however old.
	later := time.Now().Add(time.Hour)
	if ended, err := s.Interrupt(ctxOf(t), later, "x"); err != nil || len(ended) != 0 {
		t.Errorf("Interrupt = %d runs, %v; want a queued run left alone", len(ended), err)
	}
	if claimed, err := s.Claim(ctxOf(t), "r", later, later.Add(time.Minute), 10); err != nil || len(claimed) != 0 {
		t.Errorf("Claim = %d runs, %v; want a queued run left alone", len(claimed), err)
	}
	checkQueued(t, s, "q1")
}

func testEnqueueExists(t *testing.T, s store.Store, q store.Queue) {
	mustEnqueue(t, q, queuedRun("q1", flow, 0))
	if err := q.Enqueue(ctxOf(t), queuedRun("q1", flow, 1)); !errors.Is(err, store.ErrExists) {
		t.Errorf("Enqueue of a queued id: %v, want ErrExists", err)
	}
	mustCreate(t, s, simpleRun("created"))
	if err := q.Enqueue(ctxOf(t), queuedRun("created", flow, 2)); !errors.Is(err, store.ErrExists) {
		t.Errorf("Enqueue of a created id: %v, want ErrExists", err)
	}
	if got := mustGet(t, s, "created"); got.Status != run.StatusRunning {
		t.Errorf("the created run is %s after a refused Enqueue, want it untouched", got.Status)
	}
	if n, err := q.Queued(ctxOf(t), 10); err != nil || n != 1 {
		t.Errorf("Queued = %d, %v; want 1", n, err)
	}
}

func testWorkHandsEachOnce(t *testing.T, s store.Store, q store.Queue) {
	const n = 5
	handed := make(chan *store.Job, 2*n)
	var mu sync.Mutex
	var bad []string
	work(t, q, 1, []store.Component{flow}, func(ctx context.Context, j *store.Job) error {
		// Taken before fn: still PENDING, with a lease, as stored.
		got, err := s.GetRun(ctx, j.ID)
		if err != nil || got.Status != run.StatusPending || got.LeaseUntil.IsZero() || j.LeaseUntil.IsZero() {
			mu.Lock()
			bad = append(bad, fmt.Sprintf("%s: stored %v (%v), handed lease %v", j.ID, got, err, j.LeaseUntil))
			mu.Unlock()
		}
		handed <- j
		return nil
	})
	for i := range n {
		mustEnqueue(t, q, queuedRun(fmt.Sprintf("q%d", i), flow, i))
	}
	seen := map[string]bool{}
	for range n {
		j := receive(t, handed, "run handed to fn")
		if seen[j.ID] {
			t.Errorf("run %s handed twice", j.ID)
		}
		seen[j.ID] = true
		if j.Input != "input of "+j.ID || j.ComponentID != flow.ID {
			t.Errorf("handed %+v, want the stored record", j)
		}
	}
	if n, err := q.Queued(ctxOf(t), 10); err != nil || n != 0 {
		t.Errorf("Queued = %d, %v after every run was handed out; want 0", n, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Errorf("not taken before fn: %s", b)
	}
}

func testWorkTwoLoops(t *testing.T, s store.Store, q store.Queue) {
	const n = 40
	var mu sync.Mutex
	count := map[string]int{}
	handed := make(chan string, 2*n)
	fn := func(_ context.Context, j *store.Job) error {
		mu.Lock()
		count[j.ID]++
		mu.Unlock()
		handed <- j.ID
		return nil
	}
	work(t, q, 3, []store.Component{flow}, fn)
	work(t, q, 3, []store.Component{flow}, fn)
	var wg sync.WaitGroup
	for g := range 4 { // enqueued from several goroutines, as the loops take them
		wg.Go(func() {
			for i := g; i < n; i += 4 {
				if err := q.Enqueue(ctxOf(t), queuedRun(fmt.Sprintf("q%02d", i), flow, i)); err != nil {
					t.Errorf("Enqueue: %v", err)
				}
			}
		})
	}
	wg.Wait()
	for range n {
		receive(t, handed, "run handed to fn")
	}
	mu.Lock()
	defer mu.Unlock()
	for id, c := range count {
		if c != 1 {
			t.Errorf("run %s handed out %d times, want once", id, c)
		}
	}
	if len(count) != n {
		t.Errorf("%d runs handed out, want %d", len(count), n)
	}
}

func testWorkWorkersBound(t *testing.T, s store.Store, q store.Queue) {
	const workers, n = 2, 5
	release := make(chan struct{})
	entered := make(chan string, n)
	var mu sync.Mutex
	inFn, most := 0, 0
	work(t, q, workers, []store.Component{flow}, func(_ context.Context, j *store.Job) error {
		mu.Lock()
		inFn++
		most = max(most, inFn)
		mu.Unlock()
		entered <- j.ID
		<-release
		mu.Lock()
		inFn--
		mu.Unlock()
		return nil
	})
	for i := range n {
		mustEnqueue(t, q, queuedRun(fmt.Sprintf("q%d", i), flow, i))
	}
	for range workers {
		receive(t, entered, "run handed to fn")
	}
	// Both workers busy: the other runs are not taken.
	if got, err := q.Queued(ctxOf(t), 10); err != nil || got != n-workers {
		t.Errorf("Queued = %d, %v with both workers busy; want %d", got, err, n-workers)
	}
	close(release)
	for range n - workers {
		receive(t, entered, "run handed to fn")
	}
	mu.Lock()
	defer mu.Unlock()
	if most > workers {
		t.Errorf("%d runs in fn at once, want at most %d", most, workers)
	}
}

func testWorkServes(t *testing.T, s store.Store, q store.Queue) {
	other := store.Component{Kind: run.KindAgent, ID: "flow"} // same id, other kind
	handed := make(chan string, 4)
	work(t, q, 2, []store.Component{flow}, func(_ context.Context, j *store.Job) error {
		handed <- j.ID
		return nil
	})
	mustEnqueue(t, q, queuedRun("theirs", other, 0))
	mustEnqueue(t, q, queuedRun("ours", flow, 1))
	if id := receive(t, handed, "run handed to fn"); id != "ours" {
		t.Fatalf("handed %s, want ours", id)
	}
	mustEnqueue(t, q, queuedRun("ours-2", flow, 2))
	if id := receive(t, handed, "run handed to fn"); id != "ours-2" {
		t.Fatalf("handed %s, want ours-2 (a run of another component is not served)", id)
	}
	checkQueued(t, s, "theirs")
}

func testWorkNotHere(t *testing.T, s store.Store, q store.Queue) {
	var mu sync.Mutex
	tries := 0
	again := make(chan *store.Job, 1)
	work(t, q, 1, []store.Component{flow}, func(_ context.Context, j *store.Job) error {
		mu.Lock()
		defer mu.Unlock()
		tries++
		switch tries {
		case 1:
			return fmt.Errorf("not now: %w", store.ErrNotHere)
		case 2:
			again <- j
		}
		return nil
	})
	mustEnqueue(t, q, queuedRun("q1", flow, 0))
	j := receive(t, again, "run handed out again after store.ErrNotHere")
	if j.ID != "q1" || j.LeaseUntil.IsZero() {
		t.Errorf("handed again %s with lease %v", j.ID, j.LeaseUntil)
	}
}

func testCancelQueued(t *testing.T, s store.Store, q store.Queue) {
	mustEnqueue(t, q, queuedRun("doomed", flow, 0))
	ok, err := q.CancelQueued(ctxOf(t), "doomed", "changed my mind")
	if err != nil || !ok {
		t.Fatalf("CancelQueued = %v, %v; want true", ok, err)
	}
	got := mustGet(t, s, "doomed")
	if got.Status != run.StatusCancelled || got.Output.Status != run.StatusCancelled || got.Output.Reason != "changed my mind" {
		t.Errorf("stored %s (output %s, reason %q), want CANCELLED with the reason", got.Status, got.Output.Status, got.Output.Reason)
	}
	evs, err := s.Events(ctxOf(t), "doomed", 0, 0)
	if err != nil || len(evs) != 1 || !evs[0].Ends("doomed") || evs[0].Type != run.EventWorkflowCancelled {
		t.Fatalf("events = %+v, %v; want one WorkflowCancelled", evs, err)
	}
	for _, id := range []string{"doomed", "unknown"} {
		if ok, err := q.CancelQueued(ctxOf(t), id, "again"); err != nil || ok {
			t.Errorf("CancelQueued(%s) = %v, %v; want false", id, ok, err)
		}
	}
	if evs, _ := s.Events(ctxOf(t), "doomed", 0, 0); len(evs) != 1 {
		t.Errorf("%d events after a second cancel, want 1", len(evs))
	}
	// Never handed out: a run queued after it is handed out first.
	handed := make(chan string, 2)
	work(t, q, 1, []store.Component{flow}, func(_ context.Context, j *store.Job) error {
		handed <- j.ID
		return nil
	})
	mustEnqueue(t, q, queuedRun("next", flow, 1))
	if id := receive(t, handed, "run handed to fn"); id != "next" {
		t.Errorf("handed %s, want next (a cancelled run is not queued)", id)
	}
}

func testCancelQueuedTaken(t *testing.T, s store.Store, q store.Queue) {
	taken := make(chan string, 1)
	release := make(chan struct{})
	work(t, q, 1, []store.Component{flow}, func(_ context.Context, j *store.Job) error {
		taken <- j.ID
		<-release
		return nil
	})
	mustEnqueue(t, q, queuedRun("q1", flow, 0))
	receive(t, taken, "run handed to fn")
	if ok, err := q.CancelQueued(ctxOf(t), "q1", "too late"); err != nil || ok {
		t.Errorf("CancelQueued of a taken run = %v, %v; want false", ok, err)
	}
	if got := mustGet(t, s, "q1"); got.Status != run.StatusPending {
		t.Errorf("taken run stored %s after CancelQueued, want it untouched", got.Status)
	}
	close(release)
}

func testQueuedCount(t *testing.T, s store.Store, q store.Queue) {
	for i := range 3 {
		mustEnqueue(t, q, queuedRun(fmt.Sprintf("q%d", i), flow, i))
	}
	mustCreate(t, s, simpleRun("running"))
	for _, tc := range []struct{ limit, want int }{{10, 3}, {3, 3}, {2, 2}, {0, 0}} {
		if n, err := q.Queued(ctxOf(t), tc.limit); err != nil || n != tc.want {
			t.Errorf("Queued(%d) = %d, %v; want %d", tc.limit, n, err, tc.want)
		}
	}
	if _, err := q.CancelQueued(ctxOf(t), "q0", "x"); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Queued(ctxOf(t), 10); err != nil || n != 2 {
		t.Errorf("Queued = %d, %v after a cancel; want 2", n, err)
	}
}
