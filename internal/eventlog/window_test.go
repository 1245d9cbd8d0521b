package eventlog

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
)

const segCap = firstSegment << (trackedCap - 1)

// held returns how many events l holds in memory, counting whole segments.
func held(l *Log[ev]) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for k := range l.segments {
		n += segmentLen(l.base+k, l.capAt)
	}
	return n
}

func TestLocate(t *testing.T) {
	t.Parallel()
	for _, capAt := range []int{0, 1, 2, 3, 4} {
		seg, off := 0, 0
		for i := range 5000 {
			s, o := locate(i, capAt)
			if s != seg || o != off || segmentStart(s, capAt)+o != i {
				t.Fatalf("locate(%d, %d) = %d, %d; want %d, %d", i, capAt, s, o, seg, off)
			}
			if off++; off == segmentLen(seg, capAt) {
				seg, off = seg+1, 0
			}
		}
	}
}

// TestWindow: a recorded run's log drops the durable events outside its window,
// whole segments at a time, once its first reader came (or it was unpinned); it
// keeps what is not durable; a run without a store keeps everything.
func TestWindow(t *testing.T) {
	t.Parallel()
	const n = 1000
	tests := []struct {
		name     string
		track    bool
		unpin    bool
		start    int // StartAt
		durable  int
		wantHeld func(got int) bool
	}{
		{"not recorded: every event kept", false, true, 0, n, func(h int) bool { return h == 0 }},
		{"no reader yet: every event kept", true, false, 0, n, func(h int) bool { return h == 0 }},
		{"all durable: the window kept", true, true, 0, n, func(h int) bool { return h > n-Window-segCap && h <= n-Window }},
		{"continued run: the window kept", true, true, 700, 700 + n, func(h int) bool { return h > 700+n-Window-segCap && h <= 700+n-Window }},
		// 103: not a segment's start, so that some durable events are held to read.
		{"little durable: what is not kept", true, true, 0, 103, func(h int) bool { return h > 103-segCap && h <= 103 }},
		{"nothing durable: everything kept", true, true, 0, 0, func(h int) bool { return h == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var l Log[ev]
			if tt.track {
				l.Track(nil)
			}
			l.StartAt(tt.start)
			if tt.unpin {
				l.Unpin()
			}
			emit(&l, n, false)
			l.Durable(tt.durable)
			h := l.Held()
			if !tt.wantHeld(h) {
				t.Fatalf("Held = %d of %d..%d (durable up to %d)", h, tt.start, tt.start+n, tt.durable)
			}
			if got := held(&l); got < tt.start+n-h || tt.track && got >= tt.start+n-h+segCap {
				t.Errorf("%d events in memory for the %d from %d", got, tt.start+n-h, h)
			}
			var idx []int
			for _, e := range l.Events() {
				idx = append(idx, e.index)
			}
			if !slices.Equal(idx, indexes(h, tt.start+n)) {
				t.Errorf("Events = %d events from %v, want those from %d", len(idx), idx[:1], h)
			}
			if h == tt.start {
				return
			}
			if err := l.Follow(t.Context(), h-1, func(*ev) bool { return true }); !errors.Is(err, ErrEvicted) {
				t.Errorf("Follow from before Held = %v, want ErrEvicted", err)
			}
			if next, err := l.FollowDurable(t.Context(), 0, func(*ev) bool { return true }); !errors.Is(err, ErrEvicted) || next != tt.start {
				t.Errorf("FollowDurable from 0 = %d, %v, want %d, ErrEvicted", next, err, tt.start)
			}
			var got []int
			if _, err := l.FollowDurable(t.Context(), h, func(e *ev) bool {
				got = append(got, e.index)
				return e.index < tt.durable-1
			}); err != nil || !slices.Equal(got, indexes(h, tt.durable)) {
				t.Errorf("FollowDurable from Held read %d events, %v; want %d..%d", len(got), err, h, tt.durable)
			}
		})
	}
}

// TestWindowKeepsWhatAFollowReaderHasNotRead: a Follow reader that lags keeps the
// events it has not read in memory, and reads every one of them.
func TestWindowKeepsWhatAFollowReaderHasNotRead(t *testing.T) {
	t.Parallel()
	var l Log[ev]
	l.Track(nil)
	stall := make(chan struct{})
	reached := make(chan struct{})
	done := make(chan []int, 1)
	go func() {
		var got []int
		_ = l.Follow(t.Context(), 0, func(e *ev) bool {
			if e.index == 5 {
				close(reached)
				<-stall
			}
			got = append(got, e.index)
			return true
		})
		done <- got
	}()
	emit(&l, 10, false)
	<-reached
	emit(&l, 990, false)
	l.Durable(1000)
	if h := l.Held(); h > 5 {
		t.Fatalf("Held = %d while a reader reads event 5", h)
	}
	close(stall)
	emit(&l, 1, true)
	l.Durable(1001)
	l.Close()
	if got := <-done; !slices.Equal(got, indexes(0, 1001)) {
		t.Fatalf("the reader read %d events, want 0..1000 in order", len(got))
	}
	l.Durable(1001)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pins) != 0 {
		t.Errorf("%d pins left after the reader left", len(l.pins))
	}
}

// TestWindowResumeFromTheStore: readers that follow a busy recorded log from any
// index, reading what it dropped from a store (as host.FollowExec does), get every
// event once, in order, whatever the window drops while they read.
func TestWindowResumeFromTheStore(t *testing.T) {
	t.Parallel()
	const n = 5000
	var l Log[ev]
	l.Track(nil)
	var (
		mu     sync.Mutex
		stored []int // the store: the indexes acknowledged, in order
		reads  int   // reads of the store
	)
	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([][]int, 8)
	for r := range got {
		from := r * n / len(got)
		wg.Go(func() {
			next := from
			for {
				var err error
				next, err = l.FollowDurable(ctx, next, func(e *ev) bool {
					got[r] = append(got[r], e.index)
					next = e.index + 1
					return !e.term
				})
				if !errors.Is(err, ErrEvicted) {
					if err != nil {
						t.Error(err)
					}
					return
				}
				// Up to the watermark, as the store is read.
				to := l.Readable()
				mu.Lock()
				reads++
				for ; next < to; next++ {
					got[r] = append(got[r], stored[next])
				}
				mu.Unlock()
			}
		})
	}
	l.Unpin()
	for i := 0; i < n; {
		k := min(1+i%37, n-i)
		emit(&l, k-1, false)
		emit(&l, 1, i+k == n)
		i += k
		mu.Lock()
		stored = append(stored, indexes(i-k, i)...)
		mu.Unlock()
		l.Durable(i)
	}
	l.Close()
	wg.Wait()
	t.Logf("%d reads of the store", reads)
	for r := range got {
		if want := indexes(r*n/len(got), n); !slices.Equal(got[r], want) {
			t.Errorf("reader %d read %d events, want %d in order, once each", r, len(got[r]), len(want))
		}
	}
	if h := held(&l); h > Window+2*segCap {
		t.Errorf("%d events held at the end, want at most the window and its segments", h)
	}
}

// TestWindowKeepsWhatAWaitingReaderIsWokenFor: a store write that makes many more
// events than the window durable at once drops none of those its waiting readers
// are woken to read.
func TestWindowKeepsWhatAWaitingReaderIsWokenFor(t *testing.T) {
	t.Parallel()
	var l Log[ev]
	l.Track(nil)
	emit(&l, 10, false)
	l.Durable(10)
	done := followDurable(t.Context(), &l, 0, 1009)
	for {
		// Parked at the watermark once its pin is in.
		l.mu.Lock()
		parked := len(l.pins) == 1
		l.mu.Unlock()
		if parked {
			break
		}
		runtime.Gosched()
	}
	emit(&l, 1000, false)
	l.Durable(1010)
	if r := <-done; r.err != nil || !slices.Equal(r.got, indexes(0, 1010)) {
		t.Fatalf("the reader read %d events, then %v; want 0..1009", len(r.got), r.err)
	}
	if h := held(&l); h > Window+2*segCap {
		t.Errorf("%d events held once the reader read on, want the window", h)
	}
}
