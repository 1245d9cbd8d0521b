package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// TestQueueTwoStoresOneFile: Work loops of two Stores on one file (as of two
// processes, `kern serve` and `kern run`) never take the same run, and each
// finds the runs the other queued, by polling.
func TestQueueTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kern.db")
	open := func() *Store {
		s, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	comp := []store.Component{{Kind: run.KindWorkflow, ID: "flow"}}
	const n = 60
	var mu sync.Mutex
	count := map[string]int{}
	by := map[*Store]int{}
	handed := make(chan struct{}, 2*n)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range []*Store{a, b} {
		wg.Go(func() {
			err := s.Work(ctx, 4, comp, func(_ context.Context, j *store.Job) error {
				mu.Lock()
				count[j.ID]++
				by[s]++
				mu.Unlock()
				handed <- struct{}{}
				return nil
			})
			if err != nil {
				t.Errorf("Work: %v", err)
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		j := &store.Job{ID: fmt.Sprintf("q%02d", i), Kind: run.KindWorkflow, ComponentID: "flow", Input: "go"}
		if err := s.Enqueue(t.Context(), j); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		select {
		case <-handed:
		case <-time.After(time.Minute):
			t.Fatal("runs not all handed out within a minute")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for id, c := range count {
		if c != 1 {
			t.Errorf("run %s handed out %d times, want once", id, c)
		}
	}
	if len(count) != n {
		t.Errorf("%d runs handed out, want %d", len(count), n)
	}
	t.Logf("handed out by a: %d, by b: %d", by[a], by[b])
}

// TestIntentsCapped: past MaxIntents intents, a cancel deletes the oldest; a
// listener re-reads at most MaxRereadIntents, the newest. (With smaller bounds:
// the same statements, a test's time.)
func TestIntentsCapped(t *testing.T) {
	intentCap, rereadCap = 2000, 500
	defer func() { intentCap, rereadCap = MaxIntents, MaxRereadIntents }()
	s := openTemp(t)
	now := time.Now().UnixMilli()
	// MaxIntents intents of runs never stored, older than any cancel after.
	_, err := s.w.ExecContext(t.Context(), `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO cancel_intents (run_id, reason, created_at) SELECT 'old-' || i, '', ? - ? + i FROM n`,
		intentCap, now, intentCap+10)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CancelRun(t.Context(), "newest", "stop"); err != nil {
		t.Fatal(err)
	}
	var kept int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM cancel_intents`).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if kept != intentCap {
		t.Errorf("%d intents kept, want the cap, %d", kept, intentCap)
	}
	if _, ok, err := s.PendingCancel(t.Context(), "newest"); err != nil || !ok {
		t.Errorf("the newest intent: %v, %v; want kept", ok, err)
	}
	if _, ok, err := s.PendingCancel(t.Context(), "old-1"); err != nil || ok {
		t.Errorf("the oldest intent: %v, %v; want deleted", ok, err)
	}

	var mu sync.Mutex
	var heard []string
	got := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Listen(ctx, store.Notifications{Cancel: func(id, _ string) {
			mu.Lock()
			defer mu.Unlock()
			heard = append(heard, id)
			if len(heard) == rereadCap {
				close(got)
			}
		}})
	}()
	select {
	case <-got:
	case <-time.After(time.Minute):
		t.Fatal("pending intents not re-read within a minute")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(heard) != rereadCap || heard[len(heard)-1] != "newest" {
		t.Errorf("re-read %d intents ending with %q; want %d, the newest last", len(heard), heard[len(heard)-1], rereadCap)
	}
}
