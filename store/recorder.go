package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/run"
)

// Recorder defaults.
const (
	DefaultFlushInterval = 10 * time.Millisecond
	DefaultLease         = 30 * time.Second
)

// writeTimeout bounds the writes of one flush, so that a store that stops answering
// cannot stall the recorder: what was not written is tried again on the next flushes.
const writeTimeout = 10 * time.Second

// After a write failed, the recorder waits before it writes again: minBackoff,
// doubling up to maxBackoff, and never more than a tenth of the lease, so that once
// the store is back the runs' leases are renewed well before they lapse.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
)

// eventPage is how many stored events recovery reads at a time, looking for the
// last one of a run left behind.
const eventPage = 1000

// RecorderOptions configure a Recorder; the zero value gives the defaults.
type RecorderOptions struct {
	// Replica names this process in the records of the runs it executes.
	Replica string
	// FlushInterval is how long a streamed event may wait before it is written
	// (DefaultFlushInterval if zero). A run's end is written at once.
	FlushInterval time.Duration
	// Lease is how long a run's claim lasts unless renewed (DefaultLease if zero); the
	// recorder renews the leases of its live runs three times per Lease. It is also
	// how long a run outlives a store that fails: see Recorder.
	Lease time.Duration
	// OnRecover, if set, is called with the runs the recorder found left behind by a
	// process that died and ended ERROR "interrupted", or with why it could not look
	// for them.
	OnRecover func(runs []*Run, err error)
	// RecoverInterval is how often the recorder looks for runs left behind
	// (Lease/3 if zero).
	RecoverInterval time.Duration
	// NoRecovery leaves the runs left behind to other processes, or to a Recovery
	// the program runs itself (kern's host does, to resume them): a short-lived
	// `kern run` beside servers that take them over must not end them ERROR first.
	NoRecovery bool
}

// Recorder persists the runs of agents and workflows as they execute (it implements
// run.Recorder): the run's record when it starts, its events as they stream, and its
// final state when it ends. One goroutine writes for all runs, so the events of many
// runs share a transaction, and a run's stream never waits for the database.
//
// When it starts, and then every RecoverInterval (three times per Lease by default),
// it also claims the runs that a process which died left RUNNING (see Store.Claim)
// and ends them ERROR "interrupted" (see Recovery; NoRecovery leaves them to a
// Recovery that may resume them):
// their stored stream gets the terminal event it lacks (WorkflowError or RunError),
// then their record its terminal status, so that no run stays RUNNING forever and a
// reader of its events sees it end.
//
// A run that continues a stored one (run.Exec.Resume is set) has its stored record
// updated instead of created, and its events stored from Resume.NextEvent on. The
// Recorder is a run.Checkpointer: a workflow keeps its finished steps in the run's
// record as it goes.
//
// A write that fails is tried again on the next flushes, with a backoff, while the
// run's events wait in its log: the run goes on through a short outage of the store,
// its End and its checkpoints waiting for their writes. The recorder gives up on a
// run only once its lease, as this recorder last wrote or renewed it, has lapsed
// without a write that succeeded (another process may have taken the run over), or
// at once when the store refuses a write for good (ErrNotFound, ErrExists,
// ErrTooLarge): the run then ends ERROR with the store's error, and nothing more of
// it is written. No run hangs on a store that went away.
//
// A run that another replica claimed (its lease lapsed while this process stalled)
// is this recorder's no more: once a renewal of its lease finds it lost, or the
// store refuses its end (ErrTakenOver), nothing more of it is written, and the run,
// which goes on elsewhere, is cancelled here (ReasonTakenOver); its End returns
// ErrTakenOver.
type Recorder struct {
	store Store
	opts  RecorderOptions

	mu     sync.Mutex // guards runs and closed
	runs   map[string]*recording
	closed bool

	kick chan struct{}
	stop chan struct{}
	done chan struct{}

	// ctx bounds recovery: it ends when the recorder closes.
	ctx    context.Context
	cancel context.CancelFunc

	// The loop's goroutine alone uses these: the backoff after failed writes, and
	// the buffers of a flush, reused.
	failing  bool          // a write of this flush failed and is to be retried
	backoff  time.Duration // the wait before the retry
	retryAt  time.Time     // no write before then; zero when the last flush succeeded
	batch    []Event
	evs      []*run.Event
	counts   []int
	arena    int // the size of the last flush's events, which the next one's likely matches
	renewing []*recording
}

// recording is a run being recorded. The loop's goroutine alone reads and writes
// rec, resume, created, tried, persisted, lease, renew, err and dead; the
// Recorder's mu guards the rest.
type recording struct {
	x         *run.Exec
	rec       *Run
	resume    bool      // rec is stored already: update it instead of creating it
	created   bool      // rec is stored
	tried     bool      // a CreateRun of rec failed: it may have been stored all the same
	persisted int       // index of the next event to write
	lease     time.Time // when the run's lease lapses, as last written or renewed
	renew     bool      // the lease is due to be renewed
	err       error     // why the last write for the run failed; nil once one succeeded
	dead      error     // why the recorder gave up on the run: nothing more is written

	ending bool       // End was called: write the final state once the events are out
	ended  chan error // receives the outcome of the final write

	// A checkpoint asked for: the steps to keep once the events before index
	// ckAfter are written, and who waits for the outcome.
	ckSteps []run.StepResult
	ckAfter int
	ckWait  []chan error
}

// NewRecorder returns a Recorder writing to s. Close it, after the runs it records have
// ended and before s is closed.
func NewRecorder(s Store, opts RecorderOptions) *Recorder {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.Replica == "" {
		opts.Replica = DefaultReplica()
	}
	if opts.RecoverInterval <= 0 {
		opts.RecoverInterval = opts.Lease / 3
	}
	r := &Recorder{
		store: s, opts: opts, runs: make(map[string]*recording),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	go r.loop()
	return r
}

// Begin records a run that is about to start. The record is written with the run's
// first events, not before them, so that persistence adds nothing to the time to the
// run's first event; a run whose record cannot be written within its lease ends
// ERROR. An input larger than MaxValueSize is refused at once.
//
// A run that continues a stored one (x.Resume set) updates the stored record instead:
// RUNNING, executed by this replica, with a fresh lease and the steps it resumes
// after; a run whose record is not stored ends ERROR.
func (r *Recorder) Begin(ctx context.Context, x *run.Exec) error {
	out := x.Output()
	if len(out.Input) > MaxValueSize {
		return fmt.Errorf("store: record run: input of %d bytes: %w", len(out.Input), ErrTooLarge)
	}
	now := time.Now()
	rec := &Run{
		ID: x.ID, SessionID: out.SessionID, UserID: out.UserID, ParentRunID: out.ParentRunID,
		Kind: x.Kind, ComponentID: out.AgentID,
		Status: run.StatusRunning, Input: out.Input, Output: *out,
		Replica: r.opts.Replica, LeaseUntil: now.Add(r.opts.Lease), CreatedAt: now, UpdatedAt: now,
	}
	if x.Kind == run.KindWorkflow {
		rec.ComponentID = out.WorkflowID
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	// Until its record is written, the run has the lease it would have had.
	rc := &recording{x: x, rec: rec, lease: rec.LeaseUntil, ended: make(chan error, 1)}
	if x.Resume != nil {
		rc.resume, rc.persisted = true, x.Resume.NextEvent
		if len(rec.Output.StepResults) == 0 {
			// Until the run checkpoints or ends, its record keeps the steps it
			// resumes after.
			rec.Output.StepResults = x.Resume.Steps
		}
	}
	r.runs[x.ID] = rc
	r.wake()
	return nil
}

// Checkpoint stores the run's record, RUNNING with steps as its step results, with
// the events the run emitted before it, and returns once they are durable or could
// not be written (the store failed for longer than the run's lease, or refused
// them). The record is created first if it is not stored yet. It goes through the
// recorder's writes, so that checkpoints of many runs share them.
func (r *Recorder) Checkpoint(ctx context.Context, x *run.Exec, steps []run.StepResult) error {
	done := make(chan error, 1)
	r.mu.Lock()
	rc := r.runs[x.ID]
	if rc == nil || rc.x != x || rc.ending {
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return ErrClosed
		}
		return fmt.Errorf("store: checkpoint run %s: not being recorded", x.ID)
	}
	rc.ckSteps, rc.ckAfter = steps, x.Log.Len()
	rc.ckWait = append(rc.ckWait, done)
	r.wake()
	r.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// End writes what remains of the run's events and its final state, and returns once
// they are durable or could not be written (the store failed for longer than the
// run's lease, or refused them).
func (r *Recorder) End(ctx context.Context, x *run.Exec) error {
	r.mu.Lock()
	rc := r.runs[x.ID]
	if rc != nil {
		rc.ending = true
		r.wake()
	}
	r.mu.Unlock()
	if rc == nil {
		return ErrClosed
	}
	select {
	case err := <-rc.ended:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes what the recorded runs have left to write, trying once, and stops the
// recorder. Runs that have not ended by then are left RUNNING in the store; their
// lease lapses and recovery ends them.
func (r *Recorder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	close(r.stop)
	<-r.done
	return nil
}

func (r *Recorder) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *Recorder) loop() {
	defer close(r.done)
	flush := time.NewTimer(r.opts.FlushInterval)
	defer flush.Stop()
	renew := time.NewTicker(r.opts.Lease / 3)
	defer renew.Stop()
	recovery := time.NewTicker(r.opts.RecoverInterval)
	defer recovery.Stop()
	r.recover()
	for {
		select {
		case <-r.kick:
		case <-flush.C:
		case <-renew.C:
			r.renewAll()
		case <-recovery.C:
			r.recover()
			continue
		case <-r.stop:
			r.flush(true)
			r.abandon()
			return
		}
		r.flush(false)
		flush.Reset(r.next())
	}
}

// next returns how long to wait before the next flush: the flush interval, or the
// backoff after a failed write.
func (r *Recorder) next() time.Duration {
	if r.retryAt.IsZero() {
		return r.opts.FlushInterval
	}
	return time.Until(r.retryAt)
}

// flush writes the records of the runs that began, the new events of every recorded
// run in one call, the leases due to be renewed, then the final state of the runs
// that ended and the checkpoints asked for. A write that failed is tried again on a
// later flush, once the backoff has passed (at once if final: Close tries once more).
func (r *Recorder) flush(final bool) {
	live := r.recordings()
	if len(live) == 0 {
		r.backoff, r.retryAt = 0, time.Time{}
		return
	}
	live = r.settle(live)
	if len(live) == 0 || !final && time.Now().Before(r.retryAt) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	r.failing = false
	r.create(ctx, live)
	live = slices.DeleteFunc(live, func(rc *recording) bool { return !rc.created || rc.dead != nil })
	r.appendEvents(ctx, live)
	r.renewLeases(ctx, live)
	r.writeDue(ctx, live)
	r.schedule()
}

// schedule sets when the next write may be: at once after a flush whose writes all
// succeeded, after the backoff, doubled, after one whose writes failed.
func (r *Recorder) schedule() {
	if !r.failing {
		r.backoff, r.retryAt = 0, time.Time{}
		return
	}
	limit := max(min(maxBackoff, r.opts.Lease/10), time.Millisecond)
	r.backoff = min(max(2*r.backoff, minBackoff), limit)
	r.retryAt = time.Now().Add(r.backoff)
}

// settle gives up on the runs whose lease lapsed while their writes failed, answers
// the runs given up on that ended or checkpoint, and returns the others.
func (r *Recorder) settle(live []*recording) []*recording {
	now := time.Now()
	return slices.DeleteFunc(live, func(rc *recording) bool {
		switch {
		case rc.dead != nil:
			r.answer(rc, rc.dead)
			if r.isEnding(rc) {
				r.finish(rc, rc.dead)
			}
		case rc.err != nil && now.After(rc.lease):
			r.giveUp(rc, rc.err)
		default:
			return false
		}
		return true
	})
}

// failed takes note that a write for rc failed with err: the recorder gives up on the
// run at once if the store refused the write for good, and otherwise tries it again
// on a later flush.
func (r *Recorder) failed(rc *recording, err error) {
	if refused(err) {
		r.giveUp(rc, err)
		return
	}
	rc.err = err
	r.failing = true
}

// refused reports whether err is the store's answer to a write, which writing again
// cannot change.
func refused(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrExists) || errors.Is(err, ErrTooLarge) ||
		errors.Is(err, ErrTakenOver)
}

// ReasonTakenOver is the cancel reason of a run that its recorder lost to another
// replica (see ErrTakenOver).
const ReasonTakenOver = "taken over by another replica"

// giveUp stops recording rc: a run still running ends ERROR with err, or CANCELLED
// if another replica took it over (err is ErrTakenOver), since it goes on there; a
// run ending, and its checkpoints, learn that they were not saved; nothing more of
// it is written.
func (r *Recorder) giveUp(rc *recording, err error) {
	rc.dead = err
	r.answer(rc, err)
	if r.isEnding(rc) {
		r.finish(rc, err)
		return
	}
	// Its End, later, learns err at once: see settle.
	if errors.Is(err, ErrTakenOver) {
		engine.EntryOf(rc.x).CancelCause(ReasonTakenOver, err)
		return
	}
	engine.EntryOf(rc.x).Fail(err)
}

// create stores the records of the runs that began since the last flush, or whose
// record could not be written yet, at once, so that a store that groups concurrent
// writes commits them together: it creates them, or updates them for runs that
// continue a stored one.
func (r *Recorder) create(ctx context.Context, live []*recording) {
	n := 0
	for _, rc := range live {
		if !rc.created {
			n++
		}
	}
	if n == 0 {
		return
	}
	todo, errs := make([]*recording, 0, n), make([]error, n)
	for _, rc := range live {
		if !rc.created {
			todo = append(todo, rc)
		}
	}
	var wg sync.WaitGroup
	for i, rc := range todo {
		wg.Go(func() { errs[i] = r.record(ctx, rc) })
	}
	wg.Wait()
	for i, rc := range todo {
		if errs[i] != nil {
			r.failed(rc, errs[i])
			continue
		}
		rc.created, rc.lease, rc.err = true, rc.rec.LeaseUntil, nil
	}
}

// record writes rc's record, with a fresh lease.
func (r *Recorder) record(ctx context.Context, rc *recording) error {
	now := time.Now()
	rc.rec.LeaseUntil = now.Add(r.opts.Lease)
	if rc.resume {
		rc.rec.UpdatedAt = now
		if err := r.store.UpdateRun(ctx, rc.rec); err != nil {
			return fmt.Errorf("store: resume the record of run %s: %w", rc.x.ID, err)
		}
		return nil
	}
	err := r.store.CreateRun(ctx, rc.rec)
	if err != nil && rc.tried && errors.Is(err, ErrExists) && r.storedBefore(ctx, rc) {
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
func (r *Recorder) storedBefore(ctx context.Context, rc *recording) bool {
	got, err := r.store.GetRun(ctx, rc.x.ID)
	if err != nil || got.Replica != rc.rec.Replica || got.CreatedAt.UnixMilli() != rc.rec.CreatedAt.UnixMilli() {
		return false
	}
	rc.rec.LeaseUntil = got.LeaseUntil
	return true
}

// appendEvents writes the new events of the live runs in one call.
func (r *Recorder) appendEvents(ctx context.Context, live []*recording) {
	batch, evs := r.batch[:0], r.evs[:0]
	counts := slices.Grow(r.counts[:0], len(live))[:len(live)]
	// Every event's JSON, one after the other; a store may keep it (the events'
	// Data point into it), so each flush has its own.
	arena := make([]byte, 0, r.arena)
	for i, rc := range live {
		before := len(evs)
		evs = rc.x.Log.From(rc.persisted, evs)
		counts[i] = len(evs) - before
		for _, ev := range evs[before:] {
			mark := len(arena)
			var err error
			if arena, err = ev.AppendJSON(arena); err != nil {
				// Unreachable for events kern emits; keep the event's identity anyway.
				b, _ := json.Marshal(map[string]any{"event": ev.Event, "run_id": ev.RunID, "error": err.Error()})
				arena = append(arena[:mark], b...)
			}
			batch = append(batch, Event{RunID: rc.x.ID, Index: ev.EventIndex, Type: ev.Event, CreatedAt: time.Unix(ev.CreatedAt, 0)})
			batch[len(batch)-1].Data = arena[mark:len(arena):len(arena)]
		}
	}
	r.batch, r.evs, r.counts, r.arena = batch, evs, counts, len(arena)
	if len(batch) == 0 {
		return
	}
	// The arena may have moved as it grew: point the events at its final copy.
	start := 0
	for i := range batch {
		end := start + len(batch[i].Data)
		batch[i].Data = arena[start:end:end]
		start = end
	}
	if err := r.store.AppendEvents(ctx, batch); err != nil {
		err = fmt.Errorf("store: save events: %w", err)
		for i, rc := range live {
			if counts[i] > 0 {
				r.failed(rc, err)
			}
		}
		return
	}
	for i, rc := range live {
		if counts[i] > 0 {
			rc.persisted += counts[i]
			rc.err = nil
		}
	}
}

// renewAll marks the leases of the runs being recorded as due to be renewed.
func (r *Recorder) renewAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rc := range r.runs {
		rc.renew = true
	}
}

// renewLeases renews the leases due to be renewed of the live runs that have not
// ended: an ending run's lease bounds how long its end is tried.
func (r *Recorder) renewLeases(ctx context.Context, live []*recording) {
	due := r.renewing[:0]
	for _, rc := range live {
		if rc.renew && rc.dead == nil {
			due = append(due, rc)
		}
	}
	if len(due) == 0 {
		return
	}
	r.mu.Lock()
	due = slices.DeleteFunc(due, func(rc *recording) bool { return rc.ending })
	r.mu.Unlock()
	defer func() { clear(due); r.renewing = due[:0] }()
	if len(due) == 0 {
		return
	}
	ids := make([]string, len(due))
	for i, rc := range due {
		ids[i] = rc.x.ID
	}
	until := time.Now().Add(r.opts.Lease)
	lost, err := r.store.RenewLeases(ctx, r.opts.Replica, ids, until)
	if err != nil {
		err = fmt.Errorf("store: renew leases: %w", err)
		for _, rc := range due {
			r.failed(rc, err)
		}
		return
	}
	for _, rc := range due {
		if slices.Contains(lost, rc.x.ID) {
			r.giveUp(rc, fmt.Errorf("store: run %s: %w", rc.x.ID, ErrTakenOver))
			continue
		}
		rc.renew, rc.lease, rc.err = false, until, nil
	}
}

// writeDue writes the ends and the checkpoints due at once, so that a store that
// groups concurrent writes into one transaction (SQLite's writer does) commits them
// together.
func (r *Recorder) writeDue(ctx context.Context, live []*recording) {
	ends, cks := r.due(live)
	if len(ends) == 0 && len(cks) == 0 {
		return
	}
	errs := make([]error, len(ends)+len(cks))
	var wg sync.WaitGroup
	for i, rc := range ends {
		wg.Go(func() { errs[i] = r.writeEnd(ctx, rc) })
	}
	for i, ck := range cks {
		wg.Go(func() { errs[len(ends)+i] = r.writeCheckpoint(ctx, ck) })
	}
	wg.Wait()
	for i, rc := range ends {
		if errs[i] != nil {
			r.failed(rc, errs[i]) // gives up on a refused end, finishing the run
			continue
		}
		r.finish(rc, nil)
	}
	for i, ck := range cks {
		err := errs[len(ends)+i]
		switch {
		case err == nil:
			ck.rc.lease, ck.rc.err = ck.rc.rec.LeaseUntil, nil
		case refused(err):
			// The run learns it from Checkpoint's error, and decides.
		default:
			r.again(ck)
			r.failed(ck.rc, err)
			continue
		}
		for _, w := range ck.wait {
			w <- err
		}
	}
}

func (r *Recorder) writeEnd(ctx context.Context, rc *recording) error {
	out := rc.x.Output()
	rc.rec.Status, rc.rec.Output, rc.rec.UpdatedAt = out.Status, *out, time.Now()
	if err := r.store.UpdateRun(ctx, rc.rec); err != nil {
		return fmt.Errorf("store: save the end of run %s: %w", rc.x.ID, err)
	}
	return nil
}

func (r *Recorder) writeCheckpoint(ctx context.Context, ck checkpoint) error {
	rec := ck.rc.rec
	rec.Status, rec.Output.Status, rec.Output.StepResults = run.StatusRunning, run.StatusRunning, ck.steps
	rec.LeaseUntil = time.Now().Add(r.opts.Lease)
	rec.UpdatedAt = time.Now()
	if err := r.store.UpdateRun(ctx, rec); err != nil {
		return fmt.Errorf("store: checkpoint run %s: %w", ck.rc.x.ID, err)
	}
	return nil
}

// again puts back a checkpoint whose write failed, to be written on a later flush,
// unless the run asked for a newer one since, which its waiters then wait for.
func (r *Recorder) again(ck checkpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rc := ck.rc
	if rc.ckWait == nil {
		rc.ckSteps = ck.steps
	}
	rc.ckWait = append(ck.wait, rc.ckWait...)
}

// checkpoint is a checkpoint due to be written.
type checkpoint struct {
	rc    *recording
	steps []run.StepResult
	wait  []chan error
}

// due returns the runs whose end is due to be written (they ended and their events
// are written), and the checkpoints due to be written (the events emitted before
// them are written) of runs not ending.
func (r *Recorder) due(live []*recording) (ends []*recording, cks []checkpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rc := range live {
		switch {
		case rc.dead != nil: // given up on during this flush
		case rc.ending:
			if rc.persisted >= rc.x.Log.Len() {
				ends = append(ends, rc)
			}
		case rc.ckWait == nil:
		case rc.persisted >= rc.ckAfter:
			cks = append(cks, checkpoint{rc: rc, steps: rc.ckSteps, wait: rc.ckWait})
			rc.ckSteps, rc.ckWait = nil, nil
		default:
			r.wake() // its events were emitted after this flush read the log
		}
	}
	return ends, cks
}

func (r *Recorder) isEnding(rc *recording) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return rc.ending
}

// finish answers End, and the checkpoints still waiting, with the outcome of the
// run's final write, which holds its step results.
func (r *Recorder) finish(rc *recording, err error) {
	r.mu.Lock()
	delete(r.runs, rc.x.ID)
	wait := rc.ckWait
	rc.ckSteps, rc.ckWait = nil, nil
	r.mu.Unlock()
	for _, w := range wait {
		w <- err
	}
	rc.ended <- err
}

// answer answers the checkpoints of rc waiting, with err.
func (r *Recorder) answer(rc *recording, err error) {
	r.mu.Lock()
	wait := rc.ckWait
	rc.ckSteps, rc.ckWait = nil, nil
	r.mu.Unlock()
	for _, w := range wait {
		w <- err
	}
}

// abandon answers the runs still recorded when the recorder stops: ErrClosed, with
// why their last write failed if it did.
func (r *Recorder) abandon() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, rc := range r.runs {
		delete(r.runs, id)
		err := ErrClosed
		switch {
		case rc.dead != nil:
			err = rc.dead
		case rc.err != nil:
			err = fmt.Errorf("%w: %w", ErrClosed, rc.err)
		}
		for _, w := range rc.ckWait {
			w <- err
		}
		rc.ckSteps, rc.ckWait = nil, nil
		rc.ended <- err
	}
}

// recover ends the runs left behind (see Recovery).
func (r *Recorder) recover() {
	if r.opts.NoRecovery {
		return
	}
	rv := Recovery{Store: r.store, Replica: r.opts.Replica, Lease: r.opts.Lease, Executes: r.Executes}
	runs, err := rv.Once(r.ctx)
	if r.opts.OnRecover != nil && (len(runs) > 0 || err != nil) {
		r.opts.OnRecover(runs, err)
	}
}

// Executes reports whether the run with the given id is being recorded here, and
// not given up on.
func (r *Recorder) Executes(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	rc := r.runs[id]
	return rc != nil && rc.dead == nil
}

// interruptRuns ends runs left behind, which this process claimed, ERROR
// "interrupted", keeping their output: first it stores the terminal event their
// stream lacks, after their last stored event, then their record's terminal status,
// so that a reader who sees the status finds the event. It returns the runs it
// ended; a run it could not end is left to its lease.
func interruptRuns(ctx context.Context, s Store, runs []*Run) ([]*Run, error) {
	now := time.Now()
	evs := make([]*Event, len(runs))
	errs := make([]error, len(runs))
	var wg sync.WaitGroup
	for i, rn := range runs {
		wg.Go(func() { evs[i], errs[i] = interruptedEvent(ctx, s, rn, now) })
	}
	wg.Wait()
	var batch []Event
	for i, ev := range evs {
		if errs[i] == nil && ev != nil {
			batch = append(batch, *ev)
		}
	}
	if len(batch) > 0 {
		// An index taken meanwhile is left as it is: by the process that executed
		// the run, writing its last events as its lease lapsed.
		if err := s.AppendEvents(ctx, batch); err != nil {
			return nil, fmt.Errorf("store: end runs left behind: save their terminal events: %w", err)
		}
	}
	for i, rn := range runs {
		if errs[i] != nil {
			continue
		}
		wg.Go(func() {
			if !rn.Status.Terminal() { // else settled by its stored terminal event
				rn.Status, rn.Output.Status, rn.Output.Error = run.StatusError, run.StatusError, ReasonInterrupted
			}
			rn.UpdatedAt = now
			if err := s.UpdateRun(ctx, rn); err != nil {
				errs[i] = fmt.Errorf("store: end run %s left behind: %w", rn.ID, err)
			}
		})
	}
	wg.Wait()
	ended := make([]*Run, 0, len(runs))
	for i, rn := range runs {
		if errs[i] == nil {
			ended = append(ended, rn)
		}
	}
	return ended, errors.Join(errs...)
}

// interruptedEvent returns the terminal event of a run left behind, built as the
// runtime builds a run's end in ERROR, to be stored after its last stored event; nil
// if its stored stream ends with its terminal event already.
func interruptedEvent(ctx context.Context, s Store, rn *Run, now time.Time) (*Event, error) {
	last, err := LastEvent(ctx, s, rn.ID)
	if err != nil {
		return nil, fmt.Errorf("store: read the events of run %s left behind: %w", rn.ID, err)
	}
	next := 0
	if last != nil {
		if last.Ends(rn.ID) {
			settle(rn, last)
			return nil, nil
		}
		next = last.Index + 1
	}
	ended := *rn
	ended.Status, ended.Output.Error = run.StatusError, ReasonInterrupted
	ev, err := EndEvent(&ended, next, now)
	if err != nil {
		return nil, fmt.Errorf("store: terminal event of run %s left behind: %w", rn.ID, err)
	}
	return &ev, nil
}

// settle gives a run whose stored stream ends with its terminal event the status
// that event says: the process that executed it died between storing its last
// events and its end. Such a run is not resumed nor interrupted.
func settle(rn *Run, last *Event) {
	var ev run.Event
	_ = json.Unmarshal(last.Data, &ev)
	st := run.StatusError
	switch last.Type {
	case run.EventWorkflowCompleted, run.EventRunCompleted:
		st = run.StatusCompleted
		rn.Output.Content = ev.Content
	case run.EventWorkflowCancelled, run.EventRunCancelled:
		st = run.StatusCancelled
		rn.Output.Reason = ev.Reason
	default:
		rn.Output.Error = cmp.Or(ev.Error, ev.Content, ReasonInterrupted)
	}
	rn.Status, rn.Output.Status = st, st
}

// recordings returns the runs being recorded.
func (r *Recorder) recordings() []*recording {
	r.mu.Lock()
	defer r.mu.Unlock()
	live := make([]*recording, 0, len(r.runs))
	for _, rc := range r.runs {
		live = append(live, rc)
	}
	return live
}

// LoadState returns a session's state (nil for a session not stored yet).
func (r *Recorder) LoadState(ctx context.Context, sessionID string) (map[string]any, error) {
	s, err := r.store.GetSession(ctx, sessionID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: load session %s: %w", sessionID, err)
	}
	return s.State, nil
}

// SaveState stores a session's state, creating the session for x's component.
func (r *Recorder) SaveState(ctx context.Context, sessionID string, x *run.Exec, state map[string]any) error {
	out := x.Output()
	s := &Session{ID: sessionID, UserID: out.UserID, Kind: x.Kind, ComponentID: out.AgentID, State: state, UpdatedAt: time.Now()}
	if x.Kind == run.KindWorkflow {
		s.ComponentID = out.WorkflowID
	}
	if err := r.store.SaveSession(ctx, s); err != nil {
		return fmt.Errorf("store: save session %s: %w", sessionID, err)
	}
	return nil
}

// History returns the outputs of the last n completed runs of a component in a
// session, oldest first.
func (r *Recorder) History(ctx context.Context, sessionID string, kind run.Kind, componentID string, n int) ([]*run.Output, error) {
	runs, err := r.store.ListRuns(ctx, RunQuery{SessionID: sessionID, Kind: kind, ComponentID: componentID, Status: run.StatusCompleted, Limit: n})
	if err != nil {
		return nil, fmt.Errorf("store: history of session %s: %w", sessionID, err)
	}
	outs := make([]*run.Output, len(runs))
	for i, rn := range runs {
		outs[len(runs)-1-i] = &rn.Output // newest first → oldest first
	}
	return outs, nil
}
