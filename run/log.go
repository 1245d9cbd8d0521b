package run

import (
	"context"

	"github.com/kern-dev/kern/internal/eventlog"
)

// Log is the read side of a run's event log: the ordered events of one top-level
// run, nested runs' included, numbered as they were emitted. Any number of readers
// follow it from any index, each at its own pace; the run that writes it never waits
// for them. Only kern's runtime writes to a Log.
type Log struct {
	l eventlog.Log[Event]
}

// Len returns the index of the next event: the number of events emitted so far,
// counting from 0 even for a log that starts later (a run that continues a stored
// run, see Resume).
func (l *Log) Len() int { return l.l.Len() }

// Events returns the events emitted so far that the log holds in memory: every
// one, unless the run is recorded (see Held).
func (l *Log) Events() []*Event { return l.l.From(0, nil) }

// From appends to dst the events emitted so far from index from on that the log
// holds in memory (see Held), and returns it.
func (l *Log) From(from int, dst []*Event) []*Event { return l.l.From(from, dst) }

// Held returns the index of the oldest event the log holds in memory. A run that a
// recorder persists keeps in memory only the events not stored yet, its last
// eventlog.Window (12) events and those its Follow readers have not read yet, so
// that a long run costs no more memory than a short one; the events before Held
// are in the store. Until its first reader follows it, such a run keeps every
// event, so that a Stream started just after the run misses none. A run not
// persisted keeps every event: its log is their only copy.
func (l *Log) Held() int { return l.l.Held() }

// Closed reports whether the log was closed: no event will follow.
func (l *Log) Closed() bool { return l.l.Closed() }

// Follow calls fn with each event from index from on, as they are emitted, until the
// log is closed and read to its end (it returns nil), fn returns false (it returns
// nil), or ctx is done (it returns ctx's error). Events must not be modified. The
// events it has not read yet stay in memory; it returns ErrEvicted at once when
// event from was dropped already (see Held).
func (l *Log) Follow(ctx context.Context, from int, fn func(*Event) bool) error {
	return l.l.Follow(ctx, from, fn)
}

// Reserve makes the reader of a Follow from index from now and returns the Follow
// to call later, in any goroutine, exactly once: the events from there on stay in
// memory for it until it reads them, as they do for a Follow begun now.
func (l *Log) Reserve(from int) (follow func(ctx context.Context, fn func(*Event) bool) error, err error) {
	return l.l.Reserve(from)
}

// ErrLost is what FollowDurable returns once the process executing the run lost it:
// its recorder gave up on the run (the store failed for longer than the run's
// lease, or another process took the run over). Nothing the run emits here from
// then on is durable; what follows, if anything, is in the store, written by the
// process that owns the run next.
var ErrLost = eventlog.ErrLost

// ErrEvicted is what a reader of a persisted run's log gets when the events it
// asks for are no longer held in memory (see Log.Held): they are in the store,
// where host.FollowExec reads them.
var ErrEvicted = eventlog.ErrEvicted

// FollowDurable is Follow for a client that must be told only what is durable: for
// a run that a recorder persists, it calls fn with each event once the store has
// acknowledged it, and with the run's terminal event once the run's end is stored;
// it returns ErrLost, and next, the index of the first event fn was not given, once
// the process lost the run (read on from the store then), and ErrEvicted, and next,
// when event next is no longer held in memory (read it from the store, then follow
// again). It keeps nothing in memory for its reader. For a run not persisted it is
// Follow. next is meaningful only with ErrLost and ErrEvicted.
func (l *Log) FollowDurable(ctx context.Context, from int, fn func(*Event) bool) (next int, err error) {
	return l.l.FollowDurable(ctx, from, fn)
}

// Readable returns the index up to which FollowDurable reads now: the events
// before it are durable (all the events emitted, for a run not persisted).
func (l *Log) Readable() int { return l.l.Readable() }

// Lost reports whether the process executing the run lost it (see ErrLost): its
// end here is not the run's; the store says what became of the run.
func (l *Log) Lost() bool { return l.l.Lost() }

// A Waiter is a FollowDurable reader waiting for a quiet run's next durable
// events with no goroutine of its own (see Log.Await). Its zero value is ready to
// use; it must not be copied once used.
type Waiter struct{ w eventlog.Waiter }

// Await arranges for fn to be called once a FollowDurable reader from index from
// would wait no more (an event from there on is durable, or the log is closed,
// lost or no longer persisted), and reports true; it reports false, arranging
// nothing, if such a reader would not wait now or the run is not persisted: follow
// the log then. fn is called with the log's lock held: it must not call the log,
// but may start a goroutine that does. Until Release, the events from index from
// on stay in memory, as for a waiting FollowDurable reader: release w once
// FollowDurable handed the reader its first event. A call drops what an earlier
// one arranged.
func (l *Log) Await(w *Waiter, from int, fn func()) bool { return l.l.Await(&w.w, from, fn) }

// Release drops what Await arranged for w.
func (l *Log) Release(w *Waiter) { l.l.Release(&w.w) }
