//go:build chaos && linux

package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// settle waits until every run the clients of l were told of, and every run st
// holds, has ended in st: a case calls it once the fault is over and a server
// that can take the runs over is up.
func settle(t *testing.T, st store.Store, l *ledger, within time.Duration) {
	t.Helper()
	eventually.Succeeds(t, within, func() error {
		ctx := context.Background()
		ids, err := runIDs(ctx, st, l)
		if err != nil {
			return err
		}
		for _, id := range ids {
			r, err := st.GetRun(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("run %s is not stored", id)
			}
			if err != nil {
				return err
			}
			if !r.Status.Terminal() {
				return fmt.Errorf("run %s is %s on %s", id, r.Status, r.Replica)
			}
		}
		return nil
	})
}

// runIDs returns the runs of l and those of st, each once.
func runIDs(ctx context.Context, st store.Store, l *ledger) ([]string, error) {
	ids := l.ids()
	stored, err := st.ListRuns(ctx, store.RunQuery{Limit: 1000})
	if err != nil {
		return nil, err
	}
	for _, r := range stored {
		if r.ParentRunID == "" && !slices.Contains(ids, r.ID) {
			ids = append(ids, r.ID)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// check holds what st stored against what the clients of l were told, for every
// run either knows of, after settle:
//   - every acknowledged run is stored, and has ended;
//   - its stored stream has contiguous indexes from 0 and exactly one terminal
//     event of its own, the last, which matches its stored status;
//   - every event a client received is the stored event at its index (an index is
//     never reused for different content), and a terminal event a client received
//     is the stored one;
//   - a cancel's answer is the truth: a run a cancel answered CANCELLED, or
//     acknowledged before its end, never ends COMPLETED; one it answered ended
//     ended that way;
//   - a run that ended short of COMPLETED keeps the content it streamed.
func check(t *testing.T, st store.Store, l *ledger) {
	t.Helper()
	ctx := context.Background()
	ids, err := runIDs(ctx, st, l)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		l.mu.Lock()
		tl := l.runs[id]
		l.mu.Unlock()
		for _, e := range checkRun(ctx, st, id, tl) {
			t.Error(e)
		}
	}
}

func checkRun(ctx context.Context, st store.Store, id string, tl *told) (errs []error) {
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("run %s: "+format, append([]any{id}, args...)...))
	}
	if tl == nil {
		tl = &told{}
	}
	r, err := st.GetRun(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		if tl.acked {
			fail("acknowledged (%s), not stored", tl.how)
		}
		return errs
	}
	if err != nil {
		fail("%v", err)
		return errs
	}
	if !r.Status.Terminal() {
		fail("stored %s, not ended", r.Status)
	}
	stored, err := st.Events(ctx, id, 0, 0)
	if err != nil {
		fail("events: %v", err)
		return errs
	}
	events := make([]run.Event, len(stored))
	var ends []int
	for i, e := range stored {
		if e.Index != i {
			fail("stored event %d has index %d: indexes not contiguous", i, e.Index)
			return errs
		}
		if err := json.Unmarshal(e.Data, &events[i]); err != nil {
			fail("stored event %d: %v", i, err)
		}
		if e.Ends(id) {
			ends = append(ends, i)
		}
	}
	want := r.Kind.TerminalEvent(r.Status)
	switch {
	case len(ends) != 1:
		fail("%d terminal events stored (at %v), want 1", len(ends), ends)
	case ends[0] != len(stored)-1:
		fail("terminal event at %d of %d stored events, want the last", ends[0], len(stored))
	case stored[ends[0]].Type != want:
		fail("stored %s, terminal event %s", r.Status, stored[ends[0]].Type)
	}
	for n, s := range tl.streams {
		for _, ev := range s.received() {
			i := ev.EventIndex
			if i >= len(events) {
				fail("client %d received %s at index %d, beyond the %d stored events", n, ev.Event, i, len(events))
				continue
			}
			if e := &events[i]; e.Event != ev.Event || e.RunID != ev.RunID || e.Content != ev.Content || e.Reason != ev.Reason || e.Error != ev.Error {
				fail("index %d: client %d received %s %q (run %s), stored %s %q (run %s): an index reused", i, n, ev.Event, ev.Content, ev.RunID, e.Event, e.Content, e.RunID)
			}
			if terminal(ev) && ev.Event != want {
				fail("client %d was told %s, stored %s", n, ev.Event, r.Status)
			}
		}
	}
	for _, c := range tl.cancels {
		switch {
		case c.Terminal() && c != r.Status:
			fail("a cancel answered %s, stored %s", c, r.Status)
		case !c.Terminal() && r.Status == run.StatusCompleted:
			fail("a cancel acknowledged while the run was %s, stored COMPLETED: the cancel was reversed", c)
		}
	}
	if r.Status != run.StatusCompleted {
		streamed := ""
		for _, e := range events {
			if e.Event == run.EventRunContent {
				streamed += e.Content
			}
		}
		if streamed != "" && r.Output.Content == "" && len(r.Output.StepResults) == 0 {
			fail("ended %s without the content it streamed (%d bytes)", r.Status, len(streamed))
		}
	}
	return errs
}
