package store

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/run"
)

// runTable is the runs a Recorder is recording: what the runs' goroutines hand
// the recorder's loop (a run that began, a checkpoint asked for, an end) and what
// the loop answers them. Its mu guards the runs, closed, and the fields of each
// recording that the runs' goroutines write.
type runTable struct {
	mu     sync.Mutex
	runs   map[string]*recording
	closed bool

	kick chan struct{} // wakes the loop: something is to be written
}

func newRunTable() runTable {
	return runTable{runs: make(map[string]*recording), kick: make(chan struct{}, 1)}
}

// recording is a run being recorded. The loop's goroutine alone reads and writes
// begin, base, resume, created, tried, persisted, lease, leased, createdAt, renew,
// err, dead and writing (the bulk's goroutine, which makes a call of the bulk, uses
// none of them: see bulkCall); the runTable's mu guards the rest.
//
// It keeps no copy of the run's record once that is stored: the records it writes
// next (checkpoints, the end) are built from the run's output when written (see
// eventWriter.checkpointRecord and endRecord), so that a live run costs the
// recorder only what the run cannot tell it.
type recording struct {
	x *run.Exec
	// begin is the run's record and the Begin that waits for its write; nil once
	// the record is stored (or the run does not start).
	begin *beginning
	// base is what the record of the run had at Begin in the fields of its output
	// that the run changes as it goes (see stableOutput), which a checkpoint's
	// record keeps; nil if all were zero (a new run's are).
	base      *run.Output
	persisted int       // index of the next event to write
	lease     time.Time // when the run's lease lapses, as last written or renewed
	leased    time.Time // the lease the run's record was last written (or tried) with
	createdAt int64     // its record's CreatedAt, in Unix nanoseconds (UpdateRun does not write it)
	err       error     // why the last write for the run failed; nil once one succeeded
	dead      error     // why the recorder gave up on the run: nothing more is written

	ended chan error // receives the outcome of the final write; made by End
	// A checkpoint asked for; nil if none.
	ck *ckAsk

	resume   bool // the record is stored already: update it instead of creating it
	created  bool // the record is stored
	tried    bool // a CreateRun of the record failed: it may have been stored all the same
	renew    bool // the lease is due to be renewed
	finished bool // its End was answered: it is no longer in the table
	// writing: the bulk's call in flight writes the run's events or renews its
	// lease; its urgent writes (end, checkpoint) wait for that call's outcome, so
	// that they land after it.
	writing bool
	ending  bool // End was called: write the final state once the events are out
}

// beginning is the record of a run whose Begin waits for its write.
type beginning struct {
	rec  *Run
	done chan error // Begin waits on it for the outcome of the record's write
}

// ckAsk is a checkpoint asked for: the steps to keep once the events before index
// after are written, and who waits for the outcome.
type ckAsk struct {
	steps []run.StepResult
	after int
	wait  []chan error
}

// tell answers the checkpoints waiting, if any, with err.
func (c *ckAsk) tell(err error) {
	if c == nil {
		return
	}
	for _, w := range c.wait {
		w <- err
	}
}

// disown tells the run's durable readers (its clients, see run.Log.FollowDurable)
// that this process no longer speaks for the run: they stop at what was stored,
// and read on in the store, where the process that owns the run next (another
// replica, or this one's recovery) writes what follows. A run nothing of which
// reached the store (not even its record: none was tried, or the store refused it) is
// nobody else's: its clients hear its end here. err is why.
func (rc *recording) disown(err error) {
	log := engine.LogOf(rc.x)
	if !rc.created && !rc.resume && (!rc.tried || refused(err)) {
		log.Untrack()
		return
	}
	log.Lose()
}

// stored takes note that the run's next n events are stored, last the last of
// them: its readers may be told them, but for its terminal event (or pause), told
// once its end is stored too.
func (rc *recording) stored(n int, last *run.Event) {
	rc.persisted += n
	rc.err = nil
	durable := rc.persisted
	if (last.Event.Terminal() || last.Event.Pauses()) && last.RunID == rc.x.ID {
		durable--
	}
	engine.LogOf(rc.x).Durable(durable)
}

// checkpoint is a checkpoint due to be written.
type checkpoint struct {
	rc *recording
	*ckAsk
}

// add records rc, unless the recorder is closed.
func (t *runTable) add(rc *recording) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	t.runs[rc.x.ID] = rc
	t.wake()
	return nil
}

// askCheckpoint asks for a checkpoint of x's run with steps, once the events x
// emitted so far are written; done receives the outcome.
func (t *runTable) askCheckpoint(x *run.Exec, steps []run.StepResult, done chan error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	rc := t.runs[x.ID]
	if rc == nil || rc.x != x || rc.ending {
		if t.closed {
			return ErrClosed
		}
		return fmt.Errorf("store: checkpoint run %s: not being recorded", x.ID)
	}
	if rc.ck == nil {
		rc.ck = &ckAsk{}
	}
	rc.ck.steps, rc.ck.after = steps, x.Log.Len()
	rc.ck.wait = append(rc.ck.wait, done)
	t.wake()
	return nil
}

// end marks x's run as ending and returns it, or nil if it is not recorded.
func (t *runTable) end(x *run.Exec) *recording {
	t.mu.Lock()
	defer t.mu.Unlock()
	rc := t.runs[x.ID]
	if rc != nil {
		rc.ending = true
		if rc.ended == nil {
			rc.ended = make(chan error, 1)
		}
		t.wake()
	}
	return rc
}

// drop forgets rc, a run that does not start: its record could not be written.
func (t *runTable) drop(rc *recording) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.runs[rc.x.ID] == rc {
		delete(t.runs, rc.x.ID)
	}
}

// close closes the table to new runs, and reports whether it was open.
func (t *runTable) close() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	was := !t.closed
	t.closed = true
	return was
}

// executes reports whether the run with the given id is recorded, and not given up
// on.
func (t *runTable) executes(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	rc := t.runs[id]
	return rc != nil && rc.dead == nil
}

func (t *runTable) wake() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// notEnding removes from due the runs that ended: an ending run's lease bounds how
// long its end is tried.
func (t *runTable) notEnding(due []*recording) []*recording {
	if len(due) == 0 {
		return due
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.DeleteFunc(due, func(rc *recording) bool { return rc.ending })
}

// again puts back a checkpoint whose write failed, to be written on a later flush,
// unless the run asked for a newer one since, which its waiters then wait for.
func (t *runTable) again(ck checkpoint) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rc := ck.rc
	if rc.ck == nil {
		rc.ck = ck.ckAsk
		return
	}
	rc.ck.wait = append(ck.wait, rc.ck.wait...)
}

// due returns the runs whose end is due to be written (they ended and their events
// are written), and the checkpoints due to be written (the events emitted before
// them are written) of runs not ending.
func (t *runTable) due(live []*recording) (ends []*recording, cks []checkpoint) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, rc := range live {
		switch {
		case rc.dead != nil, rc.finished: // given up on, or finished, during this flush
		case rc.writing: // once the bulk's call in flight returned (see Recorder.bulkCalled)
		case rc.ending:
			if rc.persisted >= rc.x.Log.Len() {
				ends = append(ends, rc)
			}
		case rc.ck == nil:
		case rc.persisted >= rc.ck.after:
			cks = append(cks, checkpoint{rc: rc, ckAsk: rc.ck})
			rc.ck = nil
		default:
			t.wake() // its events were emitted after this flush read the log
		}
	}
	return ends, cks
}

// dueAfter is due for the runs of hot once n[i] more events of each are written
// with their records (see Recorder.writeHot): the runs whose end is due then (they
// ended, and those are their last events), and the checkpoints due then, taken
// from their runs.
func (t *runTable) dueAfter(hot []*recording, n []int) (ends []*recording, cks []checkpoint) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, rc := range hot {
		switch {
		case rc.dead != nil, rc.finished:
		case rc.ending:
			if rc.persisted+n[i] >= rc.x.Log.Len() {
				ends = append(ends, rc)
			}
		case rc.ck != nil && rc.persisted+n[i] >= rc.ck.after:
			cks = append(cks, checkpoint{rc: rc, ckAsk: rc.ck})
			rc.ck = nil
		}
	}
	return ends, cks
}

// urgent returns the runs of live that a flush writes first, ahead of the other
// runs' events: those whose End or a Checkpoint waits, which the run's caller (a
// cancel, the next step of a workflow) waits for, but for those the bulk's call in
// flight writes for (writing). The slice is dst, reused.
func (t *runTable) urgent(dst, live []*recording) []*recording {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, rc := range live {
		if rc.created && rc.dead == nil && !rc.finished && !rc.writing && (rc.ending || rc.ck != nil) {
			dst = append(dst, rc)
		}
	}
	return dst
}

// anyUrgent reports whether any of rcs is urgent (see urgent).
func (t *runTable) anyUrgent(rcs []*recording) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.ContainsFunc(rcs, func(rc *recording) bool {
		return rc.created && rc.dead == nil && !rc.finished && !rc.writing && (rc.ending || rc.ck != nil)
	})
}

func (t *runTable) isEnding(rc *recording) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return rc.ending
}

// finish answers End, and the checkpoints still waiting, with the outcome of the
// run's final write, which holds its step results.
func (t *runTable) finish(rc *recording, err error) {
	t.mu.Lock()
	delete(t.runs, rc.x.ID)
	rc.finished = true
	ck, ended := rc.ck, rc.ended
	rc.ck = nil
	t.mu.Unlock()
	ck.tell(err)
	if ended != nil { // its End waits
		ended <- err
	}
}

// answer answers the checkpoints of rc waiting, with err.
func (t *runTable) answer(rc *recording, err error) {
	t.mu.Lock()
	ck := rc.ck
	rc.ck = nil
	t.mu.Unlock()
	ck.tell(err)
}

// abandon answers the runs still recorded when the recorder stops: ErrClosed, with
// why their last write failed if it did.
func (t *runTable) abandon() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, rc := range t.runs {
		delete(t.runs, id)
		err := ErrClosed
		switch {
		case rc.dead != nil:
			err = rc.dead
		case rc.err != nil:
			err = fmt.Errorf("%w: %w", ErrClosed, rc.err)
		}
		if rc.begin != nil { // its Begin waits: the run does not start
			rc.begin.done <- err
			continue
		}
		rc.ck.tell(err)
		rc.ck = nil
		if rc.dead == nil {
			rc.disown(err) // its end was not stored: its lease lapses, and recovery ends it
		}
		if rc.ended != nil { // its End waits
			rc.ended <- err
		}
	}
}

// list returns the runs being recorded.
func (t *runTable) list() []*recording {
	t.mu.Lock()
	defer t.mu.Unlock()
	live := make([]*recording, 0, len(t.runs))
	for _, rc := range t.runs {
		live = append(live, rc)
	}
	return live
}
