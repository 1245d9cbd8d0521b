package host

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
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

	w.wake("a", "")
	w.wake("a", "")
	w.wake("c", "") // followed by no one
	for name, ch := range map[string]<-chan struct{}{"a1": a1.news, "a2": a2.news} {
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
	case <-b.news:
		t.Error("follower of run b woken by run a's news")
	default:
	}

	stopA2()
	w.wake("", "")
	for name, ch := range map[string]<-chan struct{}{"a1": a1.news, "b": b.news} {
		select {
		case <-ch:
		default:
			t.Errorf("follower %s not woken by a wake of every run", name)
		}
	}
	select {
	case <-a2.news:
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
		w.wake("run-500", "")
	}
}

// staleStore is a store whose reads of runs are behind its notifications: each
// GetRun reads the record as first stored, and is told on read; its listener
// notifies the end, in status CANCELLED, of each run sent to ended.
type staleStore struct {
	*sqlite.Store
	read  chan struct{}
	ended chan string
}

func (s *staleStore) GetRun(ctx context.Context, id string) (*store.Run, error) {
	rec, err := s.Store.GetRun(ctx, id)
	select {
	case s.read <- struct{}{}:
	default:
	}
	return rec, err
}

func (s *staleStore) Listen(ctx context.Context, n store.Notifications) error {
	for {
		select {
		case id := <-s.ended:
			n.Ended(id, run.StatusCancelled)
		case <-ctx.Done():
			return nil
		}
	}
}

// TestWaitAnswersNotifiedEnd checks that a wait for a run executing in another
// process returns the terminal status the store notifies as stored, without
// reading the run's record again: the answer to a cancel with wait on another
// replica costs no read after the end is notified.
func TestWaitAnswersNotifiedEnd(t *testing.T) {
	ctx := context.Background()
	st := &staleStore{Store: sqliteStore(t, filepath.Join(t.TempDir(), "kern.db")),
		read: make(chan struct{}, 1), ended: make(chan string)}
	err := st.CreateRun(ctx, &store.Run{ID: "elsewhere", SessionID: "s", Kind: run.KindWorkflow, ComponentID: "w",
		Status: run.StatusRunning, Replica: "other", LeaseUntil: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	h := startHost(t, st, Options{NoRecovery: true})

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	type result struct {
		st  run.Status
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := h.Wait(ctx, "elsewhere")
		done <- result{s, err}
	}()
	<-st.read // subscribed, then read: RUNNING
	st.ended <- "elsewhere"
	got := <-done
	if got.err != nil || got.st != run.StatusCancelled {
		t.Fatalf("Wait = %s, %v; want CANCELLED, as notified", got.st, got.err)
	}
}
