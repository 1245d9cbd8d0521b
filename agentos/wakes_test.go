package agentos

import (
	"sync"
	"testing"
)

// funcWoken is a woken stream whose run is f.
type funcWoken func()

func (f funcWoken) run() { f() }

// TestWakesServeEveryStreamOnFewGoroutines: the streams woken at once wait for
// maxWakers goroutines, not one each, and are all served.
func TestWakesServeEveryStreamOnFewGoroutines(t *testing.T) {
	t.Parallel()
	var w wakes
	const n = 100
	gate := make(chan struct{})
	var served sync.WaitGroup
	served.Add(n)
	for range n {
		w.run(funcWoken(func() {
			defer served.Done()
			<-gate
		}))
	}
	// Checked at once: only a stall of wakeStall (20 ms) would start more.
	w.mu.Lock()
	workers, queued := w.workers, len(w.queue)
	w.mu.Unlock()
	if workers != maxWakers() || queued < n-maxWakers() {
		t.Errorf("%d goroutines, %d streams queued; want %d, at least %d", workers, queued, maxWakers(), n-maxWakers())
	}
	close(gate)
	served.Wait()
}

// TestWakesDoNotWaitOnBlockedStreams: a stream woken while every goroutine is held
// by a stream that blocks (its client does not read) is served all the same.
func TestWakesDoNotWaitOnBlockedStreams(t *testing.T) {
	t.Parallel()
	var w wakes
	release := holdEveryWaker(&w)
	served := make(chan struct{})
	w.run(funcWoken(func() { close(served) }))
	<-served // after wakeStall: the test times out if it never comes
	close(release)
}

// TestWakesForgetBlockedStreams: goroutines found held by streams that block no
// longer count against the bound, so that a stream woken later is served at once,
// not after another stall.
func TestWakesForgetBlockedStreams(t *testing.T) {
	t.Parallel()
	var w wakes
	release := holdEveryWaker(&w)
	defer close(release)
	served := make(chan struct{})
	w.run(funcWoken(func() { close(served) }))
	<-served // after wakeStall: the test times out if it never comes

	w.mu.Lock()
	stuck := w.stuck
	w.mu.Unlock()
	if stuck != maxWakers() {
		t.Fatalf("%d goroutines counted stuck, want %d", stuck, maxWakers())
	}
	again := make(chan struct{})
	w.run(funcWoken(func() { close(again) }))
	w.mu.Lock()
	armed := w.armed
	w.mu.Unlock()
	if armed {
		t.Error("a stream woken with every goroutine stuck waits for a stall; want a goroutine started at once")
	}
	<-again
}

// holdEveryWaker has every goroutine of w serve a stream that blocks (a client
// that does not read) until release is closed.
func holdEveryWaker(w *wakes) (release chan struct{}) {
	release = make(chan struct{})
	var held sync.WaitGroup
	held.Add(maxWakers())
	for range maxWakers() {
		w.run(funcWoken(func() {
			held.Done()
			<-release
		}))
	}
	held.Wait()
	return release
}
