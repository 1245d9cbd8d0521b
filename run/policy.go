package run

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrTimeout matches the error of work that ran past the time a policy gave it (a
// step's or a tool call's Timeout, a workflow's): see TimeoutError. A timeout is a
// failure, not a cancel: the run (or step) it ends is ERROR, never CANCELLED.
var ErrTimeout = errors.New("timed out")

// TimeoutError is the error of work that ran past its time. It matches ErrTimeout.
//
// A run whose context ends with this error as its cause (ContextWithTimeout) ends
// ERROR with it, not CANCELLED.
type TimeoutError struct {
	// What timed out, for the message ("workflow \"w\""); empty when the caller
	// wraps the error with that already.
	What  string
	After time.Duration
}

func (e *TimeoutError) Error() string {
	if e.What == "" {
		return "timed out after " + e.After.String()
	}
	return e.What + " timed out after " + e.After.String()
}

// Is makes errors.Is(err, ErrTimeout) true.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// TimedOut returns the *TimeoutError that ended ctx, the cause of a deadline set by
// WithTimeout (or context.WithTimeoutCause) on ctx or a parent of it; nil when ctx is
// not done or ended otherwise. A context cancelled with an error that merely wraps a
// timeout (a Parallel branch cancelled because a sibling timed out) did not time out.
func TimedOut(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	if te, ok := context.Cause(ctx).(*TimeoutError); ok {
		return te
	}
	return nil
}

// RetryPolicy says how many times work that failed (a workflow step, a tool call)
// runs again, how long it waits between attempts, and after which errors. A nil
// *RetryPolicy runs the work once.
//
// A cancel is never retried, whatever Retryable says: the attempt's context ended
// because someone asked the run to stop.
type RetryPolicy struct {
	// Attempts is how many times the work may run in all, the first included: at
	// least 1.
	Attempts int
	// Backoff is the wait before the second attempt; each later wait is Multiplier
	// times the one before, up to MaxBackoff. Zero retries at once.
	Backoff time.Duration
	// MaxBackoff caps the wait between attempts; zero means no cap.
	MaxBackoff time.Duration
	// Multiplier grows the wait from one attempt to the next: 2 when zero, at least 1.
	Multiplier float64
	// Retryable reports whether an attempt that failed with err is worth another.
	// Nil retries no error: say which ones (RetryOn, RetryAny) — an agent that fails
	// the same way twice spends its tokens twice.
	Retryable func(err error) bool
}

// RetryAny retries every error (but a cancel): a RetryPolicy's Retryable.
func RetryAny(error) bool { return true }

// RetryOn returns a Retryable that retries the errors matching one of targets
// (errors.Is): RetryOn(run.ErrTimeout) retries attempts that timed out.
func RetryOn(targets ...error) func(error) bool {
	return func(err error) bool {
		for _, t := range targets {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
}

// Validate reports what makes p unusable: fewer than one attempt, a negative wait,
// a cap below the first wait, a multiplier below 1, or retries that no error can
// trigger. Errors match ErrInvalid.
func (p *RetryPolicy) Validate() error {
	switch {
	case p == nil:
		return nil
	case p.Attempts < 1:
		return fmt.Errorf("retry policy: Attempts is %d, want at least 1: %w", p.Attempts, ErrInvalid)
	case p.Backoff < 0 || p.MaxBackoff < 0:
		return fmt.Errorf("retry policy: negative backoff (%s, cap %s): %w", p.Backoff, p.MaxBackoff, ErrInvalid)
	case p.MaxBackoff > 0 && p.MaxBackoff < p.Backoff:
		return fmt.Errorf("retry policy: MaxBackoff %s is below Backoff %s: %w", p.MaxBackoff, p.Backoff, ErrInvalid)
	case p.Multiplier != 0 && p.Multiplier < 1:
		return fmt.Errorf("retry policy: Multiplier %g is below 1: %w", p.Multiplier, ErrInvalid)
	case p.Attempts > 1 && p.Retryable == nil:
		return fmt.Errorf("retry policy: %d attempts but no Retryable: say which errors to retry (run.RetryOn, run.RetryAny): %w", p.Attempts, ErrInvalid)
	}
	return nil
}

// ShouldRetry reports whether work that failed with err at attempt (from 1), under
// context ctx, runs again: attempts remain, ctx is not done, err is not a cancel,
// and Retryable says so.
func (p *RetryPolicy) ShouldRetry(ctx context.Context, attempt int, err error) bool {
	if p == nil || attempt >= p.Attempts || err == nil || p.Retryable == nil {
		return false
	}
	if ctx.Err() != nil || errors.Is(err, ErrCancelled) || errors.Is(err, context.Canceled) {
		return false
	}
	return p.Retryable(err)
}

// Delay returns the wait after failed attempt n (from 1), before attempt n+1.
func (p *RetryPolicy) Delay(n int) time.Duration {
	if p == nil || p.Backoff <= 0 {
		return 0
	}
	m := p.Multiplier
	if m == 0 {
		m = 2
	}
	if m == 1 {
		return p.Backoff // MaxBackoff, if set, is not below it
	}
	d := float64(p.Backoff)
	for i := 1; i < n; i++ {
		d *= m
		if p.MaxBackoff > 0 && d >= float64(p.MaxBackoff) {
			return p.MaxBackoff
		}
		if d >= float64(1<<62) {
			break // no cap: stop growing before the duration overflows
		}
	}
	if p.MaxBackoff > 0 && time.Duration(d) > p.MaxBackoff {
		return p.MaxBackoff
	}
	return time.Duration(d)
}

// Wait waits Delay(n) after failed attempt n, or until ctx is done: it returns
// ctx's cause then, at once, so that a cancel during the wait ends the run without
// waiting it out.
func (p *RetryPolicy) Wait(ctx context.Context, n int) error {
	d := p.Delay(n)
	if d <= 0 {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// ContextWithTimeout returns ctx bounded by d, ending with a *TimeoutError (what, d)
// as its cause, so that what runs under it fails rather than being cancelled when d
// has passed; for d <= 0, ctx itself and a no-op cancel.
func ContextWithTimeout(ctx context.Context, d time.Duration, what string) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, d, &TimeoutError{What: what, After: d})
}
