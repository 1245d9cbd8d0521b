package run_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
)

func TestRetryPolicyShouldRetry(t *testing.T) {
	t.Parallel()
	errBusy := errors.New("busy")
	p := &run.RetryPolicy{Attempts: 3, Retryable: run.RetryAny}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		p       *run.RetryPolicy
		ctx     context.Context
		attempt int
		err     error
		want    bool
	}{
		{"retryable", p, context.Background(), 1, errBusy, true},
		{"last attempt", p, context.Background(), 3, errBusy, false},
		{"no error", p, context.Background(), 1, nil, false},
		{"nil policy", nil, context.Background(), 1, errBusy, false},
		{"no Retryable", &run.RetryPolicy{Attempts: 3}, context.Background(), 1, errBusy, false},
		{"context done", p, done, 1, errBusy, false},
		{"a run's cancel", p, context.Background(), 1, fmt.Errorf("step: %w", &run.CancelledError{RunID: "r"}), false},
		{"a context's cancel", p, context.Background(), 1, context.Canceled, false},
		{"timeout", &run.RetryPolicy{Attempts: 2, Retryable: run.RetryOn(run.ErrTimeout)}, context.Background(), 1, &run.TimeoutError{After: time.Second}, true},
		{"not among RetryOn", &run.RetryPolicy{Attempts: 2, Retryable: run.RetryOn(run.ErrTimeout)}, context.Background(), 1, errBusy, false},
	}
	for _, tt := range tests {
		if got := tt.p.ShouldRetry(tt.ctx, tt.attempt, tt.err); got != tt.want {
			t.Errorf("%s: ShouldRetry = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TimedOut is true only for a context whose own (or a parent's) deadline set by
// ContextWithTimeout passed: not for a cancel whose cause merely wraps a timeout.
func TestTimedOut(t *testing.T) {
	t.Parallel()
	ctx, cancel := run.ContextWithTimeout(context.Background(), time.Nanosecond, "step")
	defer cancel()
	<-ctx.Done()
	child, cancelChild := context.WithCancel(ctx)
	defer cancelChild()
	if err := run.TimedOut(ctx); !errors.Is(err, run.ErrTimeout) || err.Error() != "step timed out after 1ns" {
		t.Errorf("TimedOut = %v", err)
	}
	if run.TimedOut(child) == nil {
		t.Error("a child of a timed out context did not time out")
	}
	wrapped, cancelWrapped := context.WithCancelCause(context.Background())
	cancelWrapped(fmt.Errorf("sibling: %w", &run.TimeoutError{After: time.Second}))
	if err := run.TimedOut(wrapped); err != nil {
		t.Errorf("a cancel whose cause wraps a timeout timed out: %v", err)
	}
	if run.TimedOut(context.Background()) != nil {
		t.Error("a live context timed out")
	}
	if same, _ := run.ContextWithTimeout(ctx, 0, ""); same != ctx {
		t.Error("a zero timeout wrapped the context")
	}
}

// A run whose context a policy's deadline ends finishes ERROR with the timeout;
// one whose context is cancelled finishes CANCELLED.
func TestRetryPolicyWaitIsCancellable(t *testing.T) {
	t.Parallel()
	p := &run.RetryPolicy{Attempts: 2, Backoff: time.Hour}
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("stop")
	cancel(cause)
	if err := p.Wait(ctx, 1); err != cause {
		t.Errorf("Wait = %v, want the context's cause", err)
	}
	if err := (&run.RetryPolicy{}).Wait(context.Background(), 1); err != nil {
		t.Errorf("Wait without backoff = %v", err)
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    run.RetryPolicy
		want []time.Duration // after attempts 1, 2, ...
	}{
		{run.RetryPolicy{}, []time.Duration{0, 0}},
		{run.RetryPolicy{Backoff: time.Second}, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
		{run.RetryPolicy{Backoff: time.Second, MaxBackoff: 3 * time.Second}, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}},
		{run.RetryPolicy{Backoff: time.Second, Multiplier: 1}, []time.Duration{time.Second, time.Second}},
		{run.RetryPolicy{Backoff: 100 * time.Millisecond, Multiplier: 3}, []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 900 * time.Millisecond}},
		{run.RetryPolicy{Backoff: time.Hour}, []time.Duration{time.Hour}},
	}
	for _, tt := range tests {
		for i, want := range tt.want {
			if got := tt.p.Delay(i + 1); got != want {
				t.Errorf("%+v.Delay(%d) = %s, want %s", tt.p, i+1, got, want)
			}
		}
	}
	// No cap: the wait stops growing instead of overflowing.
	p := run.RetryPolicy{Backoff: time.Hour}
	if d := p.Delay(200); d <= 0 {
		t.Errorf("Delay(200) = %s, overflowed", d)
	}
}
