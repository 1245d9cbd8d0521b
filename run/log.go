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

// Events returns the events emitted so far.
func (l *Log) Events() []*Event { return l.l.From(0, nil) }

// From appends to dst the events emitted so far from index from on, and returns it.
func (l *Log) From(from int, dst []*Event) []*Event { return l.l.From(from, dst) }

// Closed reports whether the log was closed: no event will follow.
func (l *Log) Closed() bool { return l.l.Closed() }

// Follow calls fn with each event from index from on, as they are emitted, until the
// log is closed and read to its end (it returns nil), fn returns false (it returns
// nil), or ctx is done (it returns ctx's error). Events must not be modified.
func (l *Log) Follow(ctx context.Context, from int, fn func(*Event) bool) error {
	return l.l.Follow(ctx, from, fn)
}
