package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/kern-dev/kern/store"
)

// Group commit. Every write is an op that the writer goroutine runs on the writer's
// one connection; it takes all the ops that queued while it committed the previous
// batch and runs them in one transaction. A commit costs SQLite about as much as
// the rows it writes (each commit rewrites the index pages it touched), so a batch
// of many runs' writes costs little more than one.

// maxBatch bounds the ops a batch takes from each of its queues, so that a
// batch's latency stays low: the urgent ops are taken until maxBatch are (a group
// handed over together, see submitAll, whole: up to 2×maxBatch), the later ops up
// to maxBatch, so that one transaction holds fewer than 3×maxBatch ops.
const maxBatch = 256

// bulkRuns bounds the runs whose events one call of a Recorder's bulk carries
// (see store.BulkLimiter): a run's end waits for the call the writer is
// committing. Measured with kern-load (1,000 streams at a word per 60 ms, 2 busy
// cores), calls of 128 runs took 1-5 ms, up to 23 ms when the cores were busy.
const bulkRuns = 32

var _ store.BulkLimiter = (*Store)(nil)

// BulkRuns returns the most runs whose events a Recorder writes in one call of
// its bulk (see store.BulkLimiter).
func (s *Store) BulkRuns() int { return bulkRuns }

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
	done  chan error // receives fn's outcome once the batch committed
	// later: the op may wait for the ops queued beside it, for one batch at
	// most (see writer).
	later bool
}

// write runs fn in the writer's next batch and returns once that batch committed
// (or failed). When ctx ends before the writer took the op, nothing was written; an
// op the writer took is finished and its outcome returned.
func (s *Store) write(ctx context.Context, single bool, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return s.writeNoted(ctx, single, fn, nil)
}

// writeNoted is write, with the notices of the write, which notes appends to a
// notices body once fn succeeded: they are committed with the write.
func (s *Store) writeNoted(ctx context.Context, single bool, fn func(ctx context.Context, tx *sql.Tx) error,
	notes func(body []byte) []byte) error {
	return s.submit(newOp(ctx, single, fn, notes))
}

// writeLater is writeNoted for a write that may wait for the writes queued beside
// it (see writer): it goes in the batch after them.
func (s *Store) writeLater(ctx context.Context, single bool, fn func(ctx context.Context, tx *sql.Tx) error,
	notes func(body []byte) []byte) error {
	o := newOp(ctx, single, fn, notes)
	o.later = true
	return s.submit(o)
}

func newOp(ctx context.Context, single bool, fn func(ctx context.Context, tx *sql.Tx) error, notes func(body []byte) []byte) *op {
	return &op{ctx: ctx, single: single, fn: fn, notes: notes, done: make(chan error, 1)}
}

// submit hands o to the writer and returns its outcome (see write).
func (s *Store) submit(o *op) error {
	ops := s.ops
	if o.later {
		ops = s.later
	}
	select {
	case ops <- o:
	case <-s.quit:
		return store.ErrClosed
	case <-o.ctx.Done():
		return o.ctx.Err()
	}
	return <-o.done
}

// submitAll hands ops to the writer at once, so that they share its next batch
// (or its next few: at most maxBatch ops go in one, lest a large write hold up the
// urgent ones queued behind it), and returns the outcome of each (see write).
func (s *Store) submitAll(ctx context.Context, ops []*op) []error {
	errs := make([]error, len(ops))
	sent := 0
send:
	for sent < len(ops) {
		chunk := ops[sent:min(sent+maxBatch, len(ops))]
		var err error
		select {
		case s.many <- chunk:
			sent += len(chunk)
			continue
		case <-s.quit:
			err = store.ErrClosed
		case <-ctx.Done():
			err = ctx.Err()
		}
		for i := sent; i < len(ops); i++ {
			errs[i] = err
		}
		break send
	}
	for i, o := range ops[:sent] {
		errs[i] = <-o.done
	}
	return errs
}

// writer takes ops until the store closes. The ops that may wait (later: events
// that only wait to be streamed, renewals of leases) are passed over once when
// other ops are queued with them, and go in the next batch: a run's end, which
// its caller waits for, is not committed with a large write of other runs'
// events. Such ops are of other runs than the urgent ones queued with them (a
// Recorder writes nothing else for a run while its events are being written),
// and each caller's writes are committed in the order it made them (each waits
// for its commit).
func (s *Store) writer() {
	defer close(s.writerDone)
	batch := make([]*op, 0, maxBatch)
	var held []*op // the later ops waiting
	for {
		batch = batch[:0]
		carried := len(held) > 0 // held were passed over once: they go in this batch
		if !carried {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			case ops := <-s.many:
				batch = append(batch, ops...)
			case o := <-s.later:
				held = append(held, o)
			case <-s.quit:
				return
			}
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			case ops := <-s.many:
				batch = append(batch, ops...)
			default:
				break drain
			}
		}
	later:
		for len(held) < maxBatch {
			select {
			case o := <-s.later:
				held = append(held, o)
			default:
				break later
			}
		}
		if len(batch) == 0 || carried {
			batch = append(batch, held...)
			clear(held)
			held = held[:0]
		}
		s.commit(batch)
		clear(batch)
		select {
		case s.walGrew <- struct{}{}:
		default:
		}
	}
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
