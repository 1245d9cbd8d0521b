package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kern-dev/kern/run"
)

// claimBatch is how many runs left behind recovery claims at a time.
const claimBatch = 16

// Recovery finds the runs that processes which died left RUNNING, once their lease
// lapsed (see Store.Claim), and hands each to Takeover to be resumed, or ends it
// ERROR "interrupted" with its partial output: its stored stream gets the terminal
// event it lacks (WorkflowError or RunError), then its record its terminal status,
// so that no run stays RUNNING forever and a reader of its events sees it end.
//
// A Recorder runs one without Takeover unless RecorderOptions.NoRecovery is set;
// kern's host runs its own, with a Takeover that resumes workflow runs.
type Recovery struct {
	Store   Store
	Replica string        // names this process in the runs it claims
	Lease   time.Duration // the lease a claimed run gets (DefaultLease if zero)
	// Executes, if set, reports whether this process executes a run already: a
	// claim of such a run only renewed its lease, and it is left alone.
	Executes func(runID string) bool
	// Takeover, if set, is handed each run claimed whose stored stream has not
	// ended: it returns nil once it has started the run again, continuing it
	// (run.WithResume) with a recorder whose lease renewal then keeps the run;
	// ErrNotResumable for a run it cannot resume, which is then ended ERROR
	// "interrupted"; any other error leaves the run to its lease, for another
	// process (or a later round) to take. Its ctx bounds the call, not the run it
	// starts: it must return promptly. tail is what r's stored events say of its
	// last moments, read once by the recovery for both it and the interruption.
	Takeover func(ctx context.Context, r *Run, tail *Tail) error
}

// Once claims the runs left behind, claimBatch at a time until none is left, and
// hands each to Takeover; it ends those that Takeover does not resume, and returns
// them. Once ctx is done, what it claimed and did not hand over is left to its
// lease.
func (rv *Recovery) Once(ctx context.Context) ([]*Run, error) {
	lease := orDefault(rv.Lease, DefaultLease)
	var ended []*Run
	for ctx.Err() == nil {
		now := time.Now()
		cctx, cancel := context.WithTimeout(ctx, writeTimeout)
		runs, err := rv.Store.Claim(cctx, rv.Replica, now, now.Add(lease), claimBatch)
		cancel()
		if ctx.Err() != nil {
			break // closing: what it claimed is left to its lease
		}
		if err != nil {
			return ended, fmt.Errorf("store: claim runs left behind: %w", err)
		}
		var refused []*Run
		var tails []*Tail
		for _, rn := range runs {
			if rv.Executes != nil && rv.Executes(rn.ID) {
				continue // this process executes it: the claim only renewed its lease
			}
			tail := rv.tail(ctx, rn)
			// A stream that ends with its terminal event (or cannot be read) is
			// ended, never resumed.
			if rv.Takeover != nil && tail != nil && (tail.Last == nil || !tail.Last.Ends(rn.ID)) {
				err := rv.handOver(ctx, rn, tail)
				if !errors.Is(err, ErrNotResumable) {
					continue // resumed, or left to its lease
				}
			}
			if ctx.Err() != nil {
				continue // closing: its lease lapses and another process takes it
			}
			refused, tails = append(refused, rn), append(tails, tail)
		}
		out, err := rv.interrupt(refused, tails)
		ended = append(ended, out...)
		if err != nil || len(runs) < claimBatch {
			return ended, err
		}
	}
	return ended, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// tail reads a claimed run's stored events once, for its takeover and its
// interruption alike; nil if they cannot be read.
func (rv *Recovery) tail(ctx context.Context, rn *Run) *Tail {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	tail, err := Streamed(ctx, rv.Store, rn.ID, rn.Output.StepResults)
	if err != nil {
		return nil
	}
	return tail
}

// handOver hands a claimed run to Takeover, and returns what it returned.
func (rv *Recovery) handOver(ctx context.Context, rn *Run, tail *Tail) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return rv.Takeover(ctx, rn, tail)
}

// interrupt ends the claimed runs ERROR "interrupted" (see interruptRuns); tails
// are their stored events' tails, nil where they are to be read again.
func (rv *Recovery) interrupt(runs []*Run, tails []*Tail) ([]*Run, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	return interruptRuns(ctx, rv.Store, runs, tails)
}

// interruptRuns ends runs left behind, which this process claimed, ERROR
// "interrupted", keeping their output: first it stores the terminal event their
// stream lacks, after their last stored event, then their record's terminal status,
// so that a reader who sees the status finds the event. tails, if not nil, are
// the runs' tails already read (nil ones are read here). It returns the runs it
// ended; a run it could not end is left to its lease.
func interruptRuns(ctx context.Context, s Store, runs []*Run, tails []*Tail) ([]*Run, error) {
	now := time.Now()
	evs := make([]*Event, len(runs))
	errs := make([]error, len(runs))
	var wg sync.WaitGroup
	for i, rn := range runs {
		var tail *Tail
		if tails != nil {
			tail = tails[i]
		}
		wg.Go(func() { evs[i], errs[i] = interruptedEvent(ctx, s, rn, tail, now) })
	}
	wg.Wait()
	var batch []Event
	for i, ev := range evs {
		if errs[i] == nil && ev != nil {
			batch = append(batch, *ev)
		}
	}
	if len(batch) > 0 {
		// An index taken meanwhile is left as it is: by the process that executed
		// the run, writing its last events as its lease lapsed.
		if err := s.AppendEvents(ctx, batch); err != nil {
			return nil, fmt.Errorf("store: end runs left behind: save their terminal events: %w", err)
		}
	}
	for i, rn := range runs {
		if errs[i] != nil {
			continue
		}
		wg.Go(func() {
			if !rn.Status.Terminal() { // else settled by its stored terminal event
				rn.Status, rn.Output.Status, rn.Output.Error = run.StatusError, run.StatusError, ReasonInterrupted
			}
			rn.UpdatedAt = now
			if err := s.UpdateRun(ctx, rn); err != nil {
				errs[i] = fmt.Errorf("store: end run %s left behind: %w", rn.ID, err)
			}
		})
	}
	wg.Wait()
	ended := make([]*Run, 0, len(runs))
	for i, rn := range runs {
		if errs[i] == nil {
			ended = append(ended, rn)
		}
	}
	return ended, errors.Join(errs...)
}

// interruptedEvent returns the terminal event of a run left behind, built as the
// runtime builds a run's end in ERROR, to be stored after its last stored event; nil
// if its stored stream ends with its terminal event already. tail is the tail of
// its stored events, read here if nil.
func interruptedEvent(ctx context.Context, s Store, rn *Run, tail *Tail, now time.Time) (*Event, error) {
	if tail == nil {
		var err error
		if tail, err = Streamed(ctx, s, rn.ID, rn.Output.StepResults); err != nil {
			return nil, fmt.Errorf("store: read the events of run %s left behind: %w", rn.ID, err)
		}
	}
	if rn.Output.Content == "" {
		// What the run produced last is kept, as a cancelled run keeps its
		// running step's partial text.
		rn.Output.Content = tail.Text
	}
	last := tail.Last
	next := 0
	if last != nil {
		if last.Ends(rn.ID) {
			settle(rn, last)
			return nil, nil
		}
		next = last.Index + 1
	}
	ended := *rn
	ended.Status, ended.Output.Error = run.StatusError, ReasonInterrupted
	ev, err := EndEvent(&ended, next, now)
	if err != nil {
		return nil, fmt.Errorf("store: terminal event of run %s left behind: %w", rn.ID, err)
	}
	return &ev, nil
}

// settle gives a run whose stored stream ends with its terminal event the status
// that event says: the process that executed it died between storing its last
// events and its end. Such a run is not resumed nor interrupted.
func settle(rn *Run, last *Event) {
	var ev run.Event
	_ = json.Unmarshal(last.Data, &ev)
	st := run.StatusError
	switch last.Type {
	case run.EventWorkflowCompleted, run.EventRunCompleted:
		st = run.StatusCompleted
		rn.Output.Content = cmp.Or(ev.Content, rn.Output.Content)
	case run.EventWorkflowCancelled, run.EventRunCancelled:
		st = run.StatusCancelled
		rn.Output.Reason = ev.Reason
	default:
		rn.Output.Error = cmp.Or(ev.Error, ev.Content, ReasonInterrupted)
	}
	rn.Status, rn.Output.Status = st, st
}

// Tail is what the stored events of a run left behind say of its last moments.
type Tail struct {
	// Last is the run's last stored event; nil if none.
	Last *Event
	// Text is what its agents streamed after its last finished top-level step
	// completed: the partial text of the step that was running when its
	// process died.
	Text string
	// Open are the ids of the runs nested in that step (its agents' runs) that
	// started and have no terminal event.
	Open []string
}

// Streamed reads the stored events of a run left behind whose finished top-level
// steps are steps, and returns their Tail.
func Streamed(ctx context.Context, s Store, runID string, steps []run.StepResult) (*Tail, error) {
	var lastDone string // the name of the last finished step
	if len(steps) > 0 {
		lastDone = steps[len(steps)-1].StepName
	}
	tail := &Tail{}
	var text strings.Builder
	for from := 0; ; {
		evs, err := s.Events(ctx, runID, from, eventPage)
		if err != nil {
			return nil, err
		}
		for i := range evs {
			e := &evs[i]
			switch e.Type {
			case run.EventRunContent, run.EventStepCompleted, run.EventRunStarted,
				run.EventRunCompleted, run.EventRunError, run.EventRunCancelled:
			default:
				continue
			}
			var ev struct {
				RunID    string `json:"run_id"`
				StepName string `json:"step_name"`
				Content  string `json:"content"`
			}
			if json.Unmarshal(e.Data, &ev) != nil {
				continue // a structured content is not streamed text
			}
			switch {
			case e.Type == run.EventRunContent:
				text.WriteString(ev.Content)
			case e.Type == run.EventStepCompleted:
				if ev.RunID == runID && lastDone != "" && ev.StepName == lastDone {
					// What came before is in the finished steps' results.
					text.Reset()
					tail.Open = tail.Open[:0]
				}
			case ev.RunID == runID:
			case e.Type == run.EventRunStarted:
				tail.Open = append(tail.Open, ev.RunID)
			default: // a nested run's end
				tail.Open = slices.DeleteFunc(tail.Open, func(id string) bool { return id == ev.RunID })
			}
		}
		if len(evs) > 0 {
			e := evs[len(evs)-1]
			tail.Last = &e
		}
		if len(evs) < eventPage {
			tail.Text = text.String()
			return tail, nil
		}
		from = tail.Last.Index + 1
	}
}
