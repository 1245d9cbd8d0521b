package store

import (
	"context"
	"errors"
	"fmt"
	"time"
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
	// starts: it must return promptly.
	Takeover func(ctx context.Context, r *Run) error
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
		for _, rn := range runs {
			if rv.Executes != nil && rv.Executes(rn.ID) {
				continue // this process executes it: the claim only renewed its lease
			}
			if rv.Takeover != nil && !rv.streamEnded(ctx, rn) {
				err := rv.handOver(ctx, rn)
				if !errors.Is(err, ErrNotResumable) {
					continue // resumed, or left to its lease
				}
			}
			if ctx.Err() != nil {
				continue // closing: its lease lapses and another process takes it
			}
			refused = append(refused, rn)
		}
		out, err := rv.interrupt(refused)
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

// streamEnded reports whether a claimed run's stored stream ends with its terminal
// event (or cannot be read): it is then ended, never resumed.
func (rv *Recovery) streamEnded(ctx context.Context, rn *Run) bool {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	last, err := LastEvent(ctx, rv.Store, rn.ID)
	return err != nil || (last != nil && last.Ends(rn.ID))
}

// handOver hands a claimed run to Takeover, and returns what it returned.
func (rv *Recovery) handOver(ctx context.Context, rn *Run) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return rv.Takeover(ctx, rn)
}

// interrupt ends the claimed runs ERROR "interrupted" (see interruptRuns).
func (rv *Recovery) interrupt(runs []*Run) ([]*Run, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	return interruptRuns(ctx, rv.Store, runs)
}
