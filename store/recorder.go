package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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

// eventPage is how many stored events recovery reads at a time, looking for the
// last one of a run left behind.
const eventPage = 1000

// RecorderOptions configure a Recorder; the zero value gives the defaults.
type RecorderOptions struct {
	// Replica names this process in the records of the runs it executes.
	Replica string
	// FlushInterval is how long a streamed event may wait before it is written
	// (DefaultFlushInterval if zero) when the store keeps up. An event emitted
	// while the recorder is idle is written at once; under load the writes of
	// events are at least a fifth of FlushInterval apart, and at least three
	// times as far apart as the last one took, not counting its pauses (at most
	// 250 ms). A run's record, and its end and checkpoints with the events before
	// them, are written at once, ahead of other runs' events.
	FlushInterval time.Duration
	// Lease is how long a run's claim lasts unless renewed (DefaultLease if zero); the
	// recorder renews the leases of its live runs three times per Lease. It is also
	// how long a run outlives a store that fails: see Recorder.
	Lease time.Duration
	// clock, if set, is the leases' time (tests set it: see export_test.go).
	clock clock
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
	// OnWrite, if set, is told of each write of a batch of events: how long it
	// took, how many events it held and its error (telemetry's store metrics).
	// It is called from two goroutines, maybe at once (the bulk's writes and the
	// urgent ones): it must be safe for concurrent use.
	OnWrite func(d time.Duration, events int, err error)
}

// Recorder persists the runs of agents and workflows as they execute (it implements
// run.Recorder): the run's record when it starts, its events as they stream, and its
// final state when it ends. One goroutine writes for all runs, so the events of many
// runs share a transaction, and a run's stream never waits for the database; a
// second one makes the calls that write the live events of many runs (the bulk),
// so that what a caller waits for (a run's record, its end, a checkpoint) is
// written while one is in flight.
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
// it is written. No run hangs on a store that went away. A store whose storage
// cannot take writes (a full disk: a lasting ErrUnavailable) is not waited for:
// the run's checkpoints and its End learn it at once, and a run that ends then is
// left RUNNING in the store, for recovery to take over once space returns.
//
// A run that another replica claimed (its lease lapsed while this process stalled)
// is this recorder's no more: once a renewal of its lease finds it lost, or the
// store refuses its events (see Fencer) or its end (ErrTakenOver), nothing more of
// it is written, and the run, which goes on elsewhere, is cancelled here
// (ReasonTakenOver); its End returns ErrTakenOver.
type Recorder struct {
	store Store
	opts  RecorderOptions

	table runTable // the runs being recorded (recording.go)

	stop chan struct{}
	done chan struct{}

	// ctx bounds recovery: it ends when the recorder closes.
	ctx    context.Context
	cancel context.CancelFunc

	// The loop's goroutine alone uses these: the group commit of the runs' writes
	// (eventwriter.go), the keeper of their leases (leases.go), and whether a write
	// of this flush failed and is to be tried again. The Recorder hands the runs'
	// writes to the one and their leases to the other, and decides the fate of a
	// run whose writes failed.
	writer  eventWriter
	leases  leaseKeeper
	failing bool
	hot     []*recording // the urgent runs of a flush, reused
	// round is the bulk under way (nil if none), whose calls the bulk's goroutine
	// makes one at a time (see bulkWrites): the loop hands it a call on calls,
	// and takes it back, made, on called. A bulk begins no sooner than period
	// after the last began (last), nor sooner than gap (see loop).
	round         *bulkRound
	calls, called chan *bulkCall
	bulkDone      chan struct{} // closed once the bulk's goroutine returned
	gap, period   time.Duration
	last          time.Time
	// perRun is what writing one run's events in the bulk has lately taken (a
	// moving average), and shortest about the shortest call of the bulk lately
	// (what any call costs: a round trip, a commit), by which the bulk's calls
	// are sized (see bulkSize).
	perRun, shortest time.Duration

	// emitted is signalled by the first event a recorded run emits after a flush
	// read its log (see eventlog.Log.Arm): an event emitted while the writer is
	// idle is written at once.
	emitted chan struct{}
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
	if opts.clock == nil {
		opts.clock = wallClock{}
	}
	r := &Recorder{
		store: s, opts: opts, table: newRunTable(),
		stop: make(chan struct{}), done: make(chan struct{}), emitted: make(chan struct{}, 1),
		calls: make(chan *bulkCall, 1), called: make(chan *bulkCall, 1), bulkDone: make(chan struct{}),
		leases: leaseKeeper{store: s, replica: opts.Replica, lease: opts.Lease, clock: opts.clock},
	}
	r.writer = eventWriter{store: s, leases: &r.leases, onWrite: opts.OnWrite}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	// The renewals' ticker starts here, not in the loop, so that a test's clock
	// has it once NewRecorder returns.
	renew, stopRenew := r.leases.clock.Ticker(r.leases.every())
	go r.loop(renew, stopRenew)
	return r
}

// Begin records a run that is about to start, and returns once its record is
// stored, so that a run is acknowledged only once it is durable: a run whose record
// the store refuses or cannot take now (ErrUnavailable: its disk is full, its
// server is down) does not start, and the error says why. Other failures are tried
// again while the run's lease lasts. The record is written at once, with the
// records of the runs that begin meanwhile. An input larger than MaxValueSize is
// refused at once.
//
// A run that continues a stored one (x.Resume set) updates the stored record instead:
// RUNNING, executed by this replica, with a fresh lease and the steps it resumes
// after; a run whose record is not stored does not start.
func (r *Recorder) Begin(ctx context.Context, x *run.Exec) error {
	out := x.Output()
	if len(out.Input) > MaxValueSize {
		return fmt.Errorf("store: record run: input of %d bytes: %w", len(out.Input), ErrTooLarge)
	}
	now := time.Now()
	rec := newRun(x, out, run.StatusRunning, r.opts.Replica, r.leases.until(), now)
	rec.Output, rec.UpdatedAt = *out, now
	// Until its record is written, the run has the lease it would have had.
	rc := &recording{x: x, begin: &beginning{rec: rec, done: make(chan error, 1)},
		lease: rec.LeaseUntil, leased: rec.LeaseUntil, createdAt: now.UnixNano(), base: baseOutput(out)}
	// Its clients are told only what is stored (eventWriter.appendEvents advances
	// the watermark) and, should the recorder give up on it, no more: see disown.
	engine.LogOf(x).Track(r.emitted)
	if x.Resume != nil {
		rc.resume, rc.persisted = true, x.Resume.NextEvent
		if len(rec.Output.StepResults) == 0 {
			// Until the run checkpoints or ends, its record keeps the steps it
			// resumes after.
			rec.Output.StepResults = x.Resume.Steps
		}
	}
	begun := rc.begin.done
	if err := r.table.add(rc); err != nil {
		return err
	}
	// The loop answers on the flush that stores or refuses the record, or, when
	// the recorder closes, with ErrClosed: every flush is bounded (writeTimeout).
	return <-begun
}

// Checkpoint stores the run's record, RUNNING with steps as its step results, with
// the events the run emitted before it, and returns once they are durable or could
// not be written (the store failed for longer than the run's lease, or refused
// them). The record is created first if it is not stored yet. It goes through the
// recorder's writes, so that checkpoints of many runs share them.
func (r *Recorder) Checkpoint(ctx context.Context, x *run.Exec, steps []run.StepResult) error {
	done := make(chan error, 1)
	if err := r.table.askCheckpoint(x, steps, done); err != nil {
		return err
	}
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
	rc := r.table.end(x)
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
	if !r.table.close() {
		return nil
	}
	r.cancel()
	close(r.stop)
	<-r.done
	return nil
}

func (r *Recorder) loop(renew <-chan time.Time, stopRenew func()) {
	defer close(r.done)
	go r.bulkWrites()
	defer func() {
		close(r.calls)
		<-r.bulkDone
	}()
	flush := time.NewTimer(r.opts.FlushInterval)
	defer flush.Stop()
	// pace hands the bulk's next call on once the pause after the last is over
	// (see bulkCalled).
	pace := time.NewTimer(time.Hour)
	pace.Stop()
	defer pace.Stop()
	defer stopRenew()
	recovery := time.NewTicker(r.opts.RecoverInterval)
	defer recovery.Stop()
	r.recover()
	// An event emitted while the writer is idle is written at once. Under load the
	// writes of the runs' events (the bulk) are at least period apart, and the
	// events of many runs share them (group commit): period is a fifth of
	// FlushInterval, or bulkDuty times what the last bulk took less its pauses
	// (see bulkPause), up to maxWindow, so that the store spends at most about a
	// third of its time on events that only wait to be streamed, fewer and
	// larger writes cost less per event, and the records of runs that begin and
	// the ends of runs that end (urgent: a caller waits for them) are written at
	// once, while the bulk's calls are in flight.
	r.gap = r.opts.FlushInterval / 5
	r.period = r.gap
	missed := false // an event was emitted, or the timer fired, while the bulk was under way
	// step hands on the bulk's next call; once the bulk is done, the next flush is
	// set.
	step := func() {
		r.step(false)
		if r.round != nil {
			return
		}
		wait := r.writer.wait(r.opts.FlushInterval)
		if missed {
			// What was emitted meanwhile is written once the window allows,
			// as it would have been had no bulk been under way.
			wait = min(wait, max(r.period-time.Since(r.last), 0))
			missed = false
		}
		flush.Reset(wait)
	}
	for {
		bulk := true
		select {
		case <-r.table.kick:
			bulk = time.Since(r.last) >= r.period
		case <-r.emitted:
			if r.round != nil {
				missed = true // the bulk under way sets the timer once it is done
				continue
			}
			if wait := r.period - time.Since(r.last); wait > 0 {
				flush.Reset(wait)
				continue
			}
		case <-flush.C:
			if r.round != nil {
				missed = true
				continue
			}
			if wait := r.period - time.Since(r.last); wait > 0 {
				flush.Reset(wait)
				continue
			}
		case <-renew:
			r.leases.markDue(r.table.list())
		case c := <-r.called:
			if pause := r.bulkCalled(c); pause > 0 {
				pace.Reset(pause)
			} else {
				step()
			}
			continue
		case <-pace.C:
			step()
			continue
		case <-recovery.C:
			r.recover()
			continue
		case <-r.stop:
			r.dropRound()
			r.flush(true, true)
			r.table.abandon()
			return
		}
		bulk = bulk && r.round == nil
		if bulk {
			r.last = time.Now()
		}
		r.flush(false, bulk)
		wait := r.writer.wait(r.opts.FlushInterval)
		if !bulk {
			wait = min(wait, max(r.period-time.Since(r.last), 0))
		}
		flush.Reset(wait)
	}
}

// The adaptive window of the bulk writes of events (see loop): the next one begins
// no sooner than bulkDuty times the last one took, nor later than maxWindow after
// it (nor sooner than a fifth of FlushInterval).
const (
	bulkDuty  = 3
	maxWindow = 250 * time.Millisecond
)

// flush writes the records of the runs that began, and the events and the final
// state or checkpoint of the runs whose End or Checkpoint waits (urgent), then
// the ends and checkpoints due; if bulk, it begins writing the new events of every
// other recorded run (see bulkRound), in calls of at most bulkRuns runs that the
// bulk's goroutine makes while the loop goes on writing what is urgent, and
// renewing the leases due. A write that failed is tried again on a later flush,
// once the backoff has passed (at once if final: Close tries once more, and makes
// the bulk's calls itself).
func (r *Recorder) flush(final, bulk bool) {
	start := time.Now() // of the bulk, if it begins: its window counts the urgent writes first (see loop)
	live := r.table.list()
	if len(live) == 0 {
		if r.round == nil {
			r.writer.schedule(false)
		}
		return
	}
	live = r.settle(live)
	if len(live) == 0 || !final && r.writer.backingOff() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if r.round == nil {
		r.failing = false
	}
	r.urgent(ctx, live)
	if !bulk {
		r.writeDue(ctx, live)
		if r.round == nil {
			r.writer.schedule(r.failing)
		}
		return
	}
	live = slices.DeleteFunc(live, func(rc *recording) bool { return !rc.created || rc.dead != nil || rc.finished })
	// In a stable order: each call's runs are near each other in a store's
	// index of them.
	slices.SortFunc(live, func(a, b *recording) int { return strings.Compare(a.x.ID, b.x.ID) })
	r.round = &bulkRound{start: start, live: live}
	r.step(final)
}

// bulkRound is a bulk under way: the new events of its live runs, written in
// calls of bulkSize runs, then the renewals of their leases due, in calls of
// renewRuns runs; one call in flight at a time. The loop's goroutine alone uses
// it, but for the call in flight, which the bulk's goroutine has until it hands
// it back.
type bulkRound struct {
	start   time.Time
	live    []*recording  // the runs whose events it writes
	next    int           // live[next:] are still to write
	due     []*recording  // the runs whose leases it renews, once their events are written
	renewed int           // due[:renewed] are renewed, or being renewed
	renew   bool          // due is set
	call    *bulkCall     // the call in flight, nil if none
	paused  time.Duration // how long it paused (see bulkPause)
	c       bulkCall      // its calls, reused
}

// bulkCall is one call of the bulk: a write of the events of some runs, or a
// renewal of their leases. The loop fills it, the bulk's goroutine makes the
// call (do), and the loop takes in its outcome (bulkCalled). Meanwhile its runs
// are marked writing: their urgent writes wait for its outcome, so that a run's
// events are stored in order, its end after them.
type bulkCall struct {
	events *eventBatch  // the events to write, or nil
	renew  []*recording // the runs whose leases to renew
	ids    []string     // their ids
	until  time.Time    // the leases' new end

	lost []string // the outcome: the runs found claimed by another replica,
	err  error    // or the call's error,
	took time.Duration
}

// runs returns the runs the call writes for.
func (c *bulkCall) runs() []*recording {
	if c.events != nil {
		return c.events.runs
	}
	return c.renew
}

// do makes the call. It uses only the call's own fields and what does not change
// once the recorder runs (see eventWriter.append and leaseKeeper.renewCall).
func (c *bulkCall) do(w *eventWriter, k *leaseKeeper) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	start := time.Now()
	if c.events != nil {
		c.lost, c.err = w.append(ctx, c.events.batch)
	} else {
		c.lost, c.err = k.renewCall(ctx, c.ids, c.until)
	}
	c.took = time.Since(start)
}

// bulkWrites makes the bulk's calls the loop hands it, one at a time, and hands
// each back: an urgent write (a cancelled run's end, a run's record) does not
// wait for them. The loop owns it: it closes calls, then waits for bulkDone.
func (r *Recorder) bulkWrites() {
	defer close(r.bulkDone)
	for c := range r.calls {
		c.do(&r.writer, &r.leases)
		r.called <- c
	}
}

// step hands the bulk's next call to its goroutine or, if final, makes it and
// the following ones itself; once none is left, it ends the bulk.
func (r *Recorder) step(final bool) {
	for r.round != nil {
		c := r.nextCall()
		if c == nil {
			r.endRound()
			return
		}
		for _, rc := range c.runs() {
			rc.writing = true
		}
		r.round.call = c
		if !final {
			r.calls <- c // never blocks: the goroutine has no other call
			return
		}
		c.do(&r.writer, &r.leases)
		r.takeIn(c)
	}
}

// nextCall returns the bulk's next call, or nil if none is left: the events of the
// next runs, or else the renewal of the next leases due.
func (r *Recorder) nextCall() *bulkCall {
	b := r.round
	for b.next < len(b.live) {
		part := b.live[b.next:min(b.next+r.bulkSize(), len(b.live))]
		b.next += len(part)
		// Not the runs given up on or finished meanwhile (by an urgent write).
		part = slices.DeleteFunc(slices.Clone(part), func(rc *recording) bool { return rc.dead != nil || rc.finished })
		if len(part) == 0 || !r.writer.prepare(&r.writer.bulk, part) {
			continue
		}
		b.c = bulkCall{events: &r.writer.bulk}
		return &b.c
	}
	if !b.renew {
		// The renewals too, in parts: one of 10,000 leases held an urgent
		// write back for as long as it took. Each part is filtered just before
		// its write: a run that began ending, or was given up on, meanwhile is
		// not renewed, which the store would report as lost.
		b.due, b.renew = r.leases.dueOf(b.live), true
	}
	for b.renewed < len(b.due) {
		end := min(b.renewed+renewRuns, len(b.due))
		part := r.table.notEnding(b.due[b.renewed:end])
		b.renewed = end
		part = slices.DeleteFunc(part, func(rc *recording) bool { return rc.dead != nil })
		if len(part) == 0 {
			continue
		}
		b.c = bulkCall{renew: part, ids: runIDs(part), until: r.leases.until()}
		return &b.c
	}
	return nil
}

// bulkCalled takes in the outcome of the bulk's call c and writes the ends and
// checkpoints of its runs that waited for it. It returns how long the bulk pauses
// before its next call (see bulkPause).
func (r *Recorder) bulkCalled(c *bulkCall) time.Duration {
	runs := c.runs()
	r.takeIn(c)
	if r.table.anyUrgent(runs) {
		r.flush(false, false)
	}
	return r.bulkPause(c.took)
}

// bulkPause returns how long the bulk pauses after a call that took d: twice
// that, so that the store's writes of events, and the cores they take, are
// spread over the window rather than packed at its start: an urgent write (a
// cancelled run's end) and the streams' writes to their sockets then find the
// store and the cores busy with the bulk a third of the time, not all of it. It pauses only out of the
// window's slack, what is left of the window once the calls still to make (as
// long a run as the last ones took) are counted, and not after its last call of
// events: a bulk that needs all its window, or more, does not pause, so that
// pauses do not cut how many events the store takes.
//
// The window does not count the pauses (see endRound): a bulk that pauses
// spreads over its window, but the window is as long as it was without pauses
// (counting them, windows three times as long made the store's writes cheaper
// an event but held each event three times as long before it was streamed).
//
// Measured with kern-load (1,000 streams at a word per 60 ms, SQLite, 2 cores,
// 300 cancels under load a run): without pauses, bulks of ~40 ms every ~130 ms
// (cancels during one: p50 2.5 ms; outside: 1.0 ms) and cancel p99 4.4-7.4 ms,
// median 5.8 (13 runs); with these pauses 2.7-3.9 ms (3 runs). A stream's first
// event waits longer under heavy load: 10,000 streams opened in 13.4 s instead
// of 6.6-8.2 s (128 at a time). Counting the pauses as they lasted (an urgent
// write the loop makes during one included) made the windows shorter: the
// ramp as before, but cancel p99 4.2-7.4 ms and more CPU an event.
func (r *Recorder) bulkPause(d time.Duration) time.Duration {
	b := r.round
	if b == nil || b.next >= len(b.live) {
		return 0 // what follows its last call of events (renewals, its end) waits for no room
	}
	left := time.Duration(len(b.live)-b.next) * r.perRun
	pause := max(0, min(bulkPauses*d, r.period-time.Since(b.start)-left))
	b.paused += pause
	return pause
}

// bulkPauses is how many times as long as a call of the bulk took it pauses
// after it (see bulkPause): the bulk is then busy one part in bulkDuty.
const bulkPauses = bulkDuty - 1

// takeIn takes in the outcome of the bulk's call c.
func (r *Recorder) takeIn(c *bulkCall) {
	runs := c.runs()
	for _, rc := range runs {
		rc.writing = false
	}
	r.round.call = nil
	if c.events != nil {
		r.failed(r.writer.appended(c.events, c.lost, c.err))
		r.took(c.took, len(runs))
		return
	}
	r.failed(r.leases.renewed(c.renew, c.until, c.lost, c.err))
}

// endRound ends the bulk: it writes the ends and the checkpoints due of its runs,
// and sets when the next bulk may begin.
func (r *Recorder) endRound() {
	b := r.round
	r.round = nil
	r.leases.release()
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	r.writeDue(ctx, b.live)
	r.writer.schedule(r.failing)
	r.period = min(max(r.gap, bulkDuty*(time.Since(b.start)-b.paused)), max(r.gap, maxWindow))
}

// dropRound stops the bulk under way, once its call in flight returned (Close's
// last flush writes what it left).
func (r *Recorder) dropRound() {
	if r.round == nil {
		return
	}
	if r.round.call != nil {
		r.takeIn(<-r.called)
	}
	r.round = nil
	r.leases.release()
}

// The bulk's calls are sized so that each takes about bulkBudget, as the last ones
// did per run: an urgent write (a cancelled run's end) waits for one of them at
// most, however busy the store and the cores are, where it waits at all (a run's
// own write waits for the call in flight that carries its events; a store with
// one writer, as SQLite, runs the urgent write once the call's transaction is
// committed). Each carries the events of
// minBulkRuns runs at least, so that a slow store still gets the events of many runs
// per transaction, and bulkRuns at most.
//
// Measured with kern-load (1,000 streams at a word per 60 ms, SQLite, 2 busy
// cores): with calls of 128 runs always, cancel p99 under load was 12-45 ms (a
// call in flight took 6 ms at p50, 100-200 ms when the cores were busy).
const (
	bulkBudget  = time.Millisecond
	minBulkRuns = 8
	bulkRuns    = 128
)

// renewRuns bounds the runs whose leases one write renews, so that an urgent write
// waits for little (a renewal costs less per run than a write of events).
const renewRuns = 256

// BulkLimiter is a Store that bounds the runs whose events one call of a
// Recorder's bulk carries (see bulkSize), below bulkRuns: a store with one
// writer (SQLite) commits a run's end only once the call in flight is committed,
// and keeps that wait short.
type BulkLimiter interface {
	// BulkRuns returns the most runs one call of the bulk carries (minBulkRuns at
	// least).
	BulkRuns() int
}

// bulkSize returns how many runs the next call of the bulk carries: as many as
// take bulkBudget, or four times what any call costs if more (a store across the
// network, whose round trip is most of a call's time), at most bulkRuns or what
// the store allows (see BulkLimiter).
func (r *Recorder) bulkSize() int {
	if r.perRun <= 0 {
		return minBulkRuns
	}
	most := int64(bulkRuns)
	if bl, ok := r.store.(BulkLimiter); ok {
		most = min(most, max(int64(bl.BulkRuns()), minBulkRuns))
	}
	budget := max(bulkBudget, 4*r.shortest)
	return int(min(max(int64(budget/r.perRun), minBulkRuns), most))
}

// took takes note that writing the events of n runs took d.
func (r *Recorder) took(d time.Duration, n int) {
	if r.shortest <= 0 || d < r.shortest {
		r.shortest = d
	} else {
		r.shortest += (d - r.shortest) / 64
	}
	per := d / time.Duration(n)
	if r.perRun <= 0 {
		r.perRun = per
		return
	}
	r.perRun += (per - r.perRun) / 4
}

// urgent writes the records of the runs of live that began, answering their
// Begins, then the events of the runs whose End or Checkpoint waits, and their final
// state or checkpoint.
func (r *Recorder) urgent(ctx context.Context, live []*recording) {
	r.hot = r.table.urgent(r.hot[:0], live)
	if len(r.hot) == 0 {
		r.failed(r.writer.create(ctx, live))
		r.begun(live)
		return
	}
	// At the same time, so that a store that groups concurrent writes commits
	// them together: the records (of runs not created) and the events of the
	// runs due (created) are of different runs, and the writer's state that each
	// uses is its own (see eventWriter).
	var created chan []failure
	if slices.ContainsFunc(live, func(rc *recording) bool { return !rc.created && rc.dead == nil }) {
		created = make(chan []failure, 1)
		go func() { created <- r.writer.create(ctx, live) }()
	}
	var appended []failure
	hot := r.hot
	ew, folds := r.store.(EndWriter)
	if folds {
		// The events and the ends (or checkpoints) in one write.
		r.writeHot(ctx, ew, hot)
	} else {
		appended, _ = r.writer.appendEvents(ctx, hot)
	}
	if created != nil {
		r.failed(<-created)
	}
	r.begun(live)
	if !folds {
		r.failed(appended)
		r.writeDue(ctx, hot)
	}
	clear(r.hot)
}

// settle gives up on the runs whose lease lapsed while their writes failed, answers
// the runs given up on that ended or checkpoint, and returns the others.
func (r *Recorder) settle(live []*recording) []*recording {
	now := r.leases.clock.Now()
	return slices.DeleteFunc(live, func(rc *recording) bool {
		switch {
		case rc.dead != nil:
			r.table.answer(rc, rc.dead)
			if r.table.isEnding(rc) {
				r.table.finish(rc, rc.dead)
			}
		case r.leases.lapsed(rc, now):
			r.giveUp(rc, rc.err)
		default:
			return false
		}
		return true
	})
}

// failed takes note of writes that failed: for each, the recorder gives up on the
// run at once if the store refused the write for good, and otherwise tries it again
// on a later flush.
func (r *Recorder) failed(fs []failure) {
	for _, f := range fs {
		r.fail(f.rc, f.err)
	}
}

func (r *Recorder) fail(rc *recording, err error) {
	if rc.begin != nil {
		r.failBegin(rc, err)
		return
	}
	var ue *UnavailableError
	lasting := errors.As(err, &ue) && ue.Lasting
	if refused(err) || lasting && r.table.isEnding(rc) {
		r.giveUp(rc, err)
		return
	}
	if lasting {
		// A full disk does not clear in the moments a retry waits: the run's
		// checkpoints learn it now, and the run decides. Its events are tried
		// again while its lease lasts.
		r.table.answer(rc, fmt.Errorf("store: %w", ue))
	}
	rc.err = err
	r.failing = true
}

// failBegin takes note that the record of a run whose Begin waits could not be
// written: the run does not start if the store refused it or cannot take writes
// now, or once its lease lapsed; otherwise the record is tried again.
func (r *Recorder) failBegin(rc *recording, err error) {
	r.failing = true
	if !refused(err) && !errors.Is(err, ErrUnavailable) && !r.leases.clock.Now().After(rc.lease) {
		return
	}
	// Nothing of the run is stored (a record whose write failed as far as the
	// recorder can tell may be: its lease lapses and recovery ends it).
	rc.dead = err
	r.table.drop(rc)
	rc.begin.done <- err
	rc.begin = nil
}

// begun answers the Begins of the runs whose record is now stored.
func (r *Recorder) begun(live []*recording) {
	for _, rc := range live {
		if rc.begin != nil && rc.created {
			rc.begin.done <- nil
			rc.begin = nil // the recorder keeps no copy of the record
		}
	}
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
	rc.disown(err)
	r.table.answer(rc, err)
	if r.table.isEnding(rc) {
		r.table.finish(rc, err)
		return
	}
	// Its End, later, learns err at once: see settle.
	if errors.Is(err, ErrTakenOver) {
		engine.EntryOf(rc.x).CancelCause(ReasonTakenOver, err)
		return
	}
	engine.EntryOf(rc.x).Fail(err)
}

// writeDue writes the ends and the checkpoints due (see eventWriter.writeDue), and
// answers them: a run whose end is written finishes, a checkpoint written or
// refused is answered, the others are tried again on a later flush.
func (r *Recorder) writeDue(ctx context.Context, live []*recording) {
	ends, cks := r.table.due(live)
	if len(ends) == 0 && len(cks) == 0 {
		return
	}
	endErrs, ckErrs := r.writer.writeDue(ctx, ends, cks)
	for i, rc := range ends {
		if endErrs[i] != nil {
			r.fail(rc, endErrs[i]) // gives up on a refused end, finishing the run
			continue
		}
		engine.LogOf(rc.x).Durable(rc.persisted) // its terminal event too
		r.table.finish(rc, nil)
	}
	for i, ck := range cks {
		err := ckErrs[i]
		switch {
		case err == nil:
			r.leases.held(ck.rc, ck.rc.leased)
		case refused(err):
			// The run learns it from Checkpoint's error, and decides.
		default:
			r.table.again(ck)
			r.fail(ck.rc, err)
			continue
		}
		ck.tell(err)
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
	return r.table.executes(id)
}
