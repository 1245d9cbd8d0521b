package run

import (
	"context"
	"sync"
	"time"
)

// Log is the ordered event sequence of one top-level run, nested runs' events
// included. It numbers events as they are emitted and lets any number of readers
// follow it from any index, each at its own pace; emitting never waits for a reader.
//
// Once stopped (the run was cancelled), a Log accepts only terminal events, so nothing
// a run produces after its cancel appears in its stream. The zero value is ready to use.
type Log struct {
	mu      sync.Mutex
	events  []*Event
	stopped bool
	closed  bool
	waiting []chan struct{} // readers waiting for the next event
}

// Emit appends ev, setting its EventIndex (and CreatedAt when zero). It reports false,
// and drops ev, when the log is stopped and ev is not terminal, or closed.
func (l *Log) Emit(ev *Event) bool {
	if ev.CreatedAt == 0 {
		ev.CreatedAt = time.Now().Unix()
	}
	l.mu.Lock()
	if l.closed || (l.stopped && !ev.Event.Terminal()) {
		l.mu.Unlock()
		return false
	}
	ev.EventIndex = len(l.events)
	l.events = append(l.events, ev)
	l.wakeLocked()
	l.mu.Unlock()
	return true
}

func (l *Log) wakeLocked() {
	for i, ch := range l.waiting {
		select {
		case ch <- struct{}{}:
		default:
		}
		l.waiting[i] = nil
	}
	l.waiting = l.waiting[:0]
}

// Stop makes the log accept only terminal events from now on.
func (l *Log) Stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}

// Close ends the log: readers return once they have read every event.
func (l *Log) Close() {
	l.mu.Lock()
	l.closed = true
	l.wakeLocked()
	l.mu.Unlock()
}

// Len returns the number of events emitted so far.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// Events returns a copy of the events emitted so far.
func (l *Log) Events() []*Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Event(nil), l.events...)
}

// Follow calls fn with each event from index from on, as they are emitted, until the
// log is closed and read to its end (it returns nil), fn returns false (it returns
// nil), or ctx is done (it returns ctx's error).
func (l *Log) Follow(ctx context.Context, from int, fn func(*Event) bool) error {
	if from < 0 {
		from = 0
	}
	var wake chan struct{}
	for {
		l.mu.Lock()
		if from < len(l.events) {
			// Events are never modified or moved once emitted, and appends write past
			// this slice's length, so it can be read without the lock.
			batch := l.events[from:]
			l.mu.Unlock()
			for _, ev := range batch {
				if !fn(ev) {
					return nil
				}
			}
			from += len(batch)
			continue
		}
		if l.closed {
			l.mu.Unlock()
			return nil
		}
		if wake == nil {
			wake = make(chan struct{}, 1)
		}
		l.waiting = append(l.waiting, wake)
		l.mu.Unlock()

		select {
		case <-wake:
		case <-ctx.Done():
			l.unwait(wake)
			return ctx.Err()
		}
	}
}

func (l *Log) unwait(wake chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, ch := range l.waiting {
		if ch == wake {
			l.waiting = append(l.waiting[:i], l.waiting[i+1:]...)
			return
		}
	}
}
