// Package eventlog is the storage of a run's events: an append-only sequence that
// any number of readers follow, each at its own pace, while one run appends to it.
// It is generic in the event type only so that package run, which owns the event
// type, can hold a log without importing kern's engine, which writes it.
package eventlog

import (
	"context"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Events live in segments that never move, so a reader can keep a pointer to one and
// a streamed chunk costs no allocation of its own. Segment k holds firstSegment<<k
// events: short runs allocate little, long ones allocate rarely.
const firstSegment = 8

// locate returns the segment and the offset in it of event i.
func locate(i int) (seg, off int) {
	seg = bits.Len(uint(i/firstSegment+1)) - 1
	return seg, i - firstSegment*(1<<seg-1)
}

// Log is the ordered event sequence of one top-level run, nested runs' events
// included. It numbers events as they are emitted and lets any number of readers
// follow it from any index, each at its own pace; emitting never waits for a reader.
//
// Once stopped (the run was cancelled), a Log accepts only terminal events, so nothing
// a run produces after its cancel appears in its stream. The zero value is ready to use.
type Log[E any] struct {
	mu       sync.Mutex
	segments [][]E
	first    int          // index of the log's first event (see StartAt)
	n        int          // index of the next event
	emitted  atomic.Int64 // n, readable without the lock by readers about to wait
	stopped  bool
	closed   bool
	waiting  []chan struct{} // readers waiting for the next event

	// The wall clock at the first event, read once: later events add the monotonic
	// time since, which costs half as much as reading the wall clock again.
	clockOnce sync.Once
	start     time.Time
	startNano int64
}

// Now returns the Unix second to stamp an event emitted now with.
func (l *Log[E]) Now() int64 {
	l.clockOnce.Do(func() {
		l.start = time.Now()
		l.startNano = l.start.UnixNano()
	})
	return (l.startNano + int64(time.Since(l.start))) / int64(time.Second)
}

// Emit appends a copy of ev, having set *index (ev's own index field) to the event's
// index, and *created (ev's own time field) to Now when it is zero. It reports false,
// and drops the event, when the log is stopped and the event is not terminal, or
// closed. ev itself is not retained.
func (l *Log[E]) Emit(ev *E, index *int, created *int64, terminal bool) bool {
	if *created == 0 {
		*created = l.Now()
	}
	l.mu.Lock()
	if l.closed || (l.stopped && !terminal) {
		l.mu.Unlock()
		return false
	}
	seg, off := locate(l.n - l.first)
	if seg == len(l.segments) {
		l.segments = append(l.segments, make([]E, firstSegment<<seg))
	}
	*index = l.n
	l.segments[seg][off] = *ev
	l.n++
	l.emitted.Store(int64(l.n))
	l.wakeLocked()
	l.mu.Unlock()
	return true
}

func (l *Log[E]) wakeLocked() {
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
func (l *Log[E]) Stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}

// Close ends the log: readers return once they have read every event.
func (l *Log[E]) Close() {
	l.mu.Lock()
	l.closed = true
	l.wakeLocked()
	l.mu.Unlock()
}

// StartAt numbers the log's events from index first on: a run that continues a
// stored run goes on from the index after its stored events. It must
// be called before the first event; the log holds no event before first.
func (l *Log[E]) StartAt(first int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == l.first {
		l.first, l.n = first, first
		l.emitted.Store(int64(first))
	}
}

// Len returns the index of the next event: the number of events emitted so far,
// counting from 0 even for a log that starts later (StartAt).
func (l *Log[E]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// Events returns the events emitted so far.
func (l *Log[E]) Events() []*E { return l.From(0, nil) }

// From appends to dst the events emitted so far from index from on, and returns it.
func (l *Log[E]) From(from int, dst []*E) []*E {
	l.mu.Lock()
	segs, n, first := l.segments, l.n, l.first
	l.mu.Unlock()
	for i := max(from, first); i < n; i++ {
		seg, off := locate(i - first)
		dst = append(dst, &segs[seg][off])
	}
	return dst
}

// Closed reports whether the log was closed: no event will follow.
func (l *Log[E]) Closed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Follow calls fn with each event from index from on, as they are emitted, until the
// log is closed and read to its end (it returns nil), fn returns false (it returns
// nil), or ctx is done (it returns ctx's error). Events must not be modified.
func (l *Log[E]) Follow(ctx context.Context, from int, fn func(*E) bool) error {
	l.mu.Lock()
	from = max(from, l.first)
	l.mu.Unlock()
	var wake chan struct{}
	for {
		l.mu.Lock()
		if from < l.n {
			// Emitted events are never written again and segments never move, so
			// they can be read without the lock.
			segs, n, first := l.segments, l.n, l.first
			l.mu.Unlock()
			for ; from < n; from++ {
				seg, off := locate(from - first)
				if !fn(&segs[seg][off]) {
					return nil
				}
			}
			continue
		}
		if l.closed {
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		if l.spin(from) {
			continue
		}
		l.mu.Lock()
		if from < l.n || l.closed {
			l.mu.Unlock()
			continue
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

// spin waits a little for event from without parking, and reports whether it came.
// A run that streams fast emits its next event within a microsecond; parking the
// reader and waking it again would cost a thread wake-up each time.
func (l *Log[E]) spin(from int) bool {
	for range 32 {
		if l.emitted.Load() > int64(from) {
			return true
		}
		runtime.Gosched()
	}
	return false
}

func (l *Log[E]) unwait(wake chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, ch := range l.waiting {
		if ch == wake {
			l.waiting = append(l.waiting[:i], l.waiting[i+1:]...)
			return
		}
	}
}
