package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// The tests of this file check that a background run acknowledged with 202 is
// durable on the embedded SQLite store (issue 12 item 2): `kern serve` killed
// with SIGKILL loses none of the runs it queued, and the next `kern serve` on the
// same file runs them all.

const queueYAML = "testdata/queue.yaml" // paced, quick

// awaitEnded waits until r answers that the run ended, and returns what r
// answered. A run taken from the queue by a process killed before it recorded the
// run holds the queue's lease (store.DefaultLease), not --lease: the wait allows
// for it.
func (r *replica) awaitEnded(t *testing.T, id string) runInfo {
	t.Helper()
	var ri runInfo
	eventually.Succeeds(t, store.DefaultLease+patience, func() error {
		if ri = r.getRun(t, id); !ri.Status.Terminal() {
			return fmt.Errorf("run %s on %s: %s, not ended", id, r.name, ri.Status)
		}
		return nil
	})
	return ri
}

// TestQueuedRunsSurviveKill queues five background runs on `kern serve
// --workers 1` (one executes, four wait), kills the process with SIGKILL right
// after the last 202, and restarts it on the same file: every run exists, the
// queued ones are run, and the one that was executing is taken over once its
// lease lapsed; all complete.
func TestQueuedRunsSurviveKill(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	const lease = 2 * time.Second
	a := startReplica(t, db, "A", queueYAML, lease, "--workers", "1")
	var ids []string
	for i := range 5 {
		ids = append(ids, a.background(t, "paced", fmt.Sprintf("run %d", i)))
	}
	killed := time.Now()
	a.kill(t)

	b := startReplica(t, db, "B", queueYAML, lease, "--workers", "1")
	for _, id := range ids {
		b.getRun(t, id) // 200: stored before its 202
	}
	for i, id := range ids {
		ri := b.awaitEnded(t, id)
		if ri.Status != run.StatusCompleted || ri.Replica != "B" {
			t.Errorf("run %d (%s): %s on %q, want COMPLETED on B", i, id, ri.Status, ri.Replica)
		}
	}
	t.Logf("five runs ended %v after kill -9 (lease %v)", time.Since(killed).Round(time.Millisecond), lease)
	stop(t, b)
}

// TestQueuedRunKilledAt202 kills `kern serve` with SIGKILL the moment the 202
// of a background run arrives, five times on one file: every run exists after
// the restarts, and every one completes.
func TestQueuedRunKilledAt202(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	const lease = 2 * time.Second
	var ids []string
	for i := range 5 {
		a := startReplica(t, db, fmt.Sprintf("A%d", i), queueYAML, lease, "--workers", "1")
		ids = append(ids, a.background(t, "quick", fmt.Sprintf("run %d", i)))
		a.kill(t)
	}
	b := startReplica(t, db, "B", queueYAML, lease, "--workers", "1")
	for _, id := range ids {
		b.getRun(t, id) // 200: stored before its 202
	}
	for i, id := range ids {
		if ri := b.awaitEnded(t, id); ri.Status != run.StatusCompleted {
			t.Errorf("run %d (%s): %s, want COMPLETED", i, id, ri.Status)
		}
	}
	stop(t, b)
}
