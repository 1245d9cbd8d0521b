package eventlog

import (
	"context"
	"errors"
	"slices"
	"testing"
)

type ev struct {
	index   int
	created int64
	term    bool
}

func emit(l *Log[ev], n int, terminal bool) {
	for range n {
		e := ev{term: terminal}
		l.Emit(&e, &e.index, &e.created, terminal)
	}
}

// follow runs FollowDurable in a goroutine, sending what it reads; the result
// comes on the returned channel once it returns.
type result struct {
	got  []int
	next int
	err  error
}

func followDurable(ctx context.Context, l *Log[ev], from int, stopAt int) <-chan result {
	done := make(chan result, 1)
	go func() {
		var got []int
		next, err := l.FollowDurable(ctx, from, func(e *ev) bool {
			got = append(got, e.index)
			return e.index != stopAt
		})
		done <- result{got, next, err}
	}()
	return done
}

func indexes(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func TestFollowDurable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		track    bool
		start    int // StartAt
		from     int
		emitted  int            // events emitted (the last one terminal) before the log closes
		then     func(*Log[ev]) // what the recorder does once the reader follows
		stopAt   int
		wantGot  []int
		wantNext int
		wantErr  error
	}{
		{name: "untracked: every event", emitted: 5, then: func(*Log[ev]) {}, stopAt: -1,
			wantGot: indexes(0, 5), wantNext: 0},
		{name: "tracked: up to the watermark, then lost", track: true, emitted: 5,
			then: func(l *Log[ev]) { l.Durable(2); l.Lose() }, stopAt: -1,
			wantGot: indexes(0, 2), wantNext: 2, wantErr: ErrLost},
		{name: "tracked: the end once all is durable", track: true, emitted: 5,
			then: func(l *Log[ev]) { l.Durable(4); l.Durable(3); l.Durable(5) }, stopAt: -1,
			wantGot: indexes(0, 5), wantNext: 5},
		{name: "tracked: lost before anything was durable", track: true, emitted: 5,
			then: func(l *Log[ev]) { l.Lose(); l.Durable(5) }, stopAt: -1,
			wantGot: nil, wantNext: 0, wantErr: ErrLost},
		{name: "tracked: untracked, every event", track: true, emitted: 5,
			then: func(l *Log[ev]) { l.Durable(1); l.Untrack() }, stopAt: -1,
			wantGot: indexes(0, 5), wantNext: 5},
		{name: "tracked, resumed: from the first index", track: true, start: 10, emitted: 3,
			then: func(l *Log[ev]) { l.Durable(12); l.Lose() }, stopAt: -1,
			wantGot: indexes(10, 12), wantNext: 12, wantErr: ErrLost},
		{name: "tracked: the reader stops", track: true, from: 1, emitted: 5,
			then: func(l *Log[ev]) { l.Durable(5) }, stopAt: 2,
			wantGot: []int{1, 2}, wantNext: 3},
		{name: "tracked: a watermark past the events stops at the events", track: true, emitted: 2,
			then: func(l *Log[ev]) { l.Durable(100); l.Lose() }, stopAt: -1,
			wantGot: indexes(0, 2), wantNext: 2, wantErr: ErrLost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var l Log[ev]
			l.StartAt(tt.start)
			if tt.track {
				l.Track(nil)
			}
			emit(&l, tt.emitted-1, false)
			emit(&l, 1, true)
			l.Close()
			done := followDurable(t.Context(), &l, tt.from, tt.stopAt)
			tt.then(&l)
			r := <-done
			if !slices.Equal(r.got, tt.wantGot) || !errors.Is(r.err, tt.wantErr) || (r.err != nil || tt.stopAt >= 0) && r.next != tt.wantNext {
				t.Errorf("FollowDurable read %v, returned %d, %v; want %v, %d, %v",
					r.got, r.next, r.err, tt.wantGot, tt.wantNext, tt.wantErr)
			}
		})
	}
}

// TestFollowDurableWaitsForTheWatermark: a reader at the watermark waits for the
// next write of the store, not for the events emitted meanwhile, and then reads
// on; cancelling its ctx ends the wait.
func TestFollowDurableWaitsForTheWatermark(t *testing.T) {
	t.Parallel()
	var l Log[ev]
	l.Track(nil)
	read := make(chan int, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := l.FollowDurable(ctx, 0, func(e *ev) bool { read <- e.index; return true })
		done <- err
	}()
	emit(&l, 3, false)
	l.Durable(1)
	if got := <-read; got != 0 {
		t.Fatalf("read %d first, want 0", got)
	}
	emit(&l, 2, false)
	l.Durable(4)
	for want := 1; want < 4; want++ {
		if got := <-read; got != want {
			t.Fatalf("read %d, want %d", got, want)
		}
	}
	if got := l.Readable(); got != 4 {
		t.Errorf("Readable = %d, want 4 (5 emitted, 4 durable)", got)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("FollowDurable = %v after its ctx was cancelled", err)
	}
	if len(read) != 0 {
		t.Errorf("read %d past the watermark", <-read)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.durableWaiting)+len(l.waiting) != 0 {
		t.Errorf("%d waiters left after the reader left", len(l.durableWaiting)+len(l.waiting))
	}
}
