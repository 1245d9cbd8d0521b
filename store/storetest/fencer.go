package storetest

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// runFencer runs the tests of store.Fencer, on a store that implements it.
func runFencer(t *testing.T, open func(t *testing.T) store.Store) {
	runOptional(t, open, []optionalTest[store.Fencer]{
		{"AppendEventsAs", testAppendEventsAs},
		{"AppendEventsAsOrderedWithClaim", testAppendEventsAsOrderedWithClaim},
	})
}

// createOwned stores a RUNNING run that replica holds until lease.
func createOwned(t *testing.T, s store.Store, id, replica string, lease time.Time) {
	t.Helper()
	r := simpleRun(id)
	r.Replica, r.LeaseUntil = replica, lease
	mustCreate(t, s, r)
}

// testAppendEventsAs: replica A stalled past the lease of a run, and B claimed it
// and stored its next event. A's append of the events it held is refused for that
// run, whose index B took keeps B's event, and is written for A's own run and for a
// run with no record; B's appends are written.
func testAppendEventsAs(t *testing.T, s store.Store, f store.Fencer) {
	ctx, now := ctxOf(t), time.Now()
	createOwned(t, s, "mine", "A", now.Add(time.Hour))
	createOwned(t, s, "claimed", "A", now.Add(-time.Second))
	held := []store.Event{event("mine", 0, run.EventRunStarted, ""), event("claimed", 0, run.EventRunStarted, "")}
	if lost, err := f.AppendEventsAs(ctx, "A", held); err != nil || len(lost) > 0 {
		t.Fatalf("A's append to its runs: lost %q, %v", lost, err)
	}
	if got, err := s.Claim(ctx, "B", now, now.Add(time.Hour), 10); err != nil || len(got) != 1 || got[0].ID != "claimed" {
		t.Fatalf("B's Claim = %d runs, %v; want run claimed", len(got), err)
	}
	bs := event("claimed", 1, run.EventRunContent, "B's")
	if lost, err := f.AppendEventsAs(ctx, "B", []store.Event{bs}); err != nil || len(lost) > 0 {
		t.Fatalf("B's append to the run it claimed: lost %q, %v", lost, err)
	}
	batch := []store.Event{
		event("claimed", 1, run.EventRunContent, "A's"),
		event("mine", 1, run.EventRunContent, "A's"),
		event("claimed", 2, run.EventRunContent, "A's"),
		event("unrecorded", 0, run.EventRunStarted, ""),
	}
	lost, err := f.AppendEventsAs(ctx, "A", batch)
	if err != nil {
		t.Fatalf("A's append after B's claim: %v", err)
	}
	if !slices.Equal(lost, []string{"claimed"}) {
		t.Errorf("A's append after B's claim lost %q, want [claimed]", lost)
	}
	for id, want := range map[string][]store.Event{
		"claimed":    {held[1], bs},
		"mine":       {held[0], batch[1]},
		"unrecorded": {batch[3]},
	} {
		got, err := s.Events(ctx, id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(id, func(t *testing.T) { checkEvents(t, got, want) })
	}
	// A's events without a run lost: nothing lost.
	if lost, err := f.AppendEventsAs(ctx, "A", []store.Event{event("mine", 2, run.EventRunContent, "")}); err != nil || lost != nil {
		t.Errorf("A's append to its run: lost %q, %v; want nil, nil", lost, err)
	}
}

// testAppendEventsAsOrderedWithClaim races A's appends to its runs against B's
// claims of them, B then storing its next event after the last one it reads: an
// append of A that was not refused is stored as A wrote it, before B's, and B's
// event keeps its index.
func testAppendEventsAsOrderedWithClaim(t *testing.T, s store.Store, f store.Fencer) {
	const runs = 8
	ctx, now := ctxOf(t), time.Now()
	for i := range runs {
		createOwned(t, s, fmt.Sprintf("r%d", i), "A", now.Add(-time.Second))
	}
	var (
		wg      sync.WaitGroup
		written = make([]int, runs) // the indexes of A's events its appends wrote, per run
	)
	start := make(chan struct{})
	for i := range runs {
		id := fmt.Sprintf("r%d", i)
		wg.Go(func() { // A appends until it finds the run lost
			<-start
			for idx := 0; idx < 1000; idx++ {
				lost, err := f.AppendEventsAs(ctx, "A", []store.Event{event(id, idx, run.EventRunContent, "A's")})
				if err != nil {
					t.Errorf("A's append to %s: %v", id, err)
					return
				}
				if len(lost) > 0 {
					return
				}
				written[i] = idx + 1
			}
		})
	}
	close(start)
	defer wg.Wait() // A's appends end before the test does, even when it fails here
	claimed := 0
	for claimed < runs { // B claims each run, and stores its next event after the last stored
		got, err := s.Claim(ctx, "B", now, now.Add(time.Hour), 1)
		if err != nil {
			t.Fatalf("B's Claim: %v", err)
		}
		for _, r := range got {
			claimed++
			last, err := store.LastEvent(ctx, s, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			next := 0
			if last != nil {
				next = last.Index + 1
			}
			if lost, err := f.AppendEventsAs(ctx, "B", []store.Event{event(r.ID, next, run.EventRunContent, "B's")}); err != nil || len(lost) > 0 {
				t.Errorf("B's append to %s: lost %q, %v", r.ID, lost, err)
			}
		}
	}
	wg.Wait()
	for i := range runs {
		id := fmt.Sprintf("r%d", i)
		evs, err := s.Events(ctx, id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != written[i]+1 {
			t.Errorf("run %s: %d events stored, want A's %d then B's", id, len(evs), written[i])
			continue
		}
		for j, ev := range evs {
			want := event(id, j, run.EventRunContent, "A's")
			if j == written[i] {
				want = event(id, j, run.EventRunContent, "B's")
			}
			if !sameJSON(ev.Data, want.Data) {
				t.Errorf("run %s: event %d = %s, want %s", id, j, ev.Data, want.Data)
			}
		}
	}
}

// optionalTest is a test of a store that implements the optional interface I.
type optionalTest[I any] struct {
	name string
	fn   func(t *testing.T, s store.Store, i I)
}

// runOptional runs each of tests in parallel on a store of its own, skipped on a
// store that does not implement I.
func runOptional[I any](t *testing.T, open func(t *testing.T) store.Store, tests []optionalTest[I]) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			i, ok := s.(I)
			if !ok {
				t.Skipf("%T is not a %v", s, reflect.TypeFor[I]())
			}
			tt.fn(t, s, i)
		})
	}
}
