package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/run"
)

// eventWriter is a Recorder's group commit: on each flush it writes the records of
// the runs that began, the new events of many runs in one call, and the ends and
// checkpoints due, all at once: in one call to a RunsWriter (SQLite), otherwise
// in concurrent calls, so that a store that groups concurrent writes commits them
// together. It returns what failed; after a flush whose writes failed it backs off
// before the next. The recorder's loop alone uses it, but for append, which the
// bulk's goroutine calls too (see bulkCall).
//
// The stores group writes too, and neither grouping makes the other redundant:
// this one puts the events of many runs, over a flush interval, in one call; the
// stores group the calls made at the same time (SQLite's writer: the calls that
// queue while it commits, in one transaction; PostgreSQL's endWriter: the ends in
// one notifying transaction). Measured with BenchmarkPersistedRuns (2
// cores), each run's events in a call of its own fell from ~650-1,070 to ~300
// runs/s on SQLite and from ~220-270 to ~35 on PostgreSQL; SQLite's writer with
// one op per transaction fell to ~280; PostgreSQL with one end per transaction to
// ~150.
type eventWriter struct {
	store   Store
	leases  *leaseKeeper                    // stamps the leases the records are written with
	onWrite func(time.Duration, int, error) // RecorderOptions.OnWrite

	backoff time.Duration // the wait before the retry
	retryAt time.Time     // no write before then; zero when the last flush succeeded

	// The writes of events, their buffers reused: bulk's for the bulk's calls
	// (one in flight at most), hot's for the urgent writes of a store that is no
	// EndWriter.
	bulk, hot eventBatch
	perEvent  int    // the mean size of the last write's events' JSON, by which the next arena is sized
	spare     []byte // the last urgent write's arena (see Recorder.writeHot and arena)
}

// EventsCopier is implemented by a Store whose AppendEvents, AppendEventsAs and
// WriteEnds (EndWriter) keep nothing of the events' Data once they returned: they
// store copies (store/sqlite does). A type that embeds such a store and keeps
// events must not promote the method. A Recorder then reuses the buffer of the events' JSON from
// one write to the next instead of allocating one each time.
type EventsCopier interface {
	// CopiesEvents does nothing: the method only says that the store copies.
	CopiesEvents()
}

// maxSpareArena bounds the arena kept for the next flush: a rare large one does not
// stay pinned.
const maxSpareArena = 4 << 20

// After a write failed, the recorder waits before it writes again: minBackoff,
// doubling up to maxBackoff, and never more than a tenth of the lease, so that once
// the store is back the runs' leases are renewed well before they lapse.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
)

// failure is a write for a run that failed.
type failure struct {
	rc  *recording
	err error
}

// wait returns how long to wait before the next flush: interval, or the backoff
// after a failed write.
func (w *eventWriter) wait(interval time.Duration) time.Duration {
	if w.retryAt.IsZero() {
		return interval
	}
	return time.Until(w.retryAt)
}

// backingOff reports whether a write failed and its backoff has not passed.
func (w *eventWriter) backingOff() bool { return time.Now().Before(w.retryAt) }

// schedule sets when the next write may be: at once after a flush whose writes all
// succeeded, after the backoff, doubled, after one whose writes failed. The backoff
// is never more than a tenth of the lease, so that once the store is back the runs'
// leases are renewed well before they lapse.
func (w *eventWriter) schedule(failing bool) {
	if !failing {
		w.backoff, w.retryAt = 0, time.Time{}
		return
	}
	limit := max(min(maxBackoff, w.leases.lease/10), time.Millisecond)
	w.backoff = min(max(2*w.backoff, minBackoff), limit)
	w.retryAt = time.Now().Add(w.backoff)
}

// create stores the records of the runs that began since the last flush, or whose
// record could not be written yet, at once, so that a store that groups concurrent
// writes commits them together: it creates them, or updates them for runs that
// continue a stored one.
func (w *eventWriter) create(ctx context.Context, live []*recording) []failure {
	var todo []*recording
	for _, rc := range live {
		if !rc.created && rc.dead == nil {
			todo = append(todo, rc)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	errs := make([]error, len(todo))
	if rw, ok := w.store.(RunsWriter); ok {
		w.records(ctx, rw, todo, errs)
	} else {
		var wg sync.WaitGroup
		for i, rc := range todo {
			wg.Go(func() { errs[i] = w.record(ctx, rc) })
		}
		wg.Wait()
	}
	var fs []failure
	for i, rc := range todo {
		if errs[i] != nil {
			fs = append(fs, failure{rc, errs[i]})
			continue
		}
		rc.created = true
		w.leases.held(rc, rc.leased)
	}
	return fs
}

// record writes rc's record, with a fresh lease.
func (w *eventWriter) record(ctx context.Context, rc *recording) error {
	rec := w.leased(rc)
	if rc.resume {
		return w.recorded(ctx, rc, w.store.UpdateRun(ctx, rec))
	}
	return w.recorded(ctx, rc, w.store.CreateRun(ctx, rec))
}

// leased returns the record Begin asked to write for rc, with a fresh lease (and
// for a resumed run, the time it is updated).
func (w *eventWriter) leased(rc *recording) *Run {
	rec := rc.begin.rec
	rec.LeaseUntil = w.leases.until()
	rc.leased = rec.LeaseUntil
	if rc.resume {
		rec.UpdatedAt = time.Now()
	}
	return rec
}

// records writes the records of todo in one call of rw, as record does each, and
// leaves the outcome of each in errs.
func (w *eventWriter) records(ctx context.Context, rw RunsWriter, todo []*recording, errs []error) {
	var create, update []*Run
	var created, updated []int // the index in todo of each
	for i, rc := range todo {
		rec := w.leased(rc)
		if rc.resume {
			update, updated = append(update, rec), append(updated, i)
			continue
		}
		create, created = append(create, rec), append(created, i)
	}
	cerrs, uerrs := rw.WriteRuns(ctx, create, update)
	for k, i := range created {
		errs[i] = w.recorded(ctx, todo[i], cerrs[k])
	}
	for k, i := range updated {
		errs[i] = w.recorded(ctx, todo[i], uerrs[k])
	}
}

// recorded returns the outcome of the write of rc's record, whose store error was
// err.
func (w *eventWriter) recorded(ctx context.Context, rc *recording, err error) error {
	if rc.resume {
		if err != nil {
			return fmt.Errorf("store: resume the record of run %s: %w", rc.x.ID, err)
		}
		return nil
	}
	if err != nil && rc.tried && errors.Is(err, ErrExists) && w.storedBefore(ctx, rc) {
		return nil
	}
	if err != nil {
		rc.tried = true
		return fmt.Errorf("store: record run %s: %w", rc.x.ID, err)
	}
	return nil
}

// storedBefore reports whether the run's stored record is rc's own, written by a
// CreateRun that failed only as far as the recorder could tell (the connection
// broke before its answer); it then takes the stored record's lease.
func (w *eventWriter) storedBefore(ctx context.Context, rc *recording) bool {
	got, err := w.store.GetRun(ctx, rc.x.ID)
	rec := rc.begin.rec
	if err != nil || got.Replica != rec.Replica || got.CreatedAt.UnixMilli() != rec.CreatedAt.UnixMilli() {
		return false
	}
	rec.LeaseUntil, rc.leased = got.LeaseUntil, got.LeaseUntil
	return true
}

// eventBatch is a write of the new events of some runs: the runs, how many events
// of each it carries (counts[i] of runs[i]), those events as the runs emitted them
// and as the store takes them, and the buffer of their JSON (see arena). Whoever
// makes the write's call owns it until the call returns (the bulk's goroutine, see
// Recorder.bulkWrites); the recorder's loop fills it, and takes in its outcome.
type eventBatch struct {
	runs   []*recording
	counts []int
	evs    []*run.Event
	batch  []Event
	arena  []byte
	spare  []byte // the last write's arena (see eventWriter.arena)
}

// appendEvents writes the new events of the live runs in one call, and reports
// whether there were any to write. A run that the store found claimed by another
// replica fails with ErrTakenOver, none of its events written.
func (w *eventWriter) appendEvents(ctx context.Context, live []*recording) (fs []failure, wrote bool) {
	b := &w.hot
	if !w.prepare(b, live) {
		return nil, false
	}
	lost, err := w.append(ctx, b.batch)
	return w.appended(b, lost, err), true
}

// prepare fills b with the new events of the live runs, and reports whether there
// are any. b's buffers are reused from its last write.
func (w *eventWriter) prepare(b *eventBatch, live []*recording) bool {
	lastBatch, lastEvs := len(b.batch), len(b.evs)
	batch, evs := b.batch[:0], b.evs[:0]
	counts := slices.Grow(b.counts[:0], len(live))[:len(live)]
	evs = unstored(live, evs, counts)
	batch, arena := w.encode(live, evs, counts, batch, &b.spare)
	// Entries of the last write beyond this one's would keep the events a run's
	// log has dropped, and their JSON, alive.
	if len(batch) < lastBatch {
		clear(batch[len(batch):lastBatch])
	}
	if len(evs) < lastEvs {
		clear(evs[len(evs):lastEvs])
	}
	b.runs, b.batch, b.evs, b.counts, b.arena = live, batch, evs, counts, arena
	if len(batch) == 0 {
		w.written(arena, 0, &b.spare)
		b.runs, b.arena = nil, nil
		return false
	}
	return true
}

// appended takes in the outcome of the write of b (the runs the store found lost,
// or the call's error), and returns the runs whose events were not written. A run
// given up on while the write was in flight is not told its events are stored.
func (w *eventWriter) appended(b *eventBatch, lost []string, err error) (fs []failure) {
	w.written(b.arena, len(b.batch), &b.spare)
	live, counts := b.runs, b.counts
	b.runs, b.arena = nil, nil
	if err != nil {
		err = fmt.Errorf("store: save events: %w", err)
		for i, rc := range live {
			if counts[i] > 0 {
				fs = append(fs, failure{rc, err})
			}
		}
		return fs
	}
	at := 0
	for i, rc := range live {
		n := counts[i]
		at += n
		switch {
		case n == 0:
		case slices.Contains(lost, rc.x.ID):
			// Another replica claimed the run: its events were not written.
			fs = append(fs, failure{rc, fmt.Errorf("store: save events of run %s: %w", rc.x.ID, ErrTakenOver)})
		case rc.dead != nil:
		default:
			rc.stored(n, b.evs[at-1])
		}
	}
	return fs
}

// unstored appends to evs the events each run of rcs emitted since its last write,
// and sets counts[i] to how many rcs[i] has.
func unstored(rcs []*recording, evs []*run.Event, counts []int) []*run.Event {
	for i, rc := range rcs {
		before := len(evs)
		// Armed before the read: an event emitted after it wakes the recorder.
		engine.LogOf(rc.x).Arm()
		evs = rc.x.Log.From(rc.persisted, evs)
		counts[i] = len(evs) - before
	}
	return evs
}

// encode appends to batch the events evs of rcs (counts[i] of rcs[i], in order) as
// the store takes them, every event's JSON one after the other in one buffer (see
// arena, and spare there), which it returns: hand it back to written, with spare,
// once the store returned.
func (w *eventWriter) encode(rcs []*recording, evs []*run.Event, counts []int, batch []Event, spare *[]byte) ([]Event, []byte) {
	arena := w.arena(len(evs), spare)
	first, at := len(batch), 0
	for i, rc := range rcs {
		for _, ev := range evs[at : at+counts[i]] {
			mark := len(arena)
			var err error
			if arena, err = ev.AppendJSON(arena); err != nil {
				// Unreachable for events kern emits; keep the event's identity anyway.
				b, _ := json.Marshal(map[string]any{"event": ev.Event, "run_id": ev.RunID, "error": err.Error()})
				arena = append(arena[:mark], b...)
			}
			// Data is pointed into the arena's final copy below; until then it
			// holds only the event's length.
			batch = append(batch, Event{RunID: rc.x.ID, Index: ev.EventIndex, Type: ev.Event, CreatedAt: time.Unix(ev.CreatedAt, 0),
				Data: arena[mark:len(arena):len(arena)]})
		}
		at += counts[i]
	}
	// The arena may have moved as it grew: point the events at its final copy.
	start := 0
	for i := first; i < len(batch); i++ {
		end := start + len(batch[i].Data)
		batch[i].Data = arena[start:end:end]
		start = end
	}
	return batch, arena
}

// arena returns the buffer for the JSON of a write of n events, sized from the last
// write's events so that it seldom grows (each growth copies all of it): if the
// store copies what it stores (see EventsCopier), *spare, the last buffer of the
// writes of its kind (the bulk's, the urgent ones), which are one at a time; a new
// one otherwise, since the store may keep it (the events' Data point into it). The
// recorder's loop alone calls it, and written once the store returned.
func (w *eventWriter) arena(n int, spare *[]byte) []byte {
	per := w.perEvent
	if per == 0 {
		per = 512
	}
	size := n * (per + per/8) // an eighth more than the last write's events took on average
	if _, copies := w.store.(EventsCopier); copies {
		a := slices.Grow((*spare)[:0], size)
		*spare = nil // until written gives it back
		return a
	}
	return make([]byte, 0, size)
}

// written takes note that the store returned from the write of the JSON of n events
// in arena: the next write's arena is sized from it, and is arena itself if the
// store copies what it stores (kept in *spare).
func (w *eventWriter) written(arena []byte, n int, spare *[]byte) {
	if n > 0 {
		w.perEvent = len(arena) / n
	}
	if _, copies := w.store.(EventsCopier); copies && cap(arena) > 0 && cap(arena) <= maxSpareArena {
		*spare = arena[:0]
	}
}

// append writes a batch of events, fenced by this replica's ownership of their
// runs on a store that can (see Fencer), and returns the runs found lost. It uses
// only what does not change once the recorder runs (the store, the replica,
// onWrite): the bulk's goroutine calls it.
func (w *eventWriter) append(ctx context.Context, batch []Event) (lost []string, err error) {
	if w.onWrite != nil {
		start := time.Now()
		defer func() { w.onWrite(time.Since(start), len(batch), err) }()
	}
	if f, ok := w.store.(Fencer); ok {
		return f.AppendEventsAs(ctx, w.leases.replica, batch)
	}
	return nil, w.store.AppendEvents(ctx, batch)
}

// writeDue writes the ends and the checkpoints due at once, so that a store that
// groups concurrent writes into one transaction (SQLite's writer does) commits them
// together, and returns the outcome of each.
func (w *eventWriter) writeDue(ctx context.Context, ends []*recording, cks []checkpoint) (endErrs, ckErrs []error) {
	errs := make([]error, len(ends)+len(cks))
	recs := make([]*Run, 0, len(errs))
	for _, rc := range ends {
		recs = append(recs, w.endRecord(rc))
	}
	for _, ck := range cks {
		recs = append(recs, w.checkpointRecord(ck))
	}
	if rw, ok := w.store.(RunsWriter); ok {
		_, errs = rw.WriteRuns(ctx, nil, recs)
	} else {
		var wg sync.WaitGroup
		for i, rec := range recs {
			wg.Go(func() { errs[i] = w.store.UpdateRun(ctx, rec) })
		}
		wg.Wait()
	}
	for i, rc := range ends {
		if errs[i] != nil {
			errs[i] = fmt.Errorf("store: save the end of run %s: %w", rc.x.ID, errs[i])
		}
	}
	for i, ck := range cks {
		if err := errs[len(ends)+i]; err != nil {
			errs[len(ends)+i] = fmt.Errorf("store: checkpoint run %s: %w", ck.rc.x.ID, err)
		}
	}
	return errs[:len(ends)], errs[len(ends):]
}

// endRecord returns the record of rc's end: the run's output as it ended.
func (w *eventWriter) endRecord(rc *recording) *Run {
	out := rc.x.Output()
	if out.Status == run.StatusPaused {
		// A paused run is a row: no process holds it, no lease runs out on it.
		rc.leased = time.Time{}
	}
	rec := newRun(rc.x, out, out.Status, w.leases.replica, rc.leased, time.Unix(0, rc.createdAt))
	rec.Output, rec.UpdatedAt = *out, time.Now()
	return rec
}

// checkpointRecord returns the run's record with a checkpoint's steps and a fresh
// lease, which Recorder.writeDue takes once written: the record as Begin wrote it,
// RUNNING, with steps as its step results. Its output is the run's in the fields
// that do not change as the run goes (see stableOutput), Begin's in the others.
func (w *eventWriter) checkpointRecord(ck checkpoint) *Run {
	rc := ck.rc
	rc.leased = w.leases.until()
	out := rc.x.Output()
	rec := newRun(rc.x, out, run.StatusRunning, w.leases.replica, rc.leased, time.Unix(0, rc.createdAt))
	if rc.base != nil {
		rec.Output = *rc.base
	}
	stableOutput(&rec.Output, out)
	rec.Output.Status, rec.Output.StepResults = run.StatusRunning, ck.steps
	rec.UpdatedAt = time.Now()
	return rec
}

// newRun returns a record of x's run, without its output: its identity (out's),
// the status st, the replica executing it and its lease, and when it was created.
// It reads only the fields of out that do not change as the run goes (see
// stableOutput), so that the recorder's loop may call it while the run executes.
func newRun(x *run.Exec, out *run.Output, st run.Status, replica string, lease, created time.Time) *Run {
	rec := &Run{
		ID: x.ID, SessionID: out.SessionID, UserID: out.UserID, ParentRunID: out.ParentRunID,
		Kind: x.Kind, ComponentID: out.AgentID, Status: st, Input: out.Input,
		Replica: replica, LeaseUntil: lease, CreatedAt: created,
	}
	if x.Kind == run.KindWorkflow {
		rec.ComponentID = out.WorkflowID
	}
	if x.Kind == run.KindTeam {
		rec.ComponentID = out.TeamID
	}
	return rec
}

// stableOutput sets on dst the fields of a run's output that are set before it
// begins and do not change as it goes (its identity, model, input, creation and
// metadata), as src has them. A checkpoint's record takes them from the run when
// written; the recorder keeps the others as Begin had them (see baseOutput), when
// not all zero. Only the run's goroutine writes the others, as it goes: these are
// read from the recorder's loop while it does.
func stableOutput(dst, src *run.Output) {
	dst.RunID, dst.SessionID, dst.UserID, dst.ParentRunID = src.RunID, src.SessionID, src.UserID, src.ParentRunID
	dst.AgentID, dst.AgentName = src.AgentID, src.AgentName
	dst.WorkflowID, dst.WorkflowName = src.WorkflowID, src.WorkflowName
	dst.TeamID, dst.TeamName = src.TeamID, src.TeamName
	dst.Model, dst.ModelProvider = src.Model, src.ModelProvider
	dst.Input, dst.CreatedAt, dst.Metadata = src.Input, src.CreatedAt, src.Metadata
}

// baseOutput returns what a checkpoint's record keeps of out, the run's output
// at Begin: its fields that the run changes as it goes, but for its status and
// step results (a checkpoint's own), or nil if all are zero, as a new run's are.
func baseOutput(out *run.Output) *run.Output {
	v := reflect.ValueOf(out).Elem()
	if !slices.ContainsFunc(changing, func(i int) bool { return !v.Field(i).IsZero() }) {
		return nil
	}
	base := *out
	stableOutput(&base, &run.Output{})
	base.Status, base.StepResults = "", nil
	return &base
}

// changing is the index in run.Output of each field that baseOutput keeps: not
// one that stableOutput sets, nor Status or StepResults.
var changing = func() []int {
	var probe run.Output
	stableOutput(&probe, &run.Output{RunID: "x", SessionID: "x", UserID: "x", ParentRunID: "x",
		AgentID: "x", AgentName: "x", WorkflowID: "x", WorkflowName: "x", TeamID: "x", TeamName: "x",
		Model: "x", ModelProvider: "x", Input: "x", CreatedAt: 1, Metadata: map[string]string{}})
	probe.Status, probe.StepResults = "x", []run.StepResult{}
	v := reflect.ValueOf(&probe).Elem()
	var idx []int
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			idx = append(idx, i)
		}
	}
	return idx
}()
