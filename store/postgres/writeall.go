package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-dev/kern/store"
)

// WriteEnds appends events for replica, as AppendEventsAs does, and then
// writes update, as WriteRuns does, in one transaction and, in the common case,
// one round trip and one commit: the last events of runs that end or checkpoint,
// and their ends and checkpoints. An update is written only if its run's events
// are: the update of a run lost (whose id lost holds) is not written, and fails
// with store.ErrTakenOver; when the events cannot be written (err), no update is,
// and each fails with err.
//
// When the one round trip cannot write everything (a run lost, events some of
// which are stored, a value PostgreSQL refuses), it writes nothing, and the
// events are appended as AppendEventsAs does, then the updates of the runs not
// lost written as WriteRuns does.
func (s *Store) WriteEnds(ctx context.Context, replica string, events []store.Event, update []*store.Run) (lost []string, updateErrs []error, err error) {
	updateErrs = make([]error, len(update))
	if len(update) == 0 {
		lost, err = s.AppendEventsAs(ctx, replica, events)
		return lost, updateErrs, err
	}
	if len(events) == 0 {
		_, updateErrs = s.WriteRuns(ctx, nil, update)
		return nil, updateErrs, nil
	}
	if written, err := s.writeEndsAll(ctx, replica, events, update, updateErrs); err != nil || written {
		if err != nil {
			fill(updateErrs, err)
		}
		return nil, updateErrs, err
	}
	clear(updateErrs)
	lost, err = s.AppendEventsAs(ctx, replica, events)
	if err != nil {
		fill(updateErrs, err)
		return lost, updateErrs, err
	}
	var rest []*store.Run
	var at []int
	for i, r := range update {
		if slices.Contains(lost, r.ID) {
			updateErrs[i] = fmt.Errorf("store/postgres: update run %s: events not written: %w", r.ID, store.ErrTakenOver)
			continue
		}
		rest, at = append(rest, r), append(at, i)
	}
	_, errs := s.WriteRuns(ctx, nil, rest)
	for k, i := range at {
		updateErrs[i] = errs[k]
	}
	return lost, updateErrs, nil
}

// writeEndsAll writes events and update in one batch, and reports whether it
// did: if not, nothing was written, and updateErrs is to be cleared. It returns an
// error only for events the store refuses before the batch is sent (checkEvents).
func (s *Store) writeEndsAll(ctx context.Context, replica string, events []store.Event, update []*store.Run, updateErrs []error) (bool, error) {
	const op = "write events and runs"
	if err := s.check(op); err != nil {
		return false, err
	}
	if err := checkEvents(op, events); err != nil {
		return false, err
	}
	p := makePages(sortEvents(events), ms(time.Now()))
	plan := s.planRuns(nil, update, nil, updateErrs)
	var b pgx.Batch
	b.Queue(s.q.lockRuns, s.lockClass, lockKeys(&p))
	b.Queue(s.cq.appendPagesAsOrFail, p.args(s.channel, nil, replica, true)...)
	plan.queue(s, &b)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, nil
	}
	defer conn.Release()
	br := conn.SendBatch(ctx, &b)
	_, err = br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	if err == nil {
		err = plan.read(br)
	}
	if err := errors.Join(err, br.Close()); err != nil {
		return false, nil
	}
	s.notifyCommitted(ctx, conn, append(eventsPayloads(p.ids, p.lasts), plan.ended()...)...)
	s.settle(ctx, plan)
	return true, nil
}
