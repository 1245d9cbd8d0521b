package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/kern-dev/kern/store"
)

// holdWriter starts a write that leads the writer until release is closed, and
// returns once it leads; the returned channel gives its outcome.
func holdWriter(t *testing.T, s *Store, release <-chan struct{}) <-chan error {
	t.Helper()
	leading := make(chan struct{})
	out := make(chan error, 1)
	go func() {
		out <- s.write(context.Background(), true, func(context.Context, *sql.Tx) error {
			close(leading)
			<-release
			return nil
		})
	}()
	<-leading
	return out
}

// waitQueued returns once n ops wait in s's queue.
func waitQueued(s *Store, n int) {
	for {
		s.queue.mu.Lock()
		k := len(s.queue.ops)
		s.queue.mu.Unlock()
		if k >= n {
			return
		}
		runtime.Gosched()
	}
}

// ran returns a write that counts its runs in n.
func ran(n *atomic.Int32) func(context.Context, *sql.Tx) error {
	return func(context.Context, *sql.Tx) error {
		n.Add(1)
		return nil
	}
}

// TestWriterQueuedOpCancelled checks that an op whose context ends while it waits
// for a batch is not run, and that the ops queued behind it are.
func TestWriterQueuedOpCancelled(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	release := make(chan struct{})
	held := holdWriter(t, s, release)

	ctx, cancel := context.WithCancel(t.Context())
	var cancelledRuns, laterRuns atomic.Int32
	cancelled := make(chan error, 1)
	go func() { cancelled <- s.write(ctx, false, ran(&cancelledRuns)) }()
	waitQueued(s, 1)
	later := make(chan error, 1)
	go func() { later <- s.write(t.Context(), true, ran(&laterRuns)) }()
	waitQueued(s, 2)

	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled write: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := <-later; err != nil {
		t.Fatal(err)
	}
	if cancelledRuns.Load() != 0 || laterRuns.Load() != 1 {
		t.Errorf("the cancelled write ran %d times, the later one %d: want 0 and 1", cancelledRuns.Load(), laterRuns.Load())
	}
}

// TestWriterLeadCancelled checks that the writer goes on when the op handed the lead
// is cancelled at the same time: the op is either written or not run, and the op
// behind it is written either way.
func TestWriterLeadCancelled(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	for range 50 {
		release := make(chan struct{})
		held := holdWriter(t, s, release)
		ctx, cancel := context.WithCancel(t.Context())
		var firstRuns, nextRuns atomic.Int32
		first := make(chan error, 1)
		go func() { first <- s.write(ctx, true, ran(&firstRuns)) }()
		waitQueued(s, 1)
		next := make(chan error, 1)
		go func() { next <- s.write(t.Context(), true, ran(&nextRuns)) }()
		waitQueued(s, 2)

		close(release) // the lead goes to first, cancelled meanwhile
		cancel()
		if err := <-held; err != nil {
			t.Fatal(err)
		}
		switch err := <-first; {
		case err == nil && firstRuns.Load() == 1:
		case errors.Is(err, context.Canceled) && firstRuns.Load() == 0:
		default:
			t.Fatalf("first write: %v after %d runs", err, firstRuns.Load())
		}
		if err := <-next; err != nil || nextRuns.Load() != 1 {
			t.Fatalf("next write: %v after %d runs", err, nextRuns.Load())
		}
	}
}

// TestWriterCloseWritesQueued checks that Close waits for the queued ops, which are
// written, and that a write after it fails with store.ErrClosed.
func TestWriterCloseWritesQueued(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	release := make(chan struct{})
	held := holdWriter(t, s, release)
	var runs atomic.Int32
	queued := make(chan error, 1)
	go func() { queued <- s.write(t.Context(), true, ran(&runs)) }()
	waitQueued(s, 1)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	for !s.closed.Load() {
		runtime.Gosched()
	}
	close(release)
	for _, c := range []<-chan error{held, queued, closed} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	if runs.Load() != 1 {
		t.Errorf("the queued write ran %d times, want 1", runs.Load())
	}
	if err := s.write(t.Context(), true, ran(&runs)); !errors.Is(err, store.ErrClosed) {
		t.Errorf("write after Close: %v, want store.ErrClosed", err)
	}
}

// TestWriteRunsManyBatches checks that ops beyond a batch's bound are all written,
// in as many batches as they need.
func TestWriteRunsManyBatches(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	ops := make([]*op, 2*maxBatch+3)
	var runs atomic.Int32
	for i := range ops {
		ops[i] = newOp(t.Context(), true, ran(&runs), nil)
	}
	for i, err := range s.submitAll(t.Context(), ops) {
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	if int(runs.Load()) != len(ops) {
		t.Errorf("%d ops ran, want %d", runs.Load(), len(ops))
	}
}
