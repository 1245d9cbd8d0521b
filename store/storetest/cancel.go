package storetest

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// What the suite holds a store.Canceller to, beyond the interface's doc comments
// (a store that is no Canceller skips these tests):
//
//   - A cancel stored before Listen starts is delivered when it starts, unless its
//     run has ended; one stored after is delivered too, with its reason.
//   - Events is called, for each run whose events a write stored, with an index at
//     least that write's greatest, and at most the greatest stored; a write of
//     several runs' events is heard for each run.
//   - Ended is called with the status of a run updated to a terminal status, and
//     never for an update to a status that is not terminal.
//   - A reason is cut to a valid UTF-8 prefix when it is long (tens of KiB); a run
//     id of 64 KiB is refused with ErrTooLarge.
//   - After Close, CancelRun, PendingCancel and Listen return errors matching
//     ErrClosed; with a cancelled context, CancelRun and PendingCancel return
//     errors matching context.Canceled, and Listen returns nil.
//
// Events and ends are heard only once Listen listens: the tests wait for a cancel
// to be delivered before they store them.

// hang bounds every wait on a listener: far longer than a delivery takes, it only
// turns a lost notification into a failure instead of a hung test.
const hang = 30 * time.Second

// runCanceller runs the Canceller tests, each on a fresh store, in parallel.
func runCanceller(t *testing.T, open func(t *testing.T) store.Store) {
	runOptional(t, open, []optionalTest[store.Canceller]{
		{"PendingCancel", testPendingCancel},
		{"IntentEndsWithRun", testIntentEndsWithRun},
		{"ListenDeliversPending", testListenDeliversPending},
		{"ListenCancel", testListenCancel},
		{"ListenEvents", testListenEvents},
		{"ListenEnded", testListenEnded},
		{"CancelBounds", testCancelBounds},
		{"CancelClosed", testCancelClosed},
		{"CancelCancelledContext", testCancelCancelledContext},
	})
}

// heard is one call of a store.Notifications function.
type heard struct {
	kind   string // cancel, events, ended or reconnected
	id     string
	detail string // the reason, the last index or the status
}

// listen runs c.Listen with every function of store.Notifications set until the
// test ends (then checks that it returned nil), and returns what they were called
// with, in order. It fails the test if two calls overlap.
func listen(t *testing.T, c store.Canceller) <-chan heard {
	t.Helper()
	got := make(chan heard, 10_000)
	var busy atomic.Int32
	call := func(h heard) {
		if busy.Add(1) > 1 {
			t.Errorf("notification functions called at once (%+v)", h)
		}
		got <- h
		busy.Add(-1)
	}
	n := store.Notifications{
		Cancel:      func(id, reason string) { call(heard{"cancel", id, reason}) },
		Events:      func(id string, last int) { call(heard{"events", id, strconv.Itoa(last)}) },
		Ended:       func(id string, st run.Status) { call(heard{"ended", id, string(st)}) },
		Reconnected: func() { call(heard{kind: "reconnected"}) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Listen(ctx, n) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Listen: %v", err)
			}
		case <-time.After(hang):
			t.Errorf("Listen did not return within %v of its context's end", hang)
		}
	})
	return got
}

// until waits for a call of that kind for run id, and returns it with the calls
// heard before it.
func until(t *testing.T, got <-chan heard, kind, id string) (heard, []heard) {
	t.Helper()
	var before []heard
	deadline := time.After(hang)
	for {
		select {
		case h := <-got:
			if h.kind == kind && h.id == id {
				return h, before
			}
			before = append(before, h)
		case <-deadline:
			t.Fatalf("no %s of %q within %v; heard %+v", kind, id, hang, before)
		}
	}
}

// warm waits until the listener listens: a cancel is delivered once it does,
// whether read on starting or heard after.
func warm(t *testing.T, c store.Canceller, got <-chan heard) {
	t.Helper()
	mustCancel(t, c, "warm", "")
	until(t, got, "cancel", "warm")
}

func mustCancel(t *testing.T, c store.Canceller, id, reason string) {
	t.Helper()
	if err := c.CancelRun(ctxOf(t), id, reason); err != nil {
		t.Fatalf("CancelRun(%s): %v", id, err)
	}
}

func checkPending(t *testing.T, c store.Canceller, id, want string, wantOK bool) {
	t.Helper()
	reason, ok, err := c.PendingCancel(ctxOf(t), id)
	if err != nil || ok != wantOK || reason != want {
		t.Errorf("PendingCancel(%s) = %q, %v, %v; want %q, %v", id, reason, ok, err, want, wantOK)
	}
}

func testPendingCancel(t *testing.T, s store.Store, c store.Canceller) {
	checkPending(t, c, "unknown", "", false)
	mustCancel(t, c, "run-1", "requested")
	checkPending(t, c, "run-1", "requested", true)
	mustCancel(t, c, "run-1", "again") // the first reason stays
	checkPending(t, c, "run-1", "requested", true)
	mustCancel(t, c, "run-2", "")
	checkPending(t, c, "run-2", "", true)
	// An intent is kept for a run that is not stored yet, and for one that runs.
	mustCreate(t, s, simpleRun("run-1"))
	checkPending(t, c, "run-1", "requested", true)
}

// testIntentEndsWithRun: the intent of a run goes when the run ends, however
// it ends, and a run that ended keeps none.
func testIntentEndsWithRun(t *testing.T, s store.Store, c store.Canceller) {
	for _, st := range []run.Status{run.StatusCompleted, run.StatusCancelled, run.StatusError} {
		id := "ends-" + string(st)
		r := simpleRun(id)
		mustCreate(t, s, r)
		mustCancel(t, c, id, "stop")
		checkPending(t, c, id, "stop", true)
		r.Status, r.Output.Status = st, st
		if err := s.UpdateRun(ctxOf(t), r); err != nil {
			t.Fatal(err)
		}
		checkPending(t, c, id, "", false)
		mustCancel(t, c, id, "again")
		checkPending(t, c, id, "", false)
	}
	// Ended by recovery too.
	r := simpleRun("left-behind")
	r.Replica, r.LeaseUntil = "dead", time.Now().Add(-time.Minute)
	mustCreate(t, s, r)
	mustCancel(t, c, r.ID, "stop")
	if _, err := s.Interrupt(ctxOf(t), time.Now(), store.ReasonInterrupted); err != nil {
		t.Fatal(err)
	}
	checkPending(t, c, r.ID, "", false)
}

// heardEach waits for a call of that kind for each run of want, reports those
// whose detail is not the one wanted, and returns every call heard meanwhile.
func heardEach(t *testing.T, got <-chan heard, kind string, want map[string]string) []heard {
	t.Helper()
	want = maps.Clone(want)
	var all []heard
	deadline := time.After(hang)
	for len(want) > 0 {
		select {
		case h := <-got:
			all = append(all, h)
			d, ok := want[h.id]
			if h.kind != kind || !ok {
				continue
			}
			if h.detail != d {
				t.Errorf("%s of run %.10q: %s, want %s", kind, h.id, h.detail, d)
			}
			delete(want, h.id)
		case <-deadline:
			t.Fatalf("%s of %v not heard within %v; heard %+v", kind, want, hang, all)
		}
	}
	return all
}

func testListenDeliversPending(t *testing.T, s store.Store, c store.Canceller) {
	mustCancel(t, c, "before", "requested")
	mustCancel(t, c, "before", "again")
	mustCreate(t, s, simpleRun("running"))
	mustCancel(t, c, "running", "stop")
	// Intents of runs that ended, before or after the cancel, are not delivered.
	done := simpleRun("ended-before")
	done.Status = run.StatusCompleted
	mustCreate(t, s, done)
	mustCancel(t, c, "ended-before", "too late")
	r := simpleRun("ended-after")
	mustCreate(t, s, r)
	mustCancel(t, c, "ended-after", "too late")
	r.Status, r.Output.Status = run.StatusCancelled, run.StatusCancelled
	if err := s.UpdateRun(ctxOf(t), r); err != nil {
		t.Fatal(err)
	}

	got := listen(t, c)
	all := heardEach(t, got, "cancel", map[string]string{"before": "requested", "running": "stop"})
	// Later cancels are heard after: had the ended runs' intents been delivered
	// on starting, they would come before this one.
	mustCancel(t, c, "after", "requested")
	h, before := until(t, got, "cancel", "after")
	if h.detail != "requested" {
		t.Errorf("reason of the cancel after = %q", h.detail)
	}
	for _, b := range append(all, before...) {
		if strings.HasPrefix(b.id, "ended-") {
			t.Errorf("delivered %+v, the intent of a run that ended", b)
		}
	}
}

func testListenCancel(t *testing.T, s store.Store, c store.Canceller) {
	got := listen(t, c)
	warm(t, c, got)
	mustCreate(t, s, simpleRun("run-1"))
	mustCancel(t, c, "run-1", "requested")
	if h, _ := until(t, got, "cancel", "run-1"); h.detail != "requested" {
		t.Errorf("reason = %q, want requested", h.detail)
	}
	// A cancel of a run not stored yet is heard too: the run may start later.
	mustCancel(t, c, "not-yet", "early")
	if h, _ := until(t, got, "cancel", "not-yet"); h.detail != "early" {
		t.Errorf("reason = %q, want early", h.detail)
	}
}

func appendEvents(t *testing.T, s store.Store, evs ...store.Event) {
	t.Helper()
	for i := range evs {
		evs[i].Type, evs[i].Data = run.EventRunContent, []byte(`{"event":"RunContent"}`)
		evs[i].CreatedAt = base
	}
	if err := s.AppendEvents(ctxOf(t), evs); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
}

func testListenEvents(t *testing.T, s store.Store, c store.Canceller) {
	got := listen(t, c)
	warm(t, c, got)
	appendEvents(t, s,
		store.Event{RunID: "b", Index: 4}, store.Event{RunID: "a", Index: 0},
		store.Event{RunID: "c", Index: 7}, store.Event{RunID: "b", Index: 3},
		store.Event{RunID: "a", Index: 2}, store.Event{RunID: "a", Index: 1})
	heardEach(t, got, "events", map[string]string{"a": "2", "b": "4", "c": "7"})
	// A later write of a run's events is heard with its new last index, and the
	// runs of the first write are not heard again.
	appendEvents(t, s, store.Event{RunID: "a", Index: 3})
	h, before := until(t, got, "events", "a")
	if h.detail != "3" {
		t.Errorf("second write: last %s, want 3", h.detail)
	}
	for _, b := range before {
		if b.kind == "events" {
			t.Errorf("heard %+v again", b)
		}
	}
	// A listener reads the events it is told of.
	if evs, err := s.Events(ctxOf(t), "a", 0, 0); err != nil || len(evs) != 4 {
		t.Errorf("Events(a) = %d events, %v; want 4", len(evs), err)
	}
}

func testListenEnded(t *testing.T, s store.Store, c store.Canceller) {
	got := listen(t, c)
	warm(t, c, got)
	for _, st := range []run.Status{run.StatusCompleted, run.StatusCancelled, run.StatusError} {
		r := simpleRun("run-" + string(st))
		r.Status = run.StatusPending
		mustCreate(t, s, r)
		r.Status = run.StatusRunning
		if err := s.UpdateRun(ctxOf(t), r); err != nil {
			t.Fatal(err)
		}
		r.Status, r.Output.Status = st, st
		if err := s.UpdateRun(ctxOf(t), r); err != nil {
			t.Fatal(err)
		}
		if h, _ := until(t, got, "ended", r.ID); h.detail != string(st) {
			t.Errorf("ended %s: status %s, want %s", r.ID, h.detail, st)
		}
	}
	// An update that does not end a run is not heard as its end: the end of a
	// run updated after it is.
	running := simpleRun("running")
	mustCreate(t, s, running)
	running.Output.Content = "partial"
	if err := s.UpdateRun(ctxOf(t), running); err != nil {
		t.Fatal(err)
	}
	last := simpleRun("last")
	mustCreate(t, s, last)
	last.Status = run.StatusCompleted
	if err := s.UpdateRun(ctxOf(t), last); err != nil {
		t.Fatal(err)
	}
	_, before := until(t, got, "ended", "last")
	for _, b := range before {
		if b.kind == "ended" {
			t.Errorf("heard %+v, want no other end", b)
		}
	}
}

func testCancelBounds(t *testing.T, s store.Store, c store.Canceller) {
	got := listen(t, c)
	warm(t, c, got)
	long := strings.Repeat("é", 50_000)
	mustCancel(t, c, "long", long)
	h, _ := until(t, got, "cancel", "long")
	if h.detail == "" || len(h.detail) >= len(long) || !utf8.ValidString(h.detail) || !strings.HasPrefix(long, h.detail) {
		t.Errorf("delivered reason: %d bytes, valid %v; want a shorter valid prefix", len(h.detail), utf8.ValidString(h.detail))
	}
	checkPending(t, c, "long", h.detail, true)
	err := c.CancelRun(ctxOf(t), strings.Repeat("x", 64<<10), "")
	if !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("CancelRun with a 64 KiB id = %.200v, want ErrTooLarge", err)
	}
}

func testCancelClosed(t *testing.T, s store.Store, c store.Canceller) {
	mustCancel(t, c, "run-1", "requested")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.CancelRun(ctxOf(t), "run-2", ""); !errors.Is(err, store.ErrClosed) {
		t.Errorf("CancelRun after Close = %v, want ErrClosed", err)
	}
	if _, _, err := c.PendingCancel(ctxOf(t), "run-1"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("PendingCancel after Close = %v, want ErrClosed", err)
	}
	err := c.Listen(ctxOf(t), store.Notifications{Cancel: func(string, string) {}})
	if !errors.Is(err, store.ErrClosed) {
		t.Errorf("Listen after Close = %v, want ErrClosed", err)
	}
}

func testCancelCancelledContext(t *testing.T, s store.Store, c store.Canceller) {
	ctx, cancel := context.WithCancel(ctxOf(t))
	cancel()
	if err := c.CancelRun(ctx, "run-1", ""); !errors.Is(err, context.Canceled) {
		t.Errorf("CancelRun with a cancelled context = %v, want context.Canceled", err)
	}
	if _, _, err := c.PendingCancel(ctx, "run-1"); !errors.Is(err, context.Canceled) {
		t.Errorf("PendingCancel with a cancelled context = %v, want context.Canceled", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Listen(ctx, store.Notifications{Cancel: func(string, string) {}}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Listen with a cancelled context = %v, want nil", err)
		}
	case <-time.After(hang):
		t.Fatal("Listen with a cancelled context did not return")
	}
	// The store still works afterwards.
	mustCancel(t, c, "run-1", "requested")
	checkPending(t, c, "run-1", "requested", true)
}
