package sqlite

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// TestWriterLaterOps writes events (ops that may wait, see writer) and runs' ends
// (urgent ops) from many goroutines at once, each goroutine one run's, in order:
// every write is answered, and each run reads back its events and its end.
func TestWriterLaterOps(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	const runs, batches = 16, 20
	var wg sync.WaitGroup
	for r := range runs {
		end := endsRun(t, s, "r1")
		wg.Go(func() {
			for b := range batches {
				evs := []store.Event{{RunID: end.ID, Index: b, Type: run.EventRunContent,
					Data: []byte(fmt.Sprintf(`"%d-%d"`, r, b)), CreatedAt: time.Now()}}
				if lost, err := s.AppendEventsAs(t.Context(), "r1", evs); err != nil || len(lost) > 0 {
					t.Errorf("append events of run %d: lost %v, %v", r, lost, err)
					return
				}
			}
			if _, errs, err := s.WriteEnds(t.Context(), "r1", nil, []*store.Run{end}); err != nil || errs[0] != nil {
				t.Errorf("end of run %d: %v, %v", r, errs, err)
			}
			got, err := s.GetRun(t.Context(), end.ID)
			if err != nil || got.Status != run.StatusCancelled {
				t.Errorf("run %d stored %v, %v", r, got, err)
			}
			evs, err := s.Events(t.Context(), end.ID, 0, 0)
			if err != nil || len(evs) != batches {
				t.Errorf("run %d: %d events, %v; want %d", r, len(evs), err, batches)
			}
		})
	}
	wg.Wait()
}
