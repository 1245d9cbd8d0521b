// Package eventlog is the storage of a run's events: an append-only sequence that
// any number of readers follow, each at its own pace, while one run appends to it.
// It is generic in the event type only so that package run, which owns the event
// type, can hold a log without importing kern's engine, which writes it.
package eventlog

import (
	"context"
	"errors"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Events live in segments that never move, so a reader can keep a pointer to one and
// a streamed chunk costs no allocation of its own. Segment k holds firstSegment<<k
// events: short runs allocate little, long ones allocate rarely. A recorded run's
// log stops its segments growing at segment trackedCap-1: all of firstSegment
// events, so that the whole segments it drops as its window moves (see Window)
// leave little more than the window in memory. Two events a segment (256 bytes of
// run.Event): a log of a run that streams holds the window, a partly dropped
// segment before it and the segment being filled, 12-13 durable events (four a
// segment: 12-15, ~200 bytes more a stream at 1,000 streams; eight: ~2.4 KiB).
const (
	firstSegment = 2
	trackedCap   = 1
)

// Window is how many of its most recent events a recorded run's log keeps in
// memory once the store holds them (see Log.Track): a client that resumes within
// it, or a reader that falls that far behind, is served from memory; one from
// further back reads the store. Whole segments are dropped, so a log holds at most
// Window+firstSegment<<(trackedCap-1) durable events, and every event not durable yet.
const Window = 12

// locate returns the segment and the offset in it of event i (counted from the
// log's first index), in a log whose segments stop growing at segment capAt-1
// (capAt 0: they never stop).
func locate(i, capAt int) (seg, off int) {
	if capAt > 0 {
		c := capAt - 1
		if start := firstSegment * (1<<c - 1); i >= start {
			j := i - start
			return c + j/(firstSegment<<c), j % (firstSegment << c)
		}
	}
	seg = bits.Len(uint(i/firstSegment+1)) - 1
	return seg, i - firstSegment*(1<<seg-1)
}

// segmentStart returns the index of segment seg's first event.
func segmentStart(seg, capAt int) int {
	if c := capAt - 1; capAt > 0 && seg >= c {
		return firstSegment*(1<<c-1) + (seg-c)*firstSegment<<c
	}
	return firstSegment * (1<<seg - 1)
}

// segmentLen returns how many events segment seg holds.
func segmentLen(seg, capAt int) int {
	if capAt > 0 {
		seg = min(seg, capAt-1)
	}
	return firstSegment << seg
}

// Log is the ordered event sequence of one top-level run, nested runs' events
// included. It numbers events as they are emitted and lets any number of readers
// follow it from any index, each at its own pace; emitting never waits for a reader.
//
// Once stopped (the run was cancelled), a Log accepts only terminal events, so nothing
// a run produces after its cancel appears in its stream. The zero value is ready to use.
//
// A log whose run is recorded (Track) also keeps a durable watermark: the index up
// to which a store acknowledged the events, which the recorder advances (Durable).
// FollowDurable reads no further than it, so that a client is told only what the
// store holds; once the recorder gives up on the run (Lose), such readers stop at
// the watermark and learn ErrLost: what follows, if anything, is in the store, from
// whichever process owns the run next.
//
// A recorded run's log keeps in memory only what it must: the events not durable
// yet, the last Window events, and those a Follow reader has not read yet (a
// Follow reader is never left behind). Older events are dropped as the watermark
// passes them, so that memory stays flat however long the run. Until the run's
// first reader follows it (or Unpin says none will come), the log keeps every
// event, so that the run's first reader, which may start a little after the run,
// misses none. A FollowDurable reader, or a Follow that starts, before the oldest
// event held gets ErrEvicted: it reads those events from the store. A log that is
// not tracked (a run without a store) keeps every event: it is the only copy.
type Log[E any] struct {
	mu       sync.Mutex
	segments [][]E        // segments[0] is segment base; a new slice when segments are dropped
	capAt    int          // segments stop growing at segment capAt-1; 0: never (see locate)
	base     int          // the number of segments dropped
	held     int          // index of the first event held: segment base's first
	first    int          // index of the log's first event (see StartAt)
	n        int          // index of the next event
	emitted  atomic.Int64 // n, readable without the lock by readers about to wait
	stopped  bool
	closed   bool
	waiting  []chan struct{} // readers waiting for the next event

	// The durable watermark, for a tracked log: events before index durable are
	// acknowledged by the store. lost: the recorder gave up on the run, and the
	// watermark moves no more. durableWaiting are the FollowDurable readers
	// waiting for the watermark: woken once per write of the store, not per event.
	tracked        atomic.Bool // written with the lock held
	lost           bool
	durable        atomic.Int64
	durableWaiting []chan struct{}
	awaiting       []*Waiter // the Waiters waiting for the watermark (see Await)
	// kick, once armed (Arm), is signalled by the next Emit: the recorder writes
	// an event emitted while it is idle at once, not at its next tick.
	kick  chan<- struct{}
	armed atomic.Bool

	// What a tracked log may not drop: every event from each Follow reader's
	// position on, and each waiting FollowDurable reader's, and, until unpinned
	// (the first reader came, or Unpin), every event.
	pins     []*pin
	unpinned bool

	// The wall clock at the first event, read once: later events add the monotonic
	// time since, which costs half as much as reading the wall clock again.
	clockOnce sync.Once
	start     time.Time
	startNano int64
}

// pin is the position of a reader of a tracked log, written with the lock held:
// the events from it on stay in memory.
type pin struct{ at int }

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
	seg, off := locate(l.n-l.first, l.capAt)
	if seg -= l.base; seg == len(l.segments) {
		l.segments = append(l.segments, make([]E, segmentLen(seg+l.base, l.capAt)))
	}
	*index = l.n
	l.segments[seg][off] = *ev
	l.n++
	l.emitted.Store(int64(l.n))
	l.wakeLocked()
	l.mu.Unlock()
	if l.armed.Load() && l.armed.Swap(false) {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// view is what a reader reads the log's events through, outside the lock: the
// segments as they were when it took the view (dropped ones included).
type view[E any] struct {
	segs               [][]E
	base, first, capAt int
}

func (l *Log[E]) viewLocked() view[E] {
	return view[E]{l.segments, l.base, l.first, l.capAt}
}

// at returns event i.
func (v *view[E]) at(i int) *E {
	seg, off := locate(i-v.first, v.capAt)
	return &v.segs[seg-v.base][off]
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
	l.wakeDurableLocked()
	l.mu.Unlock()
}

// ErrLost is what FollowDurable returns when the run's recorder gave up on the run
// (its lease lapsed while the store failed, or another process took it over): no
// event after the watermark will be made durable by this process.
var ErrLost = errors.New("the run's events are no longer made durable here")

// ErrEvicted is what a reader of a recorded run's log gets when the events it asks
// for are no longer held in memory (see Log): they are in the store.
var ErrEvicted = errors.New("the run's events from this index on are no longer in memory: read them from the store")

// Track gives the log a durable watermark, at the log's first index: from now on
// FollowDurable reads only the events Durable acknowledged, and the log drops the
// durable events outside its window (see Log). kick, if not nil, is signalled by
// the first event emitted after each Arm. Track must be called before the first
// event and before any reader follows the log (a recorder calls it as the run
// begins).
func (l *Log[E]) Track(kick chan<- struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.tracked.Load() {
		l.durable.Store(int64(l.first))
		if l.n == l.first {
			l.capAt = trackedCap
		}
		l.kick = kick
		l.tracked.Store(true)
		l.armed.Store(kick != nil)
	}
}

// Arm makes the next event emitted signal the kick given to Track.
func (l *Log[E]) Arm() {
	if l.kick != nil {
		l.armed.Store(true)
	}
}

// Unpin tells a tracked log that the run's first reader will not come (the run
// executes in the background): from now on it drops what its window left, as it
// does once a reader follows it.
func (l *Log[E]) Unpin() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unpinned = true
	l.trimLocked()
}

// Durable advances the watermark: the events before index n are durable. A lower
// n, or a log lost or not tracked, changes nothing.
func (l *Log[E]) Durable(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.tracked.Load() || l.lost || int64(n) <= l.durable.Load() {
		return
	}
	l.durable.Store(int64(min(n, l.n)))
	l.wakeDurableLocked()
	l.trimLocked()
}

// trimLocked drops the segments of a tracked log that hold only events it no
// longer needs: durable, outside the window, read by every Follow reader.
func (l *Log[E]) trimLocked() {
	if !l.tracked.Load() || !l.unpinned {
		return
	}
	keep := min(int(l.durable.Load()), l.n-Window)
	for _, p := range l.pins {
		keep = min(keep, p.at)
	}
	drop := 0
	for drop < len(l.segments)-1 && l.first+segmentStart(l.base+drop+1, l.capAt) <= keep {
		drop++
	}
	if drop == 0 {
		return
	}
	// A new slice: readers may still index the old one, outside the lock.
	l.segments = slices.Clone(l.segments[drop:])
	l.base += drop
	l.held = l.first + segmentStart(l.base, l.capAt)
}

// Lose marks the run as given up on by its recorder: the watermark moves no more,
// and FollowDurable readers return ErrLost once they have read up to it.
func (l *Log[E]) Lose() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tracked.Load() && !l.lost {
		l.lost = true
		l.wakeDurableLocked()
	}
}

// Lost reports whether the recorder gave up on the run (see Lose).
func (l *Log[E]) Lost() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// Untrack drops the watermark: FollowDurable reads every event, as Follow does. A
// recorder that gives up on a run nothing of which reached the store (not even its
// record), so that no other process can take it over, lets its own end stand. The
// log drops no event from then on (none was durable, so none was dropped).
func (l *Log[E]) Untrack() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tracked.Load() && !l.lost {
		l.tracked.Store(false)
		l.wakeDurableLocked()
	}
}

// Readable returns the index up to which FollowDurable reads now: the watermark
// of a tracked log, else the index of the next event. It takes no lock.
func (l *Log[E]) Readable() int {
	e := l.emitted.Load()
	if l.tracked.Load() {
		return int(min(l.durable.Load(), e))
	}
	return int(e)
}

// Held returns the index of the oldest event the log holds in memory: its first
// index, unless it is tracked and dropped older events (see Log).
func (l *Log[E]) Held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(l.held, l.first)
}

// FollowDurable is Follow bounded by the durable watermark of a tracked log: it
// calls fn with each event once the store acknowledged it, until the log is closed
// and every event is durable (the run's end stored: it returns nil), fn returns
// false (nil), ctx is done (ctx's error), the recorder gave up on the run
// (ErrLost), or the next event to read was dropped from memory (ErrEvicted): it
// is durable, so in the store. next is the index of the first event not handed to
// fn, from which a reader goes on in the store after ErrLost or ErrEvicted. It
// keeps in memory only what its reader waits for at the watermark: a reader that
// falls behind, its client slow, is not waited for. An untracked log is followed
// as Follow follows it, at no cost more.
func (l *Log[E]) FollowDurable(ctx context.Context, from int, fn func(*E) bool) (next int, err error) {
	if !l.tracked.Load() {
		// Tracking starts before any reader follows: an untracked log stays so.
		return from, l.Follow(ctx, from, fn)
	}
	l.mu.Lock()
	from = max(from, l.first)
	if !l.unpinned {
		l.unpinned = true // the run's first reader: the store has what it drops
	}
	l.mu.Unlock()
	var wake chan struct{}
	// p pins the reader's position while it waits, and until it takes its next
	// view: a write that advances the watermark by more than the window does not
	// drop what the readers it wakes are about to read.
	var p pin
	pinned := false
	unpin := func() {
		if pinned {
			l.unpinLocked(&p)
			pinned = false
		}
	}
	for {
		l.mu.Lock()
		if from < l.held {
			unpin()
			l.mu.Unlock()
			return from, ErrEvicted
		}
		tracked := l.tracked.Load()
		limit := l.n
		if tracked {
			limit = int(l.durable.Load())
		}
		if from < limit {
			// A view: segments dropped meanwhile stay readable through it.
			v := l.viewLocked()
			unpin()
			l.mu.Unlock()
			for ; from < limit; from++ {
				if !fn(v.at(from)) {
					return from + 1, nil
				}
			}
			continue
		}
		switch {
		case tracked && l.lost:
			unpin()
			l.mu.Unlock()
			return from, ErrLost
		case l.closed && from >= l.n:
			unpin()
			l.mu.Unlock()
			return from, nil
		}
		if wake == nil {
			wake = make(chan struct{}, 1)
		}
		// A reader held back by the watermark waits for the store's next write,
		// not for every event emitted meanwhile.
		if tracked {
			l.durableWaiting = append(l.durableWaiting, wake)
			if !pinned {
				p.at, pinned = from, true
				l.pins = append(l.pins, &p)
			}
		} else {
			l.waiting = append(l.waiting, wake)
		}
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			l.unwait(wake)
			l.mu.Lock()
			unpin()
			l.mu.Unlock()
			return from, ctx.Err()
		}
	}
}

func (l *Log[E]) wakeDurableLocked() {
	for i, ch := range l.durableWaiting {
		select {
		case ch <- struct{}{}:
		default:
		}
		l.durableWaiting[i] = nil
	}
	l.durableWaiting = l.durableWaiting[:0]
	for i, w := range l.awaiting {
		l.awaiting[i] = nil
		w.waiting = false
		w.fn()
	}
	l.awaiting = l.awaiting[:0]
}

// A Waiter is a reader of a tracked log that waits for the watermark with no
// goroutine of its own (see Await). Its zero value is ready to use; it must not
// be copied once used.
type Waiter struct {
	p       pin
	pinned  bool   // p is in the log's pins
	waiting bool   // in the log's awaiting
	fn      func() // what to call once it need wait no more
}

// Await arranges for fn to be called once a FollowDurable reader from index from
// would wait no more (an event is durable from there on, or the log is closed,
// lost or untracked), and reports true; it reports false, and arranges nothing,
// if such a reader would not wait now, or the log is not tracked. A reader so
// need not park a goroutine in FollowDurable while its run is quiet: it follows
// the log once Await reports false or fn is called. fn is called with the log's
// lock held: it must not call the log (it may start a goroutine that does).
// Until Release, w pins the events from index from on, as a waiting FollowDurable
// reader does: release it once FollowDurable handed the reader its first event.
// A call drops what an earlier call arranged.
func (l *Log[E]) Await(w *Waiter, from int, fn func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unawaitLocked(w)
	from = max(from, l.first)
	if !l.tracked.Load() || from < l.held {
		l.releaseLocked(w)
		return false
	}
	l.unpinned = true // as FollowDurable's first reader
	w.p.at = from
	if !w.pinned {
		w.pinned = true
		l.pins = append(l.pins, &w.p)
	}
	if from < int(l.durable.Load()) || l.lost || (l.closed && from >= l.n) {
		return false
	}
	w.fn, w.waiting = fn, true
	l.awaiting = append(l.awaiting, w)
	return true
}

// Release drops what Await arranged: w's call, if not made yet, and its pin.
func (l *Log[E]) Release(w *Waiter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unawaitLocked(w)
	l.releaseLocked(w)
}

func (l *Log[E]) unawaitLocked(w *Waiter) {
	if w.waiting {
		w.waiting = false
		if i := slices.Index(l.awaiting, w); i >= 0 {
			l.awaiting = slices.Delete(l.awaiting, i, i+1)
		}
	}
	w.fn = nil
}

func (l *Log[E]) releaseLocked(w *Waiter) {
	if w.pinned {
		w.pinned = false
		l.unpinLocked(&w.p)
	}
}

// StartAt numbers the log's events from index first on: a run that continues a
// stored run goes on from the index after its stored events. It must
// be called before the first event; the log holds no event before first.
func (l *Log[E]) StartAt(first int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == l.first {
		l.first, l.n, l.held = first, first, first
		l.emitted.Store(int64(first))
		if l.tracked.Load() {
			l.durable.Store(int64(first))
		}
	}
}

// Len returns the index of the next event: the number of events emitted so far,
// counting from 0 even for a log that starts later (StartAt).
func (l *Log[E]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// Events returns the events emitted so far that the log holds (see Held).
func (l *Log[E]) Events() []*E { return l.From(0, nil) }

// From appends to dst the events emitted so far from index from on that the log
// holds (from Held on), and returns it.
func (l *Log[E]) From(from int, dst []*E) []*E {
	l.mu.Lock()
	v, n := l.viewLocked(), l.n
	from = max(from, l.first, l.held)
	l.mu.Unlock()
	for i := from; i < n; i++ {
		dst = append(dst, v.at(i))
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
// nil), or ctx is done (it returns ctx's error). Events must not be modified. On a
// tracked log the events it has not read yet stay in memory; it returns ErrEvicted
// at once when event from was dropped already (see Log).
func (l *Log[E]) Follow(ctx context.Context, from int, fn func(*E) bool) error {
	from, p, err := l.reserve(from)
	if err != nil {
		return err
	}
	return l.follow(ctx, from, p, fn)
}

// Reserve makes the reader of a Follow from index from now, so that a tracked log
// keeps the events from there on for it until it reads them, and returns the
// Follow to call later, in any goroutine, exactly once (its return releases
// them). A reader started in a goroutine of its own reserves its place before,
// lest the events it needs be dropped before it comes.
func (l *Log[E]) Reserve(from int) (follow func(ctx context.Context, fn func(*E) bool) error, err error) {
	from, p, err := l.reserve(from)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, fn func(*E) bool) error { return l.follow(ctx, from, p, fn) }, nil
}

// reserve pins a reader's position from on a tracked log (p is nil on another).
func (l *Log[E]) reserve(from int) (int, *pin, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	from = max(from, l.first)
	if !l.tracked.Load() {
		return from, nil, nil
	}
	if from < l.held {
		return from, nil, ErrEvicted
	}
	p := &pin{at: from}
	l.pins = append(l.pins, p)
	l.unpinned = true // the run's first reader holds what it needs itself
	return from, p, nil
}

// follow is Follow for a reader reserved at from (pinned by p, if not nil).
func (l *Log[E]) follow(ctx context.Context, from int, p *pin, fn func(*E) bool) error {
	if p != nil {
		defer l.unpin(p)
	}
	var wake chan struct{}
	spin := true // until a spin fails; again once events come in bursts
	for {
		l.mu.Lock()
		if from < l.n {
			// Emitted events are never written again and segments never move, so
			// they can be read without the lock.
			v, n := l.viewLocked(), l.n
			if p != nil {
				p.at = from
			}
			l.mu.Unlock()
			for ; from < n; from++ {
				if !fn(v.at(from)) {
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
		if spin && l.spin(from) {
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
		if p != nil {
			p.at = from
		}
		l.mu.Unlock()

		select {
		case <-wake:
			// Spin before the next wait only if the run streams fast: more
			// than one event came while this reader was parked.
			spin = l.emitted.Load() > int64(from+1)
		case <-ctx.Done():
			l.unwait(wake)
			return ctx.Err()
		}
	}
}

// unpin drops a reader's pin.
func (l *Log[E]) unpin(p *pin) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unpinLocked(p)
}

// unpinLocked drops a reader's pin, and what only it kept.
func (l *Log[E]) unpinLocked(p *pin) {
	if i := slices.Index(l.pins, p); i >= 0 {
		l.pins = slices.Delete(l.pins, i, i+1)
		l.trimLocked()
	}
}

// spin waits a little for event from without parking, and reports whether it came.
// A run that streams fast emits its next event within a microsecond; parking the
// reader and waking it again would cost a thread wake-up each time. A reader of a
// run that streams slowly (a word every few milliseconds, as models stream to
// clients) stops spinning after its first spin in vain, until a wait ends with
// more than one event ready: a thousand slow streams would otherwise spend a CPU
// on yields.
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
	l.waiting = dropWaiter(l.waiting, wake)
	l.durableWaiting = dropWaiter(l.durableWaiting, wake)
}

func dropWaiter(waiting []chan struct{}, wake chan struct{}) []chan struct{} {
	for i, ch := range waiting {
		if ch == wake {
			return append(waiting[:i], waiting[i+1:]...)
		}
	}
	return waiting
}
