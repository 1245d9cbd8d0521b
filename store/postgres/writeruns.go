package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-dev/kern/store"
)

var _ store.RunsWriter = (*Store)(nil)

// WriteRuns creates and updates runs as CreateRun and UpdateRun do, each with its
// own outcome. The creates and the updates that do not end a run (a recorder's
// records and checkpoints) go in one round trip and one transaction (a pipelined
// batch) instead of a connection and a transaction each; the ends go through
// UpdateRun meanwhile, which notifies them and shares their transaction with the
// other ends written at the same time. Should the batch fail (a value PostgreSQL
// refuses fails all of it, and nothing of it is written), each of its writes is
// made alone, so that it fails only its own run.
func (s *Store) WriteRuns(ctx context.Context, create, update []*store.Run) (createErrs, updateErrs []error) {
	createErrs, updateErrs = make([]error, len(create)), make([]error, len(update))
	var ends sync.WaitGroup
	var rest []int // the updates of the batch, by index in update
	for i, r := range update {
		if r.Status.Terminal() {
			ends.Go(func() { updateErrs[i] = s.UpdateRun(ctx, r) })
			continue
		}
		rest = append(rest, i)
	}
	if len(create)+len(rest) == 1 {
		if len(create) == 1 {
			createErrs[0] = s.CreateRun(ctx, create[0])
		} else {
			updateErrs[rest[0]] = s.UpdateRun(ctx, update[rest[0]])
		}
	} else if len(create)+len(rest) > 1 && !s.writeBatchOfRuns(ctx, create, update, rest, createErrs, updateErrs) {
		var alone sync.WaitGroup
		for i, r := range create {
			alone.Go(func() { createErrs[i] = s.CreateRun(ctx, r) })
		}
		for _, i := range rest {
			alone.Go(func() { updateErrs[i] = s.UpdateRun(ctx, update[i]) })
		}
		alone.Wait()
	}
	ends.Wait()
	return createErrs, updateErrs
}

// writeBatchOfRuns writes the creates and the updates of update at the indexes
// rest in one batch, leaving each one's outcome in createErrs and updateErrs, and
// reports whether the batch was written: if not, nothing of it was (as far as the
// store can tell), and the outcomes are not set but for the values refused before
// the batch was sent.
func (s *Store) writeBatchOfRuns(ctx context.Context, create, update []*store.Run, rest []int, createErrs, updateErrs []error) bool {
	const op = "write runs"
	if err := s.check(op); err != nil {
		for i := range create {
			createErrs[i] = err
		}
		for _, i := range rest {
			updateErrs[i] = err
		}
		return true
	}
	type created struct {
		i             int
		created, when time.Time
	}
	var b pgx.Batch
	var creates []created
	for i, r := range create {
		args, at, now, err := createArgs(r)
		if err != nil {
			createErrs[i] = fmt.Errorf("store/postgres: create run %s: %w", r.ID, err)
			continue
		}
		b.Queue(s.q.createRunOnce, args...)
		creates = append(creates, created{i, at, now})
	}
	var updates []int
	now := ms(time.Now())
	for _, i := range rest {
		r := update[i]
		out, err := encodeOutput(&r.Output)
		if err != nil {
			updateErrs[i] = fmt.Errorf("store/postgres: update run %s: %w", r.ID, err)
			continue
		}
		b.Queue(s.q.updateRun, r.ID, string(r.Status), r.Replica, lease(r.LeaseUntil), now, out, lease(store.PauseExpiry(r)))
		updates = append(updates, i)
	}
	if b.Len() == 0 {
		return true
	}
	tags := make([]int64, 0, b.Len())
	br := s.pool.SendBatch(ctx, &b)
	for range b.Len() {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return false
		}
		tags = append(tags, tag.RowsAffected())
	}
	if err := br.Close(); err != nil {
		return false
	}
	for k, c := range creates {
		r := create[c.i]
		if tags[k] == 0 {
			createErrs[c.i] = fmt.Errorf("store/postgres: create run %s: %w", r.ID, store.ErrExists)
			continue
		}
		r.CreatedAt, r.UpdatedAt = c.created, c.when
	}
	for k, i := range updates {
		r := update[i]
		if tags[len(creates)+k] == 0 {
			updateErrs[i] = s.notUpdated(ctx, "update run "+r.ID, r.ID)
			continue
		}
		r.UpdatedAt = now
	}
	return true
}
