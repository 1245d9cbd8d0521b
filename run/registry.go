package run

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Default bounds of what a Registry remembers about runs it does not execute.
const (
	DefaultMemory         = 10 * time.Minute
	DefaultMaxMemory      = 10000
	DefaultMaxMemoryBytes = 16 << 20
)

// Registry knows the runs executing in this process and cancels them. A cancel for a
// run not started yet is kept as an intent, and the run ends CANCELLED as soon as it
// starts; a cancel for a run that has ended reports its terminal status. Intents and
// ended runs are remembered for a bounded time, number and size, so the registry does
// not grow without limit, whatever ids and reasons its callers send.
//
// The zero value is ready to use. Agents, workflows and servers that share a Registry
// can cancel each other's runs.
type Registry struct {
	// Memory is how long intents and ended runs are remembered (DefaultMemory if zero).
	Memory time.Duration
	// MaxMemory bounds how many of each are remembered (DefaultMaxMemory if zero).
	MaxMemory int
	// MaxMemoryBytes bounds the bytes of ids and reasons each of them holds
	// (DefaultMaxMemoryBytes if zero): a few very long ids cannot exhaust memory
	// where a count alone would let them.
	MaxMemoryBytes int
	// Canceller, if set, takes every cancel asked of Cancel, so that it reaches runs
	// executing in other processes too (kern's host sets it): it cancels the runs of
	// this registry through RequestCancel, never through Cancel. Set it before the
	// registry is used.
	Canceller Canceller

	mu      sync.Mutex // guards the fields below
	active  map[string]active
	intents remembered[string] // run id → cancel reason
	ended   remembered[Status] // run id → terminal status
}

// begin registers e as the active entry of run id, and tells it of a cancel intent
// kept for id (which it consumes).
func (r *Registry) begin(id string, e intended) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.active[id]; dup {
		return fmt.Errorf("run %s: %w", id, ErrDuplicateID)
	}
	if r.active == nil {
		r.active = make(map[string]active)
	}
	r.active[id] = e
	if reason, ok := r.intents.take(id, r.memory()); ok {
		e.Intended(reason)
	}
	return nil
}

// end ends the registration of run id, whose entry is e, once it ended in st:
// later cancels report st.
func (r *Registry) end(id string, e active, st Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active[id] == e {
		delete(r.active, id)
	}
	if st == StatusPaused {
		return // not ended: a cancel of it goes to where it is kept (a store)
	}
	r.ended.put(id, st, len(id), r.memory(), r.maxMemory(), r.maxMemoryBytes())
}

// Canceller carries a cancel beyond one process: to a run executing in another
// process that shares a database with this one, or to a durable intent.
type Canceller interface {
	// CancelRun cancels the run with the given id wherever it executes and waits
	// until it has ended (or ctx is done), as Registry.Cancel does.
	CancelRun(ctx context.Context, runID, reason string) (Status, error)
}

// Cancel cancels the run with the given id and waits until it has ended (or ctx is
// done). It returns the status the run reached: its terminal status for a run that
// executes or executed here, or PENDING for a run not known yet, whose cancel is kept
// and takes effect the moment it starts. Cancelling twice is harmless. With a
// Canceller set, the cancel goes through it.
func (r *Registry) Cancel(ctx context.Context, id, reason string) (Status, error) {
	if r.Canceller != nil {
		return r.Canceller.CancelRun(ctx, id, reason)
	}
	st, e := r.request(id, reason)
	if e == nil {
		return st, nil
	}
	select {
	case <-e.Done():
		return e.Status(), nil
	case <-ctx.Done():
		return StatusRunning, ctx.Err()
	}
}

// RequestCancel is Cancel without the wait: it returns at once with RUNNING for a
// run whose cancel is under way, the terminal status of a run that ended, or
// PENDING for a run not known yet (the intent is kept).
func (r *Registry) RequestCancel(id, reason string) Status {
	st, _ := r.request(id, reason)
	return st
}

// request cancels an active run and returns its entry, or answers for a run that is
// not active: its terminal status, or PENDING with the intent kept.
func (r *Registry) request(id, reason string) (Status, active) {
	r.mu.Lock()
	e := r.active[id]
	if e == nil {
		defer r.mu.Unlock()
		if st, ok := r.ended.get(id, r.memory()); ok {
			return st, nil
		}
		r.intents.put(id, reason, len(id)+len(reason), r.memory(), r.maxMemory(), r.maxMemoryBytes())
		return StatusPending, nil
	}
	r.mu.Unlock()
	e.Cancel(reason)
	return StatusRunning, e
}

// lookup returns the entry of an active run.
func (r *Registry) lookup(id string) (active, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.active[id]
	return e, ok
}

func (r *Registry) memory() time.Duration {
	if r.Memory > 0 {
		return r.Memory
	}
	return DefaultMemory
}

func (r *Registry) maxMemoryBytes() int {
	if r.MaxMemoryBytes > 0 {
		return r.MaxMemoryBytes
	}
	return DefaultMaxMemoryBytes
}

func (r *Registry) maxMemory() int {
	if r.MaxMemory > 0 {
		return r.MaxMemory
	}
	return DefaultMaxMemory
}

// remembered maps run ids to values for a bounded time, number and size, forgetting
// the oldest first.
type remembered[V any] struct {
	m     map[string]stamped[V]
	order []stampedID // insertion order, oldest first, from head on
	head  int
	bytes int              // the sizes of order[head:]
	now   func() time.Time // the clock: time.Now if nil (tests set their own)
}

type stamped[V any] struct {
	v  V
	at time.Time
}

type stampedID struct {
	id   string
	at   time.Time
	size int // what the entry counts against the size bound
}

// put remembers v for id, counting size bytes against maxBytes.
func (m *remembered[V]) put(id string, v V, size int, ttl time.Duration, max, maxBytes int) {
	now := m.clock()
	if m.m == nil {
		m.m = make(map[string]stamped[V])
	}
	m.m[id] = stamped[V]{v, now}
	m.order = append(m.order, stampedID{id, now, size})
	m.bytes += size
	m.prune(now, ttl, max, maxBytes)
}

func (m *remembered[V]) prune(now time.Time, ttl time.Duration, max, maxBytes int) {
	for m.head < len(m.order) && (len(m.order)-m.head > max || m.bytes > maxBytes || now.Sub(m.order[m.head].at) > ttl) {
		old := m.order[m.head]
		if s, ok := m.m[old.id]; ok && s.at.Equal(old.at) {
			delete(m.m, old.id)
		}
		m.bytes -= old.size
		m.order[m.head] = stampedID{}
		m.head++
	}
	// Compact only once half the slice is spent, so each put costs O(1) amortised.
	if m.head > len(m.order)/2 {
		m.order = append(m.order[:0], m.order[m.head:]...)
		m.head = 0
	}
}

func (m *remembered[V]) get(id string, ttl time.Duration) (V, bool) {
	s, ok := m.m[id]
	if !ok || m.clock().Sub(s.at) > ttl {
		var zero V
		return zero, false
	}
	return s.v, true
}

func (m *remembered[V]) clock() time.Time {
	if m.now != nil {
		return m.now()
	}
	return time.Now()
}

func (m *remembered[V]) take(id string, ttl time.Duration) (V, bool) {
	v, ok := m.get(id, ttl)
	delete(m.m, id)
	return v, ok
}
