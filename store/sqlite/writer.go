package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/kern-dev/kern/store"
)

// Group commit. Every write is an op that runs on the writer's one connection, in a
// batch: all the ops that queued while the last batch ran, in one transaction. A
// commit costs SQLite about as much as the pages it writes (each commit rewrites the
// index pages it touched), so a batch of many runs' writes costs little more than one.
//
// The batches are run by the callers themselves (flat combining): a caller that
// finds no batch running leads, and runs the batch of its op on its goroutine; one
// that finds a batch running queues its op. A leader runs one batch, the oldest ops
// queued (its own among them), then hands the lead to the caller of the oldest op
// left, which runs the next. A write to an idle store so costs no hand-off to another
// goroutine and back, and under load each hand-off carries a whole batch.

// maxBatch bounds the ops of one transaction, so that a batch's latency stays low.
const maxBatch = 256

// op is one write: fn runs in the batch's transaction. A single-statement op is
// atomic by itself; the others run inside a savepoint, so that one failing leaves
// the rest of its batch alone.
type op struct {
	ctx    context.Context
	single bool
	fn     func(ctx context.Context, tx *sql.Tx) error
	// notes, if set, appends to a notices body what listeners are to be told of
	// the write (see notices.go); it is called once fn succeeded.
	notes func(body []byte) []byte
	// done receives errLead when the op's caller is to lead (see handOff),
	// and fn's outcome once the op's batch committed: the lead is handed only to
	// the caller of a queued op, so that the two never share the buffer.
	done chan error
}

// errLead, received from an op's done, hands its caller the lead of the writer.
var errLead = errors.New("store/sqlite: lead the writer")

// writeQueue holds the ops waiting for a batch. The caller leading the writer is
// the only one that takes ops from it and uses the writer's connection (and the
// fields of Store that the writer owns).
type writeQueue struct {
	mu      sync.Mutex
	ops     []*op      // queued, oldest first
	leading bool       // a caller leads: it runs batches, or was handed the lead
	closed  bool       // Close began: no op is queued any more
	idle    *sync.Cond // on mu: leading became false
	batch   []*op      // the leader's batch: the leader alone uses it
}

// write runs fn in the writer's next batch and returns once that batch committed
// (or failed). When ctx ends before a batch took the op, nothing was written; an
// op a batch took is finished and its outcome returned.
func (s *Store) write(ctx context.Context, single bool, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return s.writeNoted(ctx, single, fn, nil)
}

// writeNoted is write, with the notices of the write, which notes appends to a
// notices body once fn succeeded: they are committed with the write.
func (s *Store) writeNoted(ctx context.Context, single bool, fn func(ctx context.Context, tx *sql.Tx) error,
	notes func(body []byte) []byte) error {
	return s.submit(newOp(ctx, single, fn, notes))
}

func newOp(ctx context.Context, single bool, fn func(ctx context.Context, tx *sql.Tx) error, notes func(body []byte) []byte) *op {
	return &op{ctx: ctx, single: single, fn: fn, notes: notes, done: make(chan error, 1)}
}

// submit runs o in a batch and returns its outcome (see write).
func (s *Store) submit(o *op) error {
	if err := s.enqueue(o.ctx, []*op{o}); err != nil {
		return err
	}
	return s.await(o)
}

// submitAll runs ops in batches, so that they share the next batch (or the next
// few: at most maxBatch ops go in one, and the ops of other callers queued
// meanwhile are not held up behind more), and returns the outcome of each (see
// write).
func (s *Store) submitAll(ctx context.Context, ops []*op) []error {
	errs := make([]error, len(ops))
	for sent := 0; sent < len(ops); {
		chunk := ops[sent:min(sent+maxBatch, len(ops))]
		if err := s.enqueue(ctx, chunk); err != nil {
			for i := sent; i < len(ops); i++ {
				errs[i] = err
			}
			break
		}
		for i, o := range chunk {
			errs[sent+i] = s.await(o)
		}
		sent += len(chunk)
	}
	return errs
}

// enqueue queues ops, one after the other, and leads the writer if no caller does:
// it then runs their batch (see lead).
func (s *Store) enqueue(ctx context.Context, ops []*op) error {
	q := &s.queue
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		q.mu.Unlock()
		return err
	}
	q.ops = append(q.ops, ops...)
	lead := !q.leading
	q.leading = true
	q.mu.Unlock()
	if lead {
		s.lead()
	}
	return nil
}

// await returns o's outcome, once queued (see enqueue); when the lead is handed to
// it meanwhile, it leads. When o's context ends before a batch took it, o is taken
// out of the queue and nothing written.
func (s *Store) await(o *op) error {
	for {
		select {
		case err := <-o.done:
			if err != errLead {
				return err
			}
			s.lead()
		case <-o.ctx.Done():
			if s.dequeue(o) {
				return o.ctx.Err()
			}
			// A batch took it (the lead is handed only to a queued op): its
			// outcome comes.
			return <-o.done
		}
	}
}

// dequeue takes o out of the queue, if no batch took it, and reports whether it did.
// The lead, if handed to o meanwhile, goes on to the next op.
func (s *Store) dequeue(o *op) bool {
	q := &s.queue
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.Index(q.ops, o)
	if i < 0 {
		return false
	}
	q.ops = slices.Delete(q.ops, i, i+1)
	select {
	case <-o.done: // errLead: only a queued op is handed it, and leads next
		s.handOff()
	default:
	}
	return true
}

// lead runs the next batch, then hands the lead on. The batch holds the caller's
// own op: a caller leads when it finds the queue empty, or is handed the lead as the
// caller of the oldest op.
func (s *Store) lead() {
	q := &s.queue
	q.mu.Lock()
	n := min(len(q.ops), maxBatch)
	batch := append(q.batch[:0], q.ops[:n]...)
	q.ops = append(q.ops[:0], q.ops[n:]...)
	q.mu.Unlock()
	s.commit(batch)
	clear(batch)
	q.batch = batch
	select {
	case s.walGrew <- struct{}{}:
	default:
	}
	q.mu.Lock()
	s.handOff()
	q.mu.Unlock()
}

// handOff hands the lead to the caller of the oldest queued op, or leaves the
// writer idle; s.queue.mu is held.
func (s *Store) handOff() {
	q := &s.queue
	if len(q.ops) == 0 {
		q.leading = false
		q.idle.Broadcast()
		return
	}
	q.ops[0].done <- errLead
}

// stopWriter stops queueing ops and waits for the queued ones to be done.
func (s *Store) stopWriter() {
	q := &s.queue
	q.mu.Lock()
	q.closed = true
	for q.leading {
		q.idle.Wait()
	}
	q.mu.Unlock()
}

// commit runs a batch of ops in one transaction and tells each its outcome.
func (s *Store) commit(batch []*op) {
	errs := make([]error, len(batch))
	err := s.runBatch(batch, errs)
	for i, o := range batch {
		if errs[i] == nil {
			errs[i] = err
		}
		o.done <- errs[i]
	}
}

// runBatch runs the ops in one transaction, keeping each op's own error in errs; it
// returns the error that failed the whole batch.
func (s *Store) runBatch(batch []*op, errs []error) error {
	// Statements run without the ops' contexts: modernc.org/sqlite starts a
	// goroutine per statement to watch a context that can end. Each op's context
	// is checked before it runs.
	bg := context.Background()
	tx, err := s.w.BeginTx(bg, nil) // BEGIN IMMEDIATE
	if err != nil {
		return err
	}
	for i, o := range batch {
		if errs[i] = o.ctx.Err(); errs[i] != nil {
			continue
		}
		if o.single {
			errs[i] = o.fn(bg, tx)
			continue
		}
		if _, err := tx.ExecContext(bg, `SAVEPOINT op`); err != nil {
			tx.Rollback()
			return err
		}
		errs[i] = o.fn(bg, tx)
		if errs[i] != nil {
			if _, err := tx.ExecContext(bg, `ROLLBACK TO op`); err != nil {
				tx.Rollback()
				return err
			}
		}
		if _, err := tx.ExecContext(bg, `RELEASE op`); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := s.writeNotices(bg, tx, batch, errs); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// walLimit is the WAL's size, in pages, past which the checkpointer stops the
// writer for a moment to empty the WAL: under a steady stream of commits a passive
// checkpoint never catches up, and the WAL would grow without end.
const walLimit = 16384 // 64 MiB of 4 KiB pages

// ckInterval is the least time between two checkpoints (see checkpointer).
const ckInterval = 50 * time.Millisecond

// checkpointer copies the WAL's committed pages into the database file after
// commits, on its own connection, so that the writer does not: a PASSIVE
// checkpoint runs beside the writer and never blocks it. When the WAL outgrows
// walLimit, a TRUNCATE checkpoint waits for the writer's lock between two batches,
// copies the rest and empties the WAL.
func (s *Store) checkpointer() {
	defer close(s.ckDone)
	ctx := context.Background()
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-s.walGrew:
		}
		// At most one checkpoint per ckInterval: each costs the writes of the
		// pages committed since the last one, and two fsyncs. Under a stream of
		// commits the pages they rewrite (the last pages of the event log, its
		// index's) are copied once per checkpoint, not once per commit.
		select {
		case <-s.quit:
			return
		case <-wait.C:
		}
		wait.Reset(ckInterval)
		// An error (another process holds a lock) waits for the next commit.
		var busy, frames, copied int
		if err := s.ck.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil {
			continue
		}
		if frames > walLimit {
			s.ck.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
		}
	}
}
