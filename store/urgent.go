package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/run"
)

// EndWriter is a Fencer that stores runs' last events and their records (their
// ends, or checkpoints) in one call, so in one transaction (store/sqlite: one op of
// its writer): a Recorder writes the runs whose End or Checkpoint waits through it,
// so that a cancelled run's end costs one commit, not two one after the other.
type EndWriter interface {
	// WriteEnds stores events as AppendEventsAs does and, in the same transaction,
	// updates the records of recs as UpdateRun does each. The record of a run
	// whose events were found lost is not written (ErrTakenOver), nor one that
	// UpdateRun would refuse; the others are written all the same. An err fails
	// the whole call: nothing of it was written.
	WriteEnds(ctx context.Context, replica string, events []Event, recs []*Run) (lost []string, recErrs []error, err error)
}

// writeHot writes the urgent runs of a flush (their End or a Checkpoint waits)
// through ew: the events each emitted since the last write and, in the same call,
// the end of each run that ended or the checkpoint it asked for, due once those
// events are written. It answers them as appendEvents and writeDue would.
func (r *Recorder) writeHot(ctx context.Context, ew EndWriter, hot []*recording) {
	batch, evs, counts, arena := r.hotEvents(hot)
	ends, cks := r.table.dueAfter(hot, counts)
	if len(batch) == 0 && len(ends) == 0 && len(cks) == 0 {
		return
	}
	recs := make([]*Run, 0, len(ends)+len(cks))
	for _, rc := range ends {
		recs = append(recs, r.writer.endRecord(rc))
	}
	for _, ck := range cks {
		recs = append(recs, r.writer.checkpointRecord(ck))
	}
	start := time.Now()
	lost, recErrs, err := ew.WriteEnds(ctx, r.opts.Replica, batch, recs)
	r.writer.written(arena, len(batch), &r.writer.spare)
	if r.opts.OnWrite != nil && len(batch) > 0 {
		r.opts.OnWrite(time.Since(start), len(batch), err)
	}
	if err != nil {
		r.failHot(hot, counts, ends, cks, fmt.Errorf("store: save events and ends: %w", err))
		return
	}
	// The events first: a run's end or checkpoint is answered once they count.
	at := 0
	for i, rc := range hot {
		n := counts[i]
		at += n
		switch {
		case n == 0:
		case slices.Contains(lost, rc.x.ID):
			r.fail(rc, fmt.Errorf("store: save events of run %s: %w", rc.x.ID, ErrTakenOver))
		default:
			rc.stored(n, evs[at-1]) // its end, if any, is told once stored, below
		}
	}
	r.answerDue(ends, cks, recErrs)
}

// failHot takes note that a write of writeHot failed as a whole: the checkpoints it
// carried are put back, and each run it wrote for fails once (see fail): given
// up on, its End and checkpoints learn err; otherwise all is tried again.
func (r *Recorder) failHot(hot []*recording, counts []int, ends []*recording, cks []checkpoint, err error) {
	for _, ck := range cks {
		r.table.again(ck)
	}
	for i, rc := range hot {
		wrote := counts[i] > 0 || slices.Contains(ends, rc) ||
			slices.ContainsFunc(cks, func(ck checkpoint) bool { return ck.rc == rc })
		if wrote {
			r.fail(rc, err)
		}
	}
}

// hotEvents returns the events the runs of hot emitted since their last write, as
// the store takes them and as the runs emitted them, how many of each run, and the
// buffer of their JSON (see eventWriter.arena: writeHot hands it back).
func (r *Recorder) hotEvents(hot []*recording) (batch []Event, evs []*run.Event, counts []int, arena []byte) {
	counts = make([]int, len(hot))
	evs = unstored(hot, nil, counts)
	if len(evs) == 0 {
		return nil, nil, counts, nil
	}
	batch, arena = r.writer.encode(hot, evs, counts, make([]Event, 0, len(evs)), &r.writer.spare)
	return batch, evs, counts, arena
}

// answerDue answers the ends and checkpoints written with their events (see
// writeHot), whose outcomes are errs in that order, as writeDue does. A run given
// up on as its events were written (another replica took it over) was answered
// then, but for the checkpoint it carried.
func (r *Recorder) answerDue(ends []*recording, cks []checkpoint, errs []error) {
	for i, rc := range ends {
		switch {
		case rc.dead != nil:
		case errs[i] != nil:
			r.fail(rc, fmt.Errorf("store: save the end of run %s: %w", rc.x.ID, errs[i]))
		default:
			engine.LogOf(rc.x).Durable(rc.persisted) // its terminal event too
			r.table.finish(rc, nil)
		}
	}
	for i, ck := range cks {
		err := errs[len(ends)+i]
		if err != nil {
			err = fmt.Errorf("store: checkpoint run %s: %w", ck.rc.x.ID, err)
		}
		switch {
		case err == nil && ck.rc.dead == nil:
			r.leases.held(ck.rc, ck.rc.leased)
		case err == nil:
			err = ck.rc.dead
		case ck.rc.dead != nil, refused(err):
			// The run learns it from Checkpoint's error, and decides.
		default:
			r.table.again(ck)
			r.fail(ck.rc, err)
			continue
		}
		ck.tell(err)
	}
}
