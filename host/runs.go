package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// Request is a run to start: of which workflow or agent, on what input, in which
// session.
type Request struct {
	Kind      run.Kind // run.KindWorkflow, run.KindAgent or run.KindTeam
	Component string   // the workflow's or agent's id
	Input     string
	RunID     string // a new id if empty
	SessionID string
	UserID    string
	// Parent is the caller's span (the traceparent of the HTTP request that asked
	// for the run): the run's span is its child when the host has telemetry. A
	// background run keeps it in the queue.
	Parent trace.SpanContext
	// Options are more options of the run (agent.WithAttachments), after the
	// host's own. A background run's are not stored: it runs without them if
	// another process takes it.
	Options []run.Option
	// Unread says that no caller reads the run's events from its start (it is
	// waited for, or its clients follow it with FollowExec): the run's log keeps
	// only a window of its events from the start (see run.Log.Held), instead of
	// all of them until its first reader follows it. Background runs are so.
	Unread bool
}

// Run is a run this host started or queued.
type Run struct {
	id         string
	comp       *component
	input      string
	opts       []run.Option
	background bool
	unread     bool   // see Request.Unread
	sessionID  string // the run's identity (see identity), with id, comp and input
	userID     string
	createdAt  int64 // Unix seconds: when the run was asked for
	// given: the id was not made by this host (a caller's, a queued or left-behind
	// run's), so a cancel intent may be stored for it already.
	given bool
	// counted: the run holds one of Options.MaxRuns's places until it ends
	// (guarded by the host's mu).
	counted bool

	trace    *traced           // the run's trace, until it starts (then nil)
	span     trace.SpanContext // the run's span, once started with telemetry on
	queuedAt time.Time         // when a background run was queued (zero: not known)

	claimed atomic.Bool // the run was taken to be started, by a worker or a cancel
	taken   atomic.Bool // paused in memory (no store), it was taken to be continued or cancelled
	// cancelAsked is the reason of the first cancel asked of the run here: should
	// the run pause as the cancel comes, its stored pause is cancelled (watch).
	cancelAsked atomic.Pointer[string]
	started     chan struct{} // closed once x or err is set
	x           *run.Exec
	err         error // why the run could not start
}

// ID returns the run's id.
func (r *Run) ID() string { return r.id }

// Kind returns what runs: a workflow or an agent.
func (r *Run) Kind() run.Kind { return r.comp.kind }

// Component returns the id of the workflow or agent that runs.
func (r *Run) Component() string { return r.comp.id }

// Background reports whether the run was queued as a background run.
func (r *Run) Background() bool { return r.background }

// Started is closed once the run has started, or could not start (see Err).
func (r *Run) Started() <-chan struct{} { return r.started }

// Exec returns the run's execution once it has started, or nil while it is queued
// or if it could not start.
func (r *Run) Exec() *run.Exec {
	select {
	case <-r.started:
		return r.x
	default:
		return nil
	}
}

// Err returns why the run could not start, once Started is closed.
func (r *Run) Err() error {
	select {
	case <-r.started:
		return r.err
	default:
		return nil
	}
}

// Output returns what is known of the run now: all of it once it has ended, its
// identity (and status) while it runs or is queued.
func (r *Run) Output() *run.Output {
	select {
	case <-r.started:
	default:
		return r.identity()
	}
	if r.err != nil {
		out := r.identity()
		out.Status, out.Error = run.StatusError, r.err.Error()
		return out
	}
	if r.x.Log.Closed() {
		// The output is complete once the terminal event is out and the log closed
		// (the log's lock orders the run's last writes before this read).
		out := *r.x.Output()
		return &out
	}
	out := r.identity()
	out.Status = run.StatusRunning // while the run executes only its identity may be read
	return out
}

// identity returns a new output of the run's identity, PENDING: what is answered
// while it is queued. It is made when asked for rather than kept, as the run's
// own output holds it once the run starts.
func (r *Run) identity() *run.Output {
	out := &run.Output{RunID: r.id, SessionID: r.sessionID, UserID: r.userID, Status: run.StatusPending,
		Input: r.input, CreatedAt: r.createdAt}
	switch c := r.comp; c.kind {
	case run.KindWorkflow:
		out.WorkflowID, out.WorkflowName = c.id, c.wf.Name
	case run.KindTeam:
		out.TeamID, out.TeamName = c.id, c.team.Name
	default:
		out.AgentID, out.AgentName = c.id, c.agent.Name
	}
	return out
}

// Wait waits until the run has ended (or could not start), or ctx is done, and
// returns its output as Output does.
func (r *Run) Wait(ctx context.Context) (*run.Output, error) {
	select {
	case <-r.started:
	case <-ctx.Done():
		return r.Output(), ctx.Err()
	}
	if r.x != nil {
		select {
		case <-r.x.Done():
		case <-ctx.Done():
			return r.Output(), ctx.Err()
		}
	}
	return r.Output(), nil
}

// Result waits until r has ended (or could not start), or ctx is done, and returns
// its output as its clients must hear it: Wait's, or, for a run this process lost
// (its recorder gave up on it: see FollowExec), the output stored by whoever owned
// the run next, once its end is stored. It returns ctx's error if ctx is done
// first, and the store's if it cannot read the stored end.
func (h *Host) Result(ctx context.Context, r *Run) (*run.Output, error) {
	out, err := r.Wait(ctx)
	if err != nil || r.x == nil || h.store == nil || !r.x.Log.Lost() {
		return out, err
	}
	st, rec := h.waitStored(ctx, r.id, run.StatusRunning)
	if !st.Terminal() {
		return out, ctx.Err()
	}
	if rec == nil {
		return out, fmt.Errorf("host: the end of run %s: not read", r.id)
	}
	stored := rec.Output
	return &stored, nil
}

func (r *Run) claim() bool { return r.claimed.CompareAndSwap(false, true) }

// newRun returns the run req asks for, of component c.
func newRun(c *component, req Request, background bool) *Run {
	r := &Run{id: req.RunID, comp: c, input: req.Input, background: background, unread: background || req.Unread, started: make(chan struct{}),
		opts:      append([]run.Option{run.WithID(req.RunID), run.WithSessionID(req.SessionID), run.WithUserID(req.UserID)}, req.Options...),
		sessionID: req.SessionID, userID: req.UserID, createdAt: time.Now().Unix()}
	r.trace = &traced{parent: req.Parent}
	if background {
		r.queuedAt = time.Now()
	}
	return r
}

// prepare returns the run req asks for, a new id given to it if it has none.
func (h *Host) prepare(req Request, background bool) (*Run, error) {
	c := h.component(req.Kind, req.Component)
	if c == nil {
		return nil, fmt.Errorf("%w: %s %q", ErrUnknownComponent, req.Kind, req.Component)
	}
	given := req.RunID != ""
	if !given {
		req.RunID = run.NewID() // no process can have stored a cancel for it
	}
	r := newRun(c, req, background)
	r.given = given
	return r, nil
}

// Start starts a run now, in this process, and returns it: read its events from
// Exec once Start returns. The run goes on until it ends, is cancelled, or the
// host shuts down, whoever reads it. It fails with ErrClosed once the host is
// shutting down, ErrBusy when Options.MaxRuns runs of Start execute already,
// ErrUnknownComponent, or the run's own error (run.ErrInvalid,
// run.ErrDuplicateID, the recorder's). A run given its id (req.RunID) that was
// cancelled before it started, in any process, ends CANCELLED at once; when the
// store cannot tell whether it was, the run does not start.
func (h *Host) Start(req Request) (*Run, error) {
	r, err := h.prepare(req, false)
	if err != nil {
		return nil, err
	}
	if err := h.register(r, true); err != nil {
		return nil, err
	}
	if err := h.startNow(r); err != nil {
		return nil, err
	}
	return r, nil
}

// register adds r to the live runs, unless the host is shutting down or, when
// admit is set, executes Options.MaxRuns counted runs already; with admit r is
// counted until it ends (see release).
func (h *Host) register(r *Run, admit bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return ErrClosed
	}
	if admit {
		// The count is kept under the lock Start takes anyway: admission costs
		// Start one comparison and one increment.
		if limit := h.opts.MaxRuns; limit > 0 && h.started >= limit {
			return fmt.Errorf("%w: %d runs executing (max runs %d)", ErrBusy, h.started, limit)
		}
		h.started++
		r.counted = true
	}
	h.live[r.id] = r
	return nil
}

// release gives back r's place among the counted runs, if it holds one. h.mu must
// be held.
func (h *Host) release(r *Run) {
	if r.counted {
		r.counted = false
		h.started--
	}
}

// startNow starts a registered run, unless a cancel took it first (see dequeue):
// then it waits for that start. A run refused because the host is shutting down
// is left unclaimed.
func (h *Host) startNow(r *Run) error {
	h.mu.Lock()
	if h.closing {
		delete(h.live, r.id)
		h.release(r)
		h.mu.Unlock()
		return ErrClosed
	}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()
	if !r.claim() {
		<-r.started
		return r.err
	}
	return h.begin(h.runCtx, r)
}

// begin starts r's run with ctx and watches it until it ends. r must be claimed.
func (h *Host) begin(ctx context.Context, r *Run) error {
	var x *run.Exec
	err := h.readIntent(ctx, r)
	ctx, opts, tr := h.traceBegin(ctx, r)
	r.trace = nil // read before the start only: not kept for as long as the run
	if err == nil {
		x, err = r.comp.start(ctx, r.input, opts...)
	}
	r.opts = nil // used to start the run only: not kept for as long as it runs
	r.x, r.err, r.span = x, err, tr.SpanContext()
	if err == nil {
		tr.Follow(x) // before the run's other readers, who may let its log drop events
	}
	if err == nil && r.unread {
		// No caller streams it from its start: its log keeps only its window
		// (clients that resume read older events from the store).
		engine.LogOf(x).Unpin()
	}
	close(r.started)
	if err != nil {
		tr.Fail(err)
		level := slog.LevelWarn
		if errors.Is(err, store.ErrUnavailable) { // a full disk, a server down: the operator's to fix
			level = slog.LevelError
		}
		h.log.Log(ctx, level, "host: run could not start", "run_id", r.id, "component", r.comp.id, "err", err)
		h.mu.Lock()
		delete(h.live, r.id)
		h.release(r)
		h.mu.Unlock()
		return err
	}
	h.wg.Add(1)
	engine.AfterDone(x, func() { h.watch(r) })
	return nil
}

// intentReadTimeout bounds the read of a run's stored cancel intent before it starts.
const intentReadTimeout = 10 * time.Second

// errIntentUnread: the store could not say whether a run about to start was
// cancelled, so it does not start (it could reverse a cancel).
var errIntentUnread = errors.New("cancel intent could not be read")

// readIntent keeps in r's registry the cancel intent the store holds for r, if
// any, so that r ends CANCELLED as it starts: the intent of a cancel stored before
// this host held the run (by another process, before a Start with the caller's
// id, while the run was queued or its process dying), which the listener may not
// have delivered yet. A run whose id this host made cannot have one: no read is
// paid for it.
func (h *Host) readIntent(ctx context.Context, r *Run) error {
	if h.canceller == nil || !r.given || ctx.Err() != nil {
		return nil // a cancelled ctx ends the run CANCELLED anyway
	}
	ctx, cancel := context.WithTimeout(ctx, intentReadTimeout)
	defer cancel()
	reason, ok, err := h.canceller.PendingCancel(ctx, r.id)
	if err != nil {
		return fmt.Errorf("host: run %s: %w: %w", r.id, errIntentUnread, err)
	}
	if ok {
		r.comp.registry.RequestCancel(r.id, reason)
	}
	return nil
}

// beginCancelled starts a claimed run on a cancelled context, so that it ends
// CANCELLED at once and its end is recorded.
func (h *Host) beginCancelled(r *Run, reason string) error {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New(reason))
	return h.begin(ctx, r)
}

// watch forgets r once its run has ended (or keeps it in memory when there is
// no store to read it back from). It is called as the run ends, on its
// goroutine: a thousand live runs cost no thousand goroutines waiting for them.
func (h *Host) watch(r *Run) {
	defer h.wg.Done()
	h.logNotStored(r)
	if reason := r.cancelAsked.Load(); reason != nil && h.store != nil && paused(r) && r.x.PersistErr() == nil {
		// It paused as a cancel came, too late to stop it: the cancel ends the
		// stored pause, lest a later continue reverse it.
		ctx, cancel := context.WithTimeout(context.Background(), intentReadTimeout)
		if _, err := h.cancelPaused(ctx, r.id, *reason); err != nil {
			h.log.Error("host: a run paused as it was cancelled; its pause could not be cancelled", "run_id", r.id, "err", err)
		}
		cancel()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.release(r)
	if h.live[r.id] == r {
		delete(h.live, r.id)
	}
	if h.store == nil {
		h.recent = append(h.recent, r)
		if n := len(h.recent) - h.opts.KeepRuns; n > 0 {
			clear(h.recent[:n])
			h.recent = h.recent[n:]
		}
	}
}

// logNotStored reports, once, a run whose end could not be stored, with why: a
// full disk or a store down is said at once, not only by the recovery that later
// takes the run over. A run another replica took over goes on there.
func (h *Host) logNotStored(r *Run) {
	err := r.x.PersistErr()
	if err == nil {
		return
	}
	level := slog.LevelError
	if errors.Is(err, store.ErrTakenOver) {
		level = slog.LevelWarn
	}
	out := r.x.Output()
	h.log.Log(r.logCtx(), level, "host: the end of a run was not stored", "run_id", r.id,
		"component", r.comp.id, "status", out.Status, "run_error", out.Error, "err", err)
}

// Lookup returns the run with the given id that this host started or queued and
// still holds (a finished run is held only without a store), or nil.
func (h *Host) Lookup(id string) *Run {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.live[id]; r != nil {
		return r
	}
	for i := len(h.recent) - 1; i >= 0; i-- {
		if h.recent[i].id == id {
			return h.recent[i]
		}
	}
	return nil
}

// Runs returns the runs this host holds (live, queued, and without a store the
// last finished ones), in no particular order.
func (h *Host) Runs() []*Run {
	h.mu.Lock()
	defer h.mu.Unlock()
	all := make([]*Run, 0, len(h.recent)+len(h.live))
	all = append(all, h.recent...)
	for _, r := range h.live {
		all = append(all, r)
	}
	return all
}
