package store

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// leaseKeeper keeps the leases of the runs a Recorder writes. It stamps the lease a
// record or a checkpoint is written with, renews the leases of the runs three times
// per lease, finds the runs that another replica claimed meanwhile (a renewal that
// the store answers "lost" fences the run off: nothing more of it is written here),
// and tells which runs' leases lapsed without a write that succeeded, which the
// recorder then gives up on. The recorder's loop alone uses it, but for renewCall,
// which the bulk's goroutine calls too (see bulkCall).
type leaseKeeper struct {
	store   Store
	replica string
	lease   time.Duration
	clock   clock

	due []*recording // the runs of a renewal, reused
}

// every returns how often the leases are renewed: three times per lease.
func (k *leaseKeeper) every() time.Duration { return k.lease / 3 }

// until returns when a lease taken now lapses.
func (k *leaseKeeper) until() time.Time { return k.clock.Now().Add(k.lease) }

// markDue marks the leases of the runs as due to be renewed.
func (k *leaseKeeper) markDue(live []*recording) {
	for _, rc := range live {
		rc.renew = true
	}
}

// held takes note that a write for rc succeeded with until as the run's lease.
func (k *leaseKeeper) held(rc *recording, until time.Time) {
	rc.lease, rc.err = until, nil
}

// lapsed reports whether rc's lease, as last written or renewed, lapsed while its
// writes failed: another process may have taken the run over.
func (k *leaseKeeper) lapsed(rc *recording, now time.Time) bool {
	return rc.err != nil && now.After(rc.lease)
}

// dueOf returns the runs of live whose lease is due to be renewed, and that were
// not given up on. The slice is reused by the next call.
func (k *leaseKeeper) dueOf(live []*recording) []*recording {
	due := k.due[:0]
	for _, rc := range live {
		if rc.renew && rc.dead == nil {
			due = append(due, rc)
		}
	}
	k.due = due
	return due
}

// runIDs returns the ids of the runs.
func runIDs(rcs []*recording) []string {
	ids := make([]string, len(rcs))
	for i, rc := range rcs {
		ids[i] = rc.x.ID
	}
	return ids
}

// renewCall renews the leases of the runs with the given ids until then (some of
// those dueOf returned, in parts: see Recorder.nextCall), and
// returns those the store found claimed by another replica. It uses only what does
// not change once the recorder runs: the bulk's goroutine calls it.
func (k *leaseKeeper) renewCall(ctx context.Context, ids []string, until time.Time) ([]string, error) {
	return k.store.RenewLeases(ctx, k.replica, ids, until)
}

// renewed takes in the outcome of a renewal of the leases of due until then, and
// returns the runs it could not renew: every one with the store's error if the
// write failed, or with ErrTakenOver each one the store found claimed by another
// replica. A run given up on meanwhile is left as it is.
func (k *leaseKeeper) renewed(due []*recording, until time.Time, lost []string, err error) []failure {
	if err != nil {
		err = fmt.Errorf("store: renew leases: %w", err)
	}
	var fs []failure
	for _, rc := range due {
		switch {
		case rc.dead != nil:
		case err != nil:
			fs = append(fs, failure{rc, err})
		case slices.Contains(lost, rc.x.ID):
			fs = append(fs, failure{rc, fmt.Errorf("store: run %s: %w", rc.x.ID, ErrTakenOver)})
		default:
			rc.renew = false
			k.held(rc, until)
		}
	}
	return fs
}

// release lets go of the runs that dueOf returned.
func (k *leaseKeeper) release() {
	clear(k.due[:cap(k.due)])
	k.due = k.due[:0]
}

// clock is the time of the lease keeper: when leases lapse, and when they are
// renewed. Tests give the recorder one they advance, so that none waits for a lease
// to lapse.
type clock interface {
	Now() time.Time
	// Ticker returns a channel that receives a tick every d, and a func that stops it.
	Ticker(d time.Duration) (<-chan time.Time, func())
}

// wallClock is the clock of the recorders programs use.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (wallClock) Ticker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}
