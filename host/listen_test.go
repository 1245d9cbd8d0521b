package host

import (
	"strconv"
	"testing"
)

// TestWatchersWake checks that waking a run signals its followers only, and that
// waking every run signals them all, once each however often woken.
func TestWatchersWake(t *testing.T) {
	t.Parallel()
	var w watchers
	a1, stopA1 := w.add("a")
	a2, stopA2 := w.add("a")
	b, stopB := w.add("b")
	defer stopA1()
	defer stopB()

	w.wake("a")
	w.wake("a")
	w.wake("c") // followed by no one
	for name, ch := range map[string]<-chan struct{}{"a1": a1, "a2": a2} {
		select {
		case <-ch:
		default:
			t.Errorf("follower %s of run a not woken", name)
		}
		select {
		case <-ch:
			t.Errorf("follower %s of run a woken twice", name)
		default:
		}
	}
	select {
	case <-b:
		t.Error("follower of run b woken by run a's news")
	default:
	}

	stopA2()
	w.wake("")
	for name, ch := range map[string]<-chan struct{}{"a1": a1, "b": b} {
		select {
		case <-ch:
		default:
			t.Errorf("follower %s not woken by a wake of every run", name)
		}
	}
	select {
	case <-a2:
		t.Error("a stopped follower was woken")
	default:
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.m["a"]) != 1 {
		t.Errorf("run a has %d followers, want 1", len(w.m["a"]))
	}
}

// BenchmarkWatchersWake wakes one run among 1,000 followed, as the listener does
// for each run of an events notification.
func BenchmarkWatchersWake(b *testing.B) {
	var w watchers
	for i := range 1000 {
		_, stop := w.add("run-" + strconv.Itoa(i))
		defer stop()
	}
	b.ReportAllocs()
	for b.Loop() {
		w.wake("run-500")
	}
}
