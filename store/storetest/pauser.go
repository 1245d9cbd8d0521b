package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// runPauser runs the tests of store.Pauser, on a store that implements it.
func runPauser(t *testing.T, open func(t *testing.T) store.Store) {
	runOptional(t, open, []optionalTest[store.Pauser]{
		{"TakePausedOnce", testTakePausedOnce},
		{"ExpiredPauses", testExpiredPauses},
		{"ExpiredPausesPaging", testExpiredPausesPaging},
	})
}

// pause stores run id PAUSED (creating it), its pause expiring at expires (zero:
// never).
func pause(t *testing.T, s store.Store, id string, expires time.Time) *store.Run {
	t.Helper()
	r := simpleRun(id)
	mustCreate(t, s, r)
	r.Status, r.Output.Status = run.StatusPaused, run.StatusPaused
	r.Output.Paused = &run.Paused{NextEvent: 3, ExpiresAt: expires, OnExpiry: run.ExpiryCancel}
	if err := s.UpdateRun(ctxOf(t), r); err != nil {
		t.Fatalf("UpdateRun(%s PAUSED): %v", id, err)
	}
	return r
}

// testTakePausedOnce: of eight takes of one paused run at once, exactly one gets
// it, RUNNING for its replica; the others, and a take of a run that is not
// paused, fail with run.ErrNotPaused; a run that does not exist, ErrNotFound.
func testTakePausedOnce(t *testing.T, s store.Store, p store.Pauser) {
	ctx := ctxOf(t)
	pause(t, s, "paused", time.Time{})
	mustCreate(t, s, simpleRun("running"))
	until := time.Now().Add(time.Hour)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []string
	)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replica := string(rune('A' + i))
			r, err := p.TakePaused(ctx, "paused", replica, until)
			switch {
			case err == nil:
				if r.Status != run.StatusRunning || r.Replica != replica {
					t.Errorf("taken run is %s for %q; want RUNNING for %q", r.Status, r.Replica, replica)
				}
				mu.Lock()
				winners = append(winners, replica)
				mu.Unlock()
			case !errors.Is(err, run.ErrNotPaused):
				t.Errorf("losing TakePaused: %v; want run.ErrNotPaused", err)
			}
		}()
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("TakePaused winners = %q; want exactly one", winners)
	}
	if got := mustGet(t, s, "paused"); got.Status != run.StatusRunning || got.Replica != winners[0] {
		t.Errorf("stored run is %s for %q; want RUNNING for %q", got.Status, got.Replica, winners[0])
	}
	if _, err := p.TakePaused(ctx, "running", "A", until); !errors.Is(err, run.ErrNotPaused) {
		t.Errorf("TakePaused(a RUNNING run) = %v; want run.ErrNotPaused", err)
	}
	if _, err := p.TakePaused(ctx, "nope", "A", until); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TakePaused(no run) = %v; want store.ErrNotFound", err)
	}
}

// testExpiredPauses: only PAUSED runs whose pause expired by the given time are
// found, soonest first; a pause with no expiry, one not yet due, a run that
// was taken (continued) and a run that ended are not; a run paused anew with
// an expiry is.
func testExpiredPauses(t *testing.T, s store.Store, p store.Pauser) {
	ctx, now := ctxOf(t), time.Now()
	pause(t, s, "late", now.Add(-time.Minute))
	pause(t, s, "early", now.Add(-time.Hour))
	pause(t, s, "never", time.Time{})
	pause(t, s, "later", now.Add(time.Hour))
	pause(t, s, "taken", now.Add(-time.Hour))
	if _, err := p.TakePaused(ctx, "taken", "A", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	ended := pause(t, s, "ended", now.Add(-time.Hour))
	ended.Status, ended.Output.Status = run.StatusCancelled, run.StatusCancelled
	if err := s.UpdateRun(ctx, ended); err != nil {
		t.Fatal(err)
	}
	running := simpleRun("running") // its output holds a pause, but it runs
	running.Output.Paused = &run.Paused{ExpiresAt: now.Add(-time.Hour)}
	mustCreate(t, s, running)

	got, err := p.ExpiredPauses(ctx, store.ExpiredQuery{Before: now})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"early", "late"}; !slices.Equal(ids(got), want) {
		t.Fatalf("ExpiredPauses = %q; want %q", ids(got), want)
	}
	if got[0].Status != run.StatusPaused || got[0].Output.Paused == nil || got[0].Output.Paused.NextEvent != 3 {
		t.Errorf("expired run read back as %s with pause %+v", got[0].Status, got[0].Output.Paused)
	}

	// The taken run pauses again, its new pause due: it is found again.
	taken := mustGet(t, s, "taken")
	taken.Status, taken.Output.Status = run.StatusPaused, run.StatusPaused
	taken.Output.Paused = &run.Paused{NextEvent: 9, ExpiresAt: now.Add(-2 * time.Hour)}
	taken.LeaseUntil = time.Time{}
	if err := s.UpdateRun(ctx, taken); err != nil {
		t.Fatal(err)
	}
	got, err = p.ExpiredPauses(ctx, store.ExpiredQuery{Before: now.Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"taken", "early", "late", "later"}; !slices.Equal(ids(got), want) {
		t.Fatalf("ExpiredPauses(in two hours) = %q; want %q", ids(got), want)
	}
}

// testExpiredPausesPaging: pauses that expire at one instant are paged by run id
// with After, a page at a time, none twice, none left out.
func testExpiredPausesPaging(t *testing.T, s store.Store, p store.Pauser) {
	ctx, at := ctxOf(t), time.Now().Add(-time.Minute)
	var want []string
	for _, id := range []string{"d", "b", "a", "c", "e"} {
		pause(t, s, id, at)
	}
	pause(t, s, "first", at.Add(-time.Second))
	want = []string{"first", "a", "b", "c", "d", "e"}
	var got []string
	var after *store.Run
	for range len(want) + 1 {
		page, err := p.ExpiredPauses(ctx, store.ExpiredQuery{Before: time.Now(), After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, ids(page)...)
		after = page[len(page)-1]
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged ExpiredPauses = %q; want %q", got, want)
	}
}
