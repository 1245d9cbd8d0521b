package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"kern/run"
)

// Recorder defaults.
const (
	DefaultFlushInterval = 10 * time.Millisecond
	DefaultLease         = 30 * time.Second
)

// writeTimeout bounds one write, so that a store that stops answering fails the runs
// being recorded instead of hanging them.
const writeTimeout = 10 * time.Second

// RecorderOptions configure a Recorder; the zero value gives the defaults.
type RecorderOptions struct {
	// Replica names this process in the records of the runs it executes.
	Replica string
	// FlushInterval is how long a streamed event may wait before it is written
	// (DefaultFlushInterval if zero). A run's end is written at once.
	FlushInterval time.Duration
	// Lease is how long a run's claim lasts unless renewed (DefaultLease if zero); the
	// recorder renews the leases of its live runs three times per Lease.
	Lease time.Duration
	// OnRecover, if set, is called with the runs the recorder found left behind by a
	// process that died and ended ERROR "interrupted" (see Recover).
	OnRecover func(runs []*Run, err error)
}

// Recorder persists the runs of agents and workflows as they execute (it implements
// run.Recorder): the run's record when it starts, its events as they stream, and its
// final state when it ends. One goroutine writes for all runs, so the events of many
// runs share a transaction, and a run's stream never waits for the database.
//
// When it starts, and then three times per Lease, it also ends the runs that a
// process which died left RUNNING (see Recover), so that no run stays RUNNING forever.
//
// If the store fails, the runs being recorded end ERROR with the store's error; no run
// hangs on a store that went away.
type Recorder struct {
	store Store
	opts  RecorderOptions

	mu     sync.Mutex // guards runs and closed
	runs   map[string]*recording
	closed bool

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

type recording struct {
	x         *run.Exec
	rec       *Run
	created   bool       // rec is stored
	failed    error      // why rec could not be stored
	persisted int        // events written so far
	ending    bool       // End was called: write the final state once the events are out
	ended     chan error // receives the outcome of the final write
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
	r := &Recorder{
		store: s, opts: opts, runs: make(map[string]*recording),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go r.loop()
	return r
}

// Begin records a run that is about to start. The record is written with the run's
// first events, not before them, so that persistence adds nothing to the time to the
// run's first event; a run whose record cannot be written ends ERROR. An input larger
// than MaxValueSize is refused at once.
func (r *Recorder) Begin(ctx context.Context, x *run.Exec) error {
	out := x.Output()
	if len(out.Input) > MaxValueSize {
		return fmt.Errorf("store: record run: input of %d bytes: %w", len(out.Input), ErrTooLarge)
	}
	now := time.Now()
	rec := &Run{
		ID: x.ID, SessionID: out.SessionID, UserID: out.UserID, ParentRunID: out.ParentRunID,
		Kind: KindAgent, ComponentID: out.AgentID,
		Status: run.StatusRunning, Input: out.Input, Output: *out,
		Replica: r.opts.Replica, LeaseUntil: now.Add(r.opts.Lease), CreatedAt: now, UpdatedAt: now,
	}
	if x.Kind == run.KindWorkflow {
		rec.Kind, rec.ComponentID = KindWorkflow, out.WorkflowID
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	r.runs[x.ID] = &recording{x: x, rec: rec, ended: make(chan error, 1)}
	r.wake()
	return nil
}

// End writes what remains of the run's events and its final state, and returns once
// they are durable or could not be written.
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

// Close writes what the recorded runs have left to write, and stops the recorder.
// Runs that have not ended by then are left RUNNING in the store; their lease lapses
// and recovery ends them.
func (r *Recorder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
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
	r.recover()
	var batch []Event
	var evs []*run.Event
	for {
		select {
		case <-r.kick:
		case <-flush.C:
		case <-renew.C:
			r.renew()
			r.recover()
			continue
		case <-r.stop:
			r.flush(batch, evs)
			r.abandon()
			return
		}
		batch, evs = r.flush(batch[:0], evs[:0])
		flush.Reset(r.opts.FlushInterval)
	}
}

// flush writes the new events of every recorded run in one call, then the final
// state of the runs that ended. It returns its buffers for reuse.
func (r *Recorder) flush(batch []Event, evs []*run.Event) ([]Event, []*run.Event) {
	live := r.recordings()
	if len(live) == 0 {
		return batch, evs
	}

	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	r.create(ctx, live)
	live = slices.DeleteFunc(live, func(rc *recording) bool {
		if rc.failed != nil && r.isEnding(rc) {
			r.finish(rc, rc.failed)
		}
		return rc.failed != nil
	})
	counts := make([]int, len(live))
	var arena []byte // every event's JSON, one after the other
	var ends []int
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
			ends = append(ends, len(arena))
			batch = append(batch, Event{RunID: rc.x.ID, Index: ev.EventIndex, Type: ev.Event, CreatedAt: time.Unix(ev.CreatedAt, 0)})
		}
	}
	start := 0
	for i, end := range ends {
		batch[i].Data = arena[start:end:end]
		start = end
	}
	if len(batch) > 0 {
		if err := r.store.AppendEvents(ctx, batch); err != nil {
			r.fail(live, fmt.Errorf("store: save events: %w", err))
			return batch, evs
		}
	}
	for i, rc := range live {
		rc.persisted += counts[i]
	}

	// The ends are written at once, so that a store that groups concurrent writes
	// into one transaction (SQLite's writer does) commits them together.
	var wg sync.WaitGroup
	for _, rc := range live {
		if !r.isEnding(rc) || rc.persisted < rc.x.Log.Len() {
			continue
		}
		wg.Go(func() {
			out := rc.x.Output()
			rc.rec.Status, rc.rec.Output, rc.rec.UpdatedAt = out.Status, *out, time.Now()
			err := r.store.UpdateRun(ctx, rc.rec)
			if err != nil {
				err = fmt.Errorf("store: save the end of run %s: %w", rc.x.ID, err)
			}
			r.finish(rc, err)
		})
	}
	wg.Wait()
	return batch, evs
}

// create stores the records of the runs that began since the last flush, at once, so
// that a store that groups concurrent writes commits them together. A run whose
// record cannot be stored ends ERROR.
func (r *Recorder) create(ctx context.Context, live []*recording) {
	var wg sync.WaitGroup
	for _, rc := range live {
		if rc.created || rc.failed != nil {
			continue
		}
		wg.Go(func() {
			if err := r.store.CreateRun(ctx, rc.rec); err != nil {
				rc.failed = fmt.Errorf("store: record run %s: %w", rc.x.ID, err)
				rc.x.Entry.Fail(rc.failed)
				return
			}
			rc.created = true
		})
	}
	wg.Wait()
}

func (r *Recorder) isEnding(rc *recording) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return rc.ending
}

// fail ends the runs being recorded with err: those still running end ERROR, those
// ending learn that their end was not saved.
func (r *Recorder) fail(live []*recording, err error) {
	for _, rc := range live {
		if r.isEnding(rc) {
			r.finish(rc, err)
		} else {
			rc.x.Entry.Fail(err)
		}
	}
}

func (r *Recorder) finish(rc *recording, err error) {
	r.mu.Lock()
	delete(r.runs, rc.x.ID)
	r.mu.Unlock()
	rc.ended <- err
}

// abandon answers the runs still recorded when the recorder stops.
func (r *Recorder) abandon() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, rc := range r.runs {
		delete(r.runs, id)
		rc.ended <- ErrClosed
	}
}

func (r *Recorder) recover() {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	runs, err := Recover(ctx, r.store)
	if r.opts.OnRecover != nil && (len(runs) > 0 || err != nil) {
		r.opts.OnRecover(runs, err)
	}
}

func (r *Recorder) renew() {
	r.mu.Lock()
	ids := make([]string, 0, len(r.runs))
	for id, rc := range r.runs {
		if !rc.ending {
			ids = append(ids, id)
		}
	}
	r.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	err := r.store.RenewLeases(ctx, r.opts.Replica, ids, time.Now().Add(r.opts.Lease))
	if err != nil {
		r.fail(r.recordings(), fmt.Errorf("store: renew leases: %w", err))
	}
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
	s := &Session{ID: sessionID, UserID: out.UserID, Kind: KindAgent, ComponentID: out.AgentID, State: state, UpdatedAt: time.Now()}
	if x.Kind == run.KindWorkflow {
		s.Kind, s.ComponentID = KindWorkflow, out.WorkflowID
	}
	if err := r.store.SaveSession(ctx, s); err != nil {
		return fmt.Errorf("store: save session %s: %w", sessionID, err)
	}
	return nil
}

// History returns the outputs of the last n completed runs of a component in a
// session, oldest first.
func (r *Recorder) History(ctx context.Context, sessionID string, kind run.Kind, componentID string, n int) ([]*run.Output, error) {
	k := KindAgent
	if kind == run.KindWorkflow {
		k = KindWorkflow
	}
	runs, err := r.store.ListRuns(ctx, RunQuery{SessionID: sessionID, Kind: k, ComponentID: componentID, Status: run.StatusCompleted, Limit: n})
	if err != nil {
		return nil, fmt.Errorf("store: history of session %s: %w", sessionID, err)
	}
	outs := make([]*run.Output, len(runs))
	for i, rn := range runs {
		outs[len(runs)-1-i] = &rn.Output // newest first → oldest first
	}
	return outs, nil
}
