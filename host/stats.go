package host

import (
	"context"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// QueueStats is the background queue as an operator sees it.
type QueueStats struct {
	// Depth counts the runs waiting for a worker: in this process, or, when the
	// store queues runs, in the store (of every process on it), counted up to
	// limit (Capped then).
	Depth  int
	Capped bool
	// Oldest is when the longest-waiting run was queued (zero when none is).
	Oldest time.Time
	// Shared: the queue is the store's, shared by the processes on its database.
	Shared bool
	// Workers bounds the background runs this process executes at once; Size
	// the runs that may wait.
	Workers, Size int
}

// oldestWindow is how many of the stored PENDING runs around the queue's end
// QueueStats reads to find the oldest one still queued (PENDING runs being
// started by a worker are PENDING too, with a lease, for a moment).
const oldestWindow = 64

// QueueStats reports the background queue, counting up to limit runs.
func (h *Host) QueueStats(ctx context.Context, limit int) (QueueStats, error) {
	st := QueueStats{Workers: h.opts.Workers, Size: h.opts.QueueSize}
	switch q := h.queue.(type) {
	case *memQueue:
		h.mu.Lock()
		defer h.mu.Unlock()
		st.Depth = len(q.pending)
		if st.Depth > 0 {
			st.Oldest = time.Unix(q.pending[0].createdAt, 0)
		}
		return st, nil
	case *storeQueue:
		st.Shared = true
		n, err := q.q.Queued(ctx, limit)
		if err != nil {
			return st, err
		}
		st.Depth, st.Capped = n, n >= limit
		if n == 0 {
			return st, nil
		}
		// Runs are listed newest first: the oldest queued ones are at the end.
		recs, err := h.store.ListRuns(ctx, store.RunQuery{Status: run.StatusPending,
			Limit: oldestWindow, Offset: max(0, n-oldestWindow/2)})
		if err != nil {
			return st, err
		}
		for _, r := range recs {
			if r.LeaseUntil.IsZero() && (st.Oldest.IsZero() || r.CreatedAt.Before(st.Oldest)) {
				st.Oldest = r.CreatedAt
			}
		}
		return st, nil
	}
	return st, nil
}

// Lease returns how long the record of a run this host executes stays claimed
// unless renewed: a run's lease is renewed a while before it lapses, so a
// replica's last heartbeat is about a lease before the end of its latest lease.
func (h *Host) Lease() time.Duration { return h.opts.Lease }
