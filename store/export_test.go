package store

import (
	"sync"
	"time"
)

// WithClock returns opts with c as the time of the recorder's leases: a test
// advances it instead of waiting for a lease to lapse, or for a renewal.
func WithClock(opts RecorderOptions, c *TestClock) RecorderOptions {
	opts.clock = c
	return opts
}

// TestClock is a clock that stands still until a test advances it. It starts at the
// wall clock's time, so that the leases it stamps in a store are live ones.
type TestClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*testTicker
}

type testTicker struct {
	c       chan time.Time
	every   time.Duration
	next    time.Time
	stopped bool
}

// NewTestClock returns a TestClock at the wall clock's time.
func NewTestClock() *TestClock { return &TestClock{now: time.Now()} }

// Now returns the clock's time.
func (c *TestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Ticker returns a ticker that ticks as the clock is advanced past its next tick.
func (c *TestClock) Ticker(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &testTicker{c: make(chan time.Time, 1), every: d, next: c.now.Add(d)}
	c.tickers = append(c.tickers, t)
	return t.c, func() {
		c.mu.Lock()
		t.stopped = true
		c.mu.Unlock()
	}
}

// Advance moves the clock on by d. A ticker whose next tick it passed ticks once,
// as a time.Ticker drops the ticks its reader was too slow for.
func (c *TestClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.tickers {
		if t.stopped || t.next.After(c.now) {
			continue
		}
		for !t.next.After(c.now) {
			t.next = t.next.Add(t.every)
		}
		select {
		case t.c <- c.now:
		default:
		}
	}
}
