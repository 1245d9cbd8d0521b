package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// The queue of background runs is the runs table itself: a queued run is a run
// PENDING with no lease (lease_until 0), and runs are taken oldest first (by
// created_at, then id). A run is queued exactly when its record is stored (one
// INSERT), so a run acknowledged as queued survives a process that is killed.
// A worker takes a run by giving it a lease in a conditional UPDATE, which runs
// in the writer's immediate transaction: SQLite serialises it with every other
// process's writes on the file, so that two workers, in this process or others,
// never take the same run. A Work loop hears of runs queued in this process at
// once, and polls the file for the others' every poll interval (as a listener
// does: one indexed read, no write when nothing is queued).

var _ store.Queue = (*Store)(nil)

// requeueAfter is how long a Work loop leaves alone a run it put back in the
// queue (its fn returned store.ErrNotHere), so that it does not take it again at
// once; other processes may take it meanwhile.
const requeueAfter = time.Second

// maxSkipped bounds the runs a Work loop leaves alone at once (see requeueAfter):
// past it, the loop pauses taking until the oldest is due.
const maxSkipped = 256

const (
	// The components a Work loop serves, ?1, are a JSON array of [kind, id].
	sqlServed = `(kind, component_id) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1))`
	// The runs put back by this loop that it leaves alone, ?2: a JSON array of ids.
	sqlQueuedFor = `status = 'PENDING' AND lease_until = 0 AND ` + sqlServed + `
		AND run_id NOT IN (SELECT value FROM json_each(?2))`
	sqlAnyQueued  = `SELECT 1 FROM runs WHERE ` + sqlQueuedFor + ` LIMIT 1`
	sqlTakeQueued = `UPDATE runs SET lease_until = ?3, updated_at = ?4
		WHERE run_id IN (SELECT run_id FROM runs WHERE ` + sqlQueuedFor + ` ORDER BY created_at, run_id LIMIT ?5)
		RETURNING ` + runColumns
	sqlUntakeQueued = `UPDATE runs SET lease_until = 0
		WHERE run_id = ? AND status = 'PENDING' AND lease_until = ?`
	sqlGetQueued    = `SELECT ` + runColumns + ` FROM runs WHERE run_id = ? AND status = 'PENDING' AND lease_until = 0`
	sqlCancelQueued = `UPDATE runs SET status = ?, output = ?, updated_at = ?
		WHERE run_id = ? AND status = 'PENDING' AND lease_until = 0`
	sqlCountQueued = `SELECT count(*) FROM (SELECT 1 FROM runs WHERE status = 'PENDING' AND lease_until = 0 LIMIT ?)`
)

// waker wakes the Work loops of one Store when a run is queued through it.
type waker struct {
	mu sync.Mutex
	ch chan struct{} // closed by wake; nil when no loop waits
}

// wait returns a channel closed at the next wake.
func (w *waker) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

func (w *waker) wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

// Enqueue stores r, PENDING with no replica and no lease, which queues it: a
// taken id returns store.ErrExists and queues nothing. r's session is created as
// CreateRun creates it. It sets r's status, replica, lease, CreatedAt (when zero)
// and UpdatedAt to what was stored, and wakes the Work loops of this Store; those
// of other processes find the run at their next poll.
func (s *Store) Enqueue(ctx context.Context, r *store.Job) error {
	queued := *r
	queued.Status, queued.Replica, queued.LeaseUntil = run.StatusPending, "", time.Time{}
	now := time.Now().Truncate(time.Millisecond)
	queued.CreatedAt = cmp.Or(queued.CreatedAt, now)
	if err := s.CreateRun(ctx, &queued); err != nil {
		return err
	}
	s.queued.wake()
	r.Status, r.Replica, r.LeaseUntil = run.StatusPending, "", time.Time{}
	r.CreatedAt, r.UpdatedAt = queued.CreatedAt, now
	return nil
}

// Queued counts the queued runs, of every component, up to limit: it reads at
// most limit of them.
func (s *Store) Queued(ctx context.Context, limit int) (int, error) {
	if err := s.begin(ctx); err != nil {
		return 0, s.fail("count queued runs", err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, sqlCountQueued, max(limit, 0)).Scan(&n); err != nil {
		return 0, s.fail("count queued runs", err)
	}
	return n, nil
}

// Work starts queued runs of the components in serves, oldest first, at most
// workers at once in this process, until ctx is done; then it takes no more,
// waits for the runs it started, and returns nil. It returns an error when it
// cannot start (workers < 1, the store closed) or the store is closed under it.
//
// A run is taken before fn is called: still queued, it gets a lease of
// store.DefaultLease, so that recovery takes it over if this process dies before
// the run's own lease is written. fn is called with the run's stored record and
// a context that Work never cancels (the caller cancels its runs itself).
// Whatever fn returns, the run is done (an error is logged), but for
// store.ErrNotHere, which puts the run back in the queue: this loop leaves it to
// others for a second (requeueAfter), then may take it again.
//
// A run queued through this Store is taken at once; one queued by another
// process within the poll interval (DefaultPollInterval, or WithPollInterval).
// A failed read or take is logged and tried again, backing off up to 5 s.
func (s *Store) Work(ctx context.Context, workers int, serves []store.Component,
	fn func(ctx context.Context, j *store.Job) error) error {
	const op = "work queued runs"
	if err := s.begin(context.Background()); err != nil {
		return s.fail(op, err)
	}
	if workers < 1 {
		return s.fail(op, fmt.Errorf("workers = %d, want at least 1", workers))
	}
	pairs := make([][2]string, len(serves))
	for i, c := range serves {
		pairs[i] = [2]string{string(c.Kind), c.ID}
	}
	served, err := json.Marshal(pairs)
	if err != nil {
		return s.fail(op, err)
	}
	w := &worker{s: s, fn: fn, served: served, skipped: make(map[string]time.Time),
		free: make(chan struct{}, workers), freed: make(chan struct{}, 1), putBack: make(chan string, workers)}
	for range workers {
		w.free <- struct{}{}
	}
	defer w.wg.Wait()
	poll := time.NewTicker(s.pollInterval)
	defer poll.Stop()
	var retry backoff
	woken := false // by a run queued through this Store: there is one to take
	for {
		// Asked for before the take, so that a run queued after it wakes the loop.
		wake := s.queued.wait()
		if now := time.Now(); len(w.free) > 0 && !now.Before(retry.next) {
			if err := w.takeAndStart(ctx, now, woken); err != nil {
				if s.closed.Load() {
					return s.fail(op, store.ErrClosed)
				}
				if ctx.Err() != nil {
					return nil
				}
				wait := retry.fail(now, s.pollInterval)
				s.log.Warn("store/sqlite: could not take queued runs; retrying", "path", s.path, "retry_in", wait, "err", err)
			} else {
				retry = backoff{}
			}
		}
		woken = false
		select {
		case <-ctx.Done():
			return nil
		case <-s.quit:
			return s.fail(op, store.ErrClosed)
		case <-wake:
			woken = true
		case <-poll.C:
		case <-w.freed:
		case id := <-w.putBack:
			w.skipped[id] = time.Now().Add(requeueAfter)
		}
	}
}

// worker is the state of one Work loop.
type worker struct {
	s      *Store
	fn     func(ctx context.Context, j *store.Job) error
	served []byte // the components served, as sqlServed reads them

	free    chan struct{} // a token per worker not running a run
	freed   chan struct{} // a worker became free
	putBack chan string   // the runs fn put back (store.ErrNotHere)
	wg      sync.WaitGroup

	skipped map[string]time.Time // runs put back, left alone until then; the loop's own
}

// takeAndStart takes as many queued runs as there are free workers and starts
// each on a goroutine of its own. Unless woken by a run queued, it first looks
// for one without writing.
func (w *worker) takeAndStart(ctx context.Context, now time.Time, woken bool) error {
	skip, err := w.skipping(now)
	if err != nil {
		return err
	}
	if !woken {
		found, err := w.s.anyQueued(ctx, w.served, skip)
		if err != nil || !found {
			return err
		}
	}
	jobs, err := w.s.take(ctx, w.served, skip, len(w.free))
	if err != nil {
		return err
	}
	for _, j := range jobs {
		<-w.free
		w.wg.Add(1)
		go w.run(ctx, j)
	}
	return nil
}

// skipping returns the ids of the runs left alone now, as a JSON array, having
// forgotten those due.
func (w *worker) skipping(now time.Time) ([]byte, error) {
	ids := make([]string, 0, len(w.skipped))
	for id, until := range w.skipped {
		if now.Before(until) {
			ids = append(ids, id)
		} else {
			delete(w.skipped, id)
		}
	}
	if len(ids) >= maxSkipped {
		return nil, fmt.Errorf("%d runs put back in the last %s: pausing", len(ids), requeueAfter)
	}
	return json.Marshal(ids)
}

// run calls fn with a taken run and puts the run back when fn says so.
func (w *worker) run(ctx context.Context, j *store.Job) {
	defer w.wg.Done()
	defer func() {
		w.free <- struct{}{}
		select {
		case w.freed <- struct{}{}:
		default:
		}
	}()
	err := w.fn(context.WithoutCancel(ctx), j)
	switch {
	case errors.Is(err, store.ErrNotHere):
		if uerr := w.s.untake(j); uerr != nil {
			// Its lease lapses, and recovery takes it over.
			w.s.log.Error("store/sqlite: could not put a queued run back", "run_id", j.ID, "err", uerr)
			return
		}
		w.s.queued.wake() // for the other loops of this Store
		select {
		case w.putBack <- j.ID:
		case <-ctx.Done():
		}
	case err != nil:
		w.s.log.Error("store/sqlite: queued run ended with an error", "run_id", j.ID, "err", err)
	}
}

// anyQueued reports whether a run of the served components is queued, skip
// aside. It only reads, so that the Work loops of every process on the file
// take the write lock only when there is a run to take.
func (s *Store) anyQueued(ctx context.Context, served, skip []byte) (bool, error) {
	var one int
	err := s.r.QueryRowContext(ctx, sqlAnyQueued, served, skip).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// take gives at most limit queued runs of the served components, skip aside, a
// lease, oldest first, and returns them as now stored.
func (s *Store) take(ctx context.Context, served, skip []byte, limit int) ([]*store.Job, error) {
	var taken []*store.Job
	now := time.Now()
	until := now.Add(store.DefaultLease)
	err := s.write(ctx, true, func(ctx context.Context, tx *sql.Tx) error {
		taken = nil // the writer may run fn again
		rows, err := tx.QueryContext(ctx, sqlTakeQueued, served, skip, millis(until), now.UnixMilli(), limit)
		if err != nil {
			return err
		}
		taken, err = scanRuns(rows)
		return err
	})
	if err != nil {
		return nil, s.fail("take queued runs", err)
	}
	// RETURNING gives no order: oldest first, as taken.
	sortRuns(taken)
	return taken, nil
}

// untake puts a taken run back in the queue, unless it changed since.
func (s *Store) untake(j *store.Job) error {
	err := s.write(context.Background(), true, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqlUntakeQueued, j.ID, millis(j.LeaseUntil))
		return err
	})
	return s.fail("put back queued run "+j.ID, err)
}

// CancelQueued ends a run still queued CANCELLED with reason: its status, its
// output (the reason), its one terminal event and a notice of its end for the
// listeners are stored in one transaction, which no worker's take can overtake.
// It reports false, and writes nothing, for a run no longer queued (taken by a
// worker, ended, or never stored).
func (s *Store) CancelQueued(ctx context.Context, runID, reason string) (bool, error) {
	op := "cancel queued run " + runID
	if err := s.begin(ctx); err != nil {
		return false, s.fail(op, err)
	}
	reason = cutReason(reason)
	var cancelled *store.Run
	var page []store.Event
	err := s.writeNoted(ctx, false, func(ctx context.Context, tx *sql.Tx) error {
		cancelled, page = nil, nil
		r, err := scanRun(tx.QueryRowContext(ctx, sqlGetQueued, runID))
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		now := time.Now()
		out := r.Output
		out.RunID, out.Status, out.Reason = r.ID, run.StatusCancelled, reason
		if r.Kind == run.KindWorkflow {
			out.WorkflowID = cmp.Or(out.WorkflowID, r.ComponentID)
		} else {
			out.AgentID = cmp.Or(out.AgentID, r.ComponentID)
		}
		r.Status, r.Output = run.StatusCancelled, out
		enc, err := encodeOutput("", &out)
		if err != nil {
			return err
		}
		var last sql.NullInt64 // a queued run has no events; should it have any, the end comes after
		if err := s.stmt(ctx, tx, s.maxIndex).QueryRowContext(ctx, runID, nil).Scan(new(sql.NullBool), &last); err != nil {
			return err
		}
		next := 0
		if last.Valid {
			next = int(last.Int64) + 1
		}
		ev, err := store.EndEvent(r, next, now)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, sqlCancelQueued, string(r.Status), enc, now.UnixMilli(), runID); err != nil {
			return err
		}
		if _, err := s.stmt(ctx, tx, s.insertPage).ExecContext(ctx, runID, ev.Index, ev.Index,
			encodePage(nil, []store.Event{ev})); err != nil {
			return err
		}
		cancelled, page = r, []store.Event{ev}
		return nil
	}, func(b []byte) []byte {
		if cancelled == nil || len(runID) > MaxCancelRunID {
			return b
		}
		b = appendEventsNotices(b, [][]store.Event{page}, nil)
		return appendNotice(b, noticeEnded, runID, string(run.StatusCancelled))
	})
	if err != nil {
		return false, s.fail(op, err)
	}
	return cancelled != nil, nil
}

// sortRuns sorts runs oldest first, by CreatedAt then id.
func sortRuns(runs []*store.Run) {
	slices.SortFunc(runs, func(a, b *store.Run) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
}
