package engine

import (
	"context"
	"sync/atomic"

	"github.com/kern-dev/kern/internal/eventlog"
	"github.com/kern-dev/kern/run"
)

// Log is the write side of a top-level run's event log, whose read side is the
// run's run.Log: the run and the runs nested in it emit their events to it.
//
// Once stopped (the run was cancelled), a Log accepts only terminal events, so
// nothing a run produces after its cancel appears in its stream.
type Log eventlog.Log[run.Event]

func (l *Log) log() *eventlog.Log[run.Event] { return (*eventlog.Log[run.Event])(l) }

// Emit appends a copy of ev, setting its EventIndex (and CreatedAt when zero). It
// reports false, and drops the event, when the log is stopped and ev is not
// terminal, or closed. ev itself is not retained.
func (l *Log) Emit(ev *run.Event) bool {
	return l.log().Emit(ev, &ev.EventIndex, &ev.CreatedAt, ev.Event.Terminal() || ev.Event.Pauses())
}

// Stop makes the log accept only terminal events from now on.
func (l *Log) Stop() { l.log().Stop() }

// Close ends the log: readers return once they have read every event.
func (l *Log) Close() { l.log().Close() }

// StartAt numbers the log's events from index first on: a run that continues a
// stored run (see run.Resume) goes on from the index after its stored events. It
// must be called before the first event; the log holds no event before first.
func (l *Log) StartAt(first int) { l.log().StartAt(first) }

// Len returns the index of the next event.
func (l *Log) Len() int { return l.log().Len() }

// Events returns the events emitted so far.
func (l *Log) Events() []*run.Event { return l.log().From(0, nil) }

// From appends to dst the events emitted so far from index from on, and returns it.
func (l *Log) From(from int, dst []*run.Event) []*run.Event { return l.log().From(from, dst) }

// Closed reports whether the log was closed: no event will follow.
func (l *Log) Closed() bool { return l.log().Closed() }

// Follow calls fn with each event from index from on, as they are emitted; see
// run.Log.Follow.
func (l *Log) Follow(ctx context.Context, from int, fn func(*run.Event) bool) error {
	return l.log().Follow(ctx, from, fn)
}

// AfterDone calls fn once the top-level run x has ended (its Done closed), on the
// run's goroutine as it ends, or at once if it has: whoever must act on a run's
// end needs no goroutine of its own waiting for it.
func AfterDone(x *run.Exec, fn func()) { afterDone(x, fn) }

// LogOf returns the write side of the top-level run x's log.
func LogOf(x *run.Exec) *Log { return (*Log)(logOf(x)) }

// Track gives the log a durable watermark (see run.Log.FollowDurable): a recorder
// calls it as the run begins, before any reader follows the log. kick, if not
// nil, is signalled by the first event emitted after each Arm.
func (l *Log) Track(kick chan<- struct{}) { l.log().Track(kick) }

// Arm makes the next event emitted signal the kick given to Track: a recorder
// that has written what the log holds asks to hear of the next event at once.
func (l *Log) Arm() { l.log().Arm() }

// Unpin tells the log of a persisted run that its first reader will not come
// (the run executes in the background): it drops what its window left from now
// on, as it does once a reader follows it (see run.Log.Held).
func (l *Log) Unpin() { l.log().Unpin() }

// Durable advances the watermark: the events before index n are durable.
func (l *Log) Durable(n int) { l.log().Durable(n) }

// Lose tells the log's durable readers that the run was lost: nothing after the
// watermark will be made durable here (see run.ErrLost).
func (l *Log) Lose() { l.log().Lose() }

// Untrack drops the watermark: durable readers read every event. A recorder that
// gives up on a run of which nothing reached the store lets its own end stand.
func (l *Log) Untrack() { l.log().Untrack() }

// Gate passes a run's events on to a log until the run is cancelled, and from then on
// only its terminal event. A nested run emits through a gate of its own, so that
// cancelling it alone keeps what it produces afterwards out of the shared log.
type Gate struct {
	Log     *Log
	stopped atomic.Bool
}

// Stop closes the gate to all but terminal events.
func (g *Gate) Stop() { g.stopped.Store(true) }

// Emit emits ev to the log unless the gate or the log refuses it; see Log.Emit.
// It is the per-chunk path of every agent: it calls the log's storage directly,
// with no call of Log.Emit between.
func (g *Gate) Emit(ev *run.Event) bool {
	terminal := ev.Event.Terminal()
	if g.stopped.Load() && !terminal {
		return false
	}
	return g.Log.log().Emit(ev, &ev.EventIndex, &ev.CreatedAt, terminal)
}

// Scope is where a nested run executes: the registry its cancel goes through, the log
// of the top-level run that numbers its events, and where its events come from
// (workflow_run_id, the step it runs in, the session).
type Scope struct {
	Registry *run.Registry
	Log      *Log
	Origin   run.Origin
	// Pausable: a run nested here may end PAUSED for a person (an agent in a
	// workflow's top-level step, which then pauses the workflow); elsewhere a run
	// that would pause fails (ErrNestedPause).
	Pausable bool
}

type scopeKey struct{}

// ContextWithScope returns ctx carrying sc, the scope of the run that makes a call
// under ctx (an agent's tool call), so that what the call starts (an agent given as
// a tool) runs as a nested run of that one: its events in sc's log, its cancel
// through sc's registry. sc's Origin.ParentRunID is the calling run's ID.
func ContextWithScope(ctx context.Context, sc *Scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, sc)
}

// ScopeFromContext returns the scope ctx carries (see ContextWithScope).
func ScopeFromContext(ctx context.Context) (*Scope, bool) {
	sc, ok := ctx.Value(scopeKey{}).(*Scope)
	return sc, ok && sc != nil
}
