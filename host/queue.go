package host

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// queue schedules background runs: storeQueue on a store that is a store.Queue
// (SQLite's runs table, PostgreSQL's River queue), durable and shared by the
// processes on its database; memQueue in this process, for the runs of a host
// without such a store (kept in memory only). The queue schedules; it is not the
// cancel path (see Host.Cancel).
type queue interface {
	// enqueue queues a background run.
	enqueue(ctx context.Context, r *Run) error
	// cancelQueued ends a run queued and started by no process yet CANCELLED, and
	// reports whether it was.
	cancelQueued(ctx context.Context, id, reason string) (bool, error)
	// start starts taking queued runs; stop stops taking them (runs queued in
	// memory end CANCELLED, those queued in the store stay queued for the next
	// process); wait waits for the runs the queue started.
	start()
	stop()
	wait()
}

// newQueue returns the store's queue when the store schedules runs between
// processes and carries their cancels, the in-process queue otherwise.
func (h *Host) newQueue() queue {
	if q, ok := h.store.(store.Queue); ok && h.canceller != nil {
		return &storeQueue{h: h, q: q}
	}
	return &memQueue{h: h}
}

// Enqueue queues a background run and returns its identity (PENDING): a worker of
// this process — or, when the store queues runs, of any process on the database —
// starts it once free. It fails with ErrClosed, ErrQueueFull or
// ErrUnknownComponent, or with the store's error.
func (h *Host) Enqueue(ctx context.Context, req Request) (*run.Output, error) {
	r, err := h.prepare(req, true)
	if err != nil {
		return nil, err
	}
	if h.Closing() {
		return nil, ErrClosed
	}
	if err := h.queue.enqueue(ctx, r); err != nil {
		return nil, err
	}
	return r.identity(), nil
}

// memQueue is the bounded in-process queue of background runs of a host whose
// store queues none: they are lost with the process.
type memQueue struct {
	h *Host
	// Guarded by h.mu.
	pending []*Run // runs waiting for a worker, oldest first
	workers int    // workers executing background runs
}

func (q *memQueue) start() {}
func (q *memQueue) wait()  {}

func (q *memQueue) enqueue(_ context.Context, r *Run) error {
	h := q.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return ErrClosed
	}
	switch {
	case q.workers < h.opts.Workers:
		q.workers++
		h.live[r.id] = r
		h.wg.Add(1)
		go q.work(r)
	case len(q.pending) < h.opts.QueueSize:
		h.live[r.id] = r
		q.pending = append(q.pending, r)
	default:
		return ErrQueueFull
	}
	return nil
}

// work runs background runs, r first, then those queued, one at a time, until the
// queue is empty.
func (q *memQueue) work(r *Run) {
	defer q.h.wg.Done()
	for r != nil {
		if r.claim() && q.h.begin(q.h.runCtx, r) == nil {
			<-r.x.Done()
		}
		r = q.next()
	}
}

// next takes the oldest queued run, or, when none is left, retires the worker.
func (q *memQueue) next() *Run {
	q.h.mu.Lock()
	defer q.h.mu.Unlock()
	for len(q.pending) > 0 {
		r := q.pending[0]
		q.pending[0] = nil
		q.pending = q.pending[1:]
		if !r.claimed.Load() {
			return r
		}
	}
	q.workers--
	return nil
}

// cancelQueued: a run queued here is ended by Host.dequeue, which knows it.
func (q *memQueue) cancelQueued(context.Context, string, string) (bool, error) { return false, nil }

// stop ends the runs still queued CANCELLED.
func (q *memQueue) stop() {
	h := q.h
	h.mu.Lock()
	queued := q.pending
	q.pending = nil
	h.mu.Unlock()
	for _, r := range queued {
		if r.claim() {
			_ = h.beginCancelled(r, ReasonShutdown)
		}
	}
}

// remove takes r out of the pending runs.
func (q *memQueue) remove(r *Run) {
	for i, p := range q.pending {
		if p == r {
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			return
		}
	}
}

// dequeue takes a run queued here out of the queue, to start it at once (it then
// ends CANCELLED through its kept cancel intent). It reports false when a worker
// took the run first.
func (h *Host) dequeue(r *Run) bool {
	if !r.claim() {
		return false
	}
	h.mu.Lock()
	if mq, ok := h.queue.(*memQueue); ok {
		mq.remove(r)
	}
	if h.closing {
		// Shutdown may be past waiting for runs: this one never starts.
		delete(h.live, r.id)
		h.mu.Unlock()
		r.err = ErrClosed
		close(r.started)
		return false
	}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()
	_ = h.begin(h.runCtx, r)
	return true
}

// storeQueue queues background runs in the store, for any process on its
// database to start.
type storeQueue struct {
	h      *Host
	q      store.Queue
	cancel context.CancelFunc
	done   chan struct{}
}

// enqueue stores the run queued, unless QueueSize runs are queued already (in
// the store, by every process on it): the bound is checked before the run is
// stored, so processes enqueueing at once may overshoot it by a few runs.
func (q *storeQueue) enqueue(ctx context.Context, r *Run) error {
	limit := q.h.opts.QueueSize
	n, err := q.q.Queued(ctx, limit)
	if err != nil {
		return err
	}
	if n >= limit {
		return ErrQueueFull
	}
	out, now := r.identity(), time.Now()
	job := &store.Job{ID: r.id, SessionID: out.SessionID, UserID: out.UserID, Kind: r.comp.kind,
		ComponentID: r.comp.id, Status: run.StatusPending, Input: r.input, Output: *out,
		CreatedAt: now, UpdatedAt: now}
	if tp := Traceparent(r.trace.parent); tp != "" && q.h.opts.Telemetry != nil {
		job.Output.Metadata = map[string]string{MetadataTraceparent: tp} // the worker's span is its child
	}
	return q.q.Enqueue(ctx, job)
}

func (q *storeQueue) cancelQueued(ctx context.Context, id, reason string) (bool, error) {
	return q.q.CancelQueued(ctx, id, reason)
}

// start takes queued runs from the store until stop (none with Options.NoWork).
func (q *storeQueue) start() {
	ctx, cancel := context.WithCancel(context.Background())
	q.cancel, q.done = cancel, make(chan struct{})
	if q.h.opts.NoWork {
		close(q.done)
		return
	}
	serves := make([]store.Component, 0, len(q.h.comps)) // the queues this process works
	for _, c := range q.h.comps {
		serves = append(serves, store.Component{Kind: c.kind, ID: c.id})
	}
	go func() {
		defer close(q.done)
		q.work(ctx, serves)
	}()
}

// Bounds of the wait before Work is called again after it failed.
const (
	workRetryMin = 100 * time.Millisecond
	workRetryMax = 30 * time.Second
)

// work calls the store's Work until ctx is done, again after a backoff whenever it
// fails (the database unreachable as the process starts): a process that starts no
// background run, while others rely on it, is worse than one that keeps trying.
func (q *storeQueue) work(ctx context.Context, serves []store.Component) {
	backoff := workRetryMin
	for {
		began := time.Now()
		err := q.q.Work(ctx, q.h.opts.Workers, serves, q.h.runJob)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > workRetryMax {
			backoff = workRetryMin // it worked for a while: a new failure
		}
		q.h.log.Error("host: queue stopped: this process starts no background run until it works again",
			"err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, workRetryMax)
	}
}

func (q *storeQueue) stop() { q.cancel() }
func (q *storeQueue) wait() { <-q.done }

// runJob starts a background run taken from the store's queue and returns once it
// has ended. A run cancelled while queued starts and ends CANCELLED at once. A run
// of a component this host does not run, one handed over while the host shuts
// down, and one whose cancel intent cannot be read go back to the queue
// (store.ErrNotHere), for this process later or another one.
func (h *Host) runJob(_ context.Context, j *store.Job) error {
	c := h.component(j.Kind, j.ComponentID)
	if c == nil {
		// Run by other processes (a rolling deploy): one of them starts it.
		return fmt.Errorf("no %s %q on replica %s: %w", j.Kind, j.ComponentID, h.opts.Replica, store.ErrNotHere)
	}
	r := newRun(c, Request{RunID: j.ID, Input: j.Input, SessionID: j.SessionID, UserID: j.UserID}, true)
	r.given = true // cancelled while queued, maybe
	r.opts = append(r.opts, run.WithResume(&run.Resume{}))
	r.trace.parent, r.queuedAt = traceparentOf(&j.Output), j.CreatedAt
	err := h.register(r, false) // bounded by Options.Workers, not MaxRuns
	if err == nil {
		err = h.startNow(r)
	}
	if errors.Is(err, ErrClosed) || errors.Is(err, errIntentUnread) {
		// Not started: a replica that is not shutting down starts it, or this
		// one once the store answers again.
		return fmt.Errorf("run %s on replica %s: %w: %w", j.ID, h.opts.Replica, store.ErrNotHere, err)
	}
	if err != nil {
		return err
	}
	<-r.x.Done()
	return nil
}
