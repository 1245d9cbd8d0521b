package eventlog

import (
	"context"
	"testing"
)

// TestAwait: a Waiter is called once the watermark passes its position, or the
// log is lost or closed; it is not when the reader would not wait; while it
// waits, and until released, what it is to read stays in memory.
func TestAwait(t *testing.T) {
	t.Parallel()
	var l Log[ev]
	l.Track(nil)
	calls := 0
	fn := func() { calls++ }
	var w Waiter
	if !l.Await(&w, 0, fn) {
		t.Fatal("Await on an empty log: not waiting")
	}
	emit(&l, 100, false)
	if calls != 0 {
		t.Fatal("called before any event was durable")
	}
	l.Durable(1)
	if calls != 1 {
		t.Fatalf("called %d times once event 0 was durable; want 1", calls)
	}
	if l.Await(&w, 0, fn) {
		t.Fatal("Await with event 0 durable: waiting")
	}
	// The pin holds event 0 however far the watermark goes.
	l.Durable(100)
	if h := l.Held(); h != 0 {
		t.Fatalf("held from %d with a pinned reader at 0", h)
	}
	l.Release(&w)
	if h := l.Held(); h == 0 {
		t.Fatal("event 0 held once released")
	}
	// A reader at the watermark waits; a Release drops its call.
	if !l.Await(&w, 100, fn) {
		t.Fatal("Await at the watermark: not waiting")
	}
	l.Release(&w)
	emit(&l, 1, false)
	l.Durable(101)
	if calls != 1 {
		t.Fatalf("called %d times after Release; want 1", calls)
	}
	// Lost, closed: called, and FollowDurable would not wait.
	if !l.Await(&w, 101, fn) {
		t.Fatal("Await at the watermark: not waiting")
	}
	l.Lose()
	if calls != 2 {
		t.Fatalf("called %d times once lost; want 2", calls)
	}
	if l.Await(&w, 101, fn) {
		t.Fatal("Await on a lost log: waiting")
	}
	if _, err := l.FollowDurable(context.Background(), 101, func(*ev) bool { return true }); err != ErrLost {
		t.Fatalf("FollowDurable on a lost log: %v", err)
	}
	l.Release(&w)

	var c Log[ev]
	c.Track(nil)
	var wc Waiter
	if !c.Await(&wc, 0, fn) {
		t.Fatal("Await on an empty log: not waiting")
	}
	c.Close()
	if calls != 3 {
		t.Fatalf("called %d times once closed; want 3", calls)
	}
	if c.Await(&wc, 0, fn) {
		t.Fatal("Await on a closed log read to its end: waiting")
	}
	c.Release(&wc)

	var u Log[ev] // not tracked: followed as Follow follows it
	if u.Await(&wc, 0, fn) {
		t.Fatal("Await on a log not tracked: waiting")
	}
}
