package tool_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
)

var errBusy = errors.New("busy")

// flakyTool fails its first fails calls with errBusy; a call with block set waits
// for its context instead.
func flakyTool(fails int, block bool) (tool.Tool, *atomic.Int32) {
	calls := new(atomic.Int32)
	return tool.Func("lookup", "", func(ctx context.Context, _ noArgs) (string, error) {
		if block {
			<-ctx.Done()
			return "", ctx.Err()
		}
		if int(calls.Add(1)) <= fails {
			return "", errBusy
		}
		return "found", nil
	}), calls
}

func TestWithPolicy(t *testing.T) {
	t.Parallel()
	retry := func(n int, on ...error) *run.RetryPolicy {
		return &run.RetryPolicy{Attempts: n, Retryable: run.RetryOn(on...)}
	}
	tests := []struct {
		name      string
		fails     int
		block     bool
		policy    tool.Policy
		want      string
		wantErr   string
		wantCalls int32
	}{
		{"zero policy", 0, false, tool.Policy{}, "found", "", 1},
		{"retried until it succeeds", 2, false, tool.Policy{Retry: retry(3, errBusy)}, "found", "", 3},
		{"attempts run out", 5, false, tool.Policy{Retry: retry(3, errBusy)}, "", "after 3 attempts: busy", 3},
		{"error not retried", 1, false, tool.Policy{Retry: retry(3, run.ErrTimeout)}, "", "busy", 1},
		{"timeout", 0, true, tool.Policy{Timeout: 10 * time.Millisecond}, "", `tool "lookup": timed out after 10ms`, 0},
		{"timeouts retried", 0, true, tool.Policy{Timeout: time.Millisecond, Retry: retry(2, run.ErrTimeout)}, "", `after 2 attempts: tool "lookup": timed out after 1ms`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inner, calls := flakyTool(tt.fails, tt.block)
			pt := tool.WithPolicy(inner, tt.policy)
			if err := tool.Validate(pt); err != nil {
				t.Fatal(err)
			}
			got, err := pt.Call(t.Context(), nil)
			if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
				t.Errorf("Call = %q, %v; want %q, %q", got, err, tt.want, tt.wantErr)
			}
			if tt.block && !errors.Is(err, run.ErrTimeout) {
				t.Errorf("error %v does not match run.ErrTimeout", err)
			}
			if calls.Load() != tt.wantCalls {
				t.Errorf("%d calls, want %d", calls.Load(), tt.wantCalls)
			}
		})
	}
}

// A cancel during the wait between attempts ends the call at once: the wait is an
// hour, the hang detector 30 seconds.
func TestWithPolicyBackoffCancelled(t *testing.T) {
	t.Parallel()
	failed := make(chan struct{}, 1)
	inner := tool.Func("lookup", "", func(ctx context.Context, _ noArgs) (string, error) {
		failed <- struct{}{}
		return "", errBusy
	})
	pt := tool.WithPolicy(inner, tool.Policy{Retry: &run.RetryPolicy{Attempts: 3, Backoff: time.Hour, Retryable: run.RetryAny}})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := pt.Call(ctx, nil); done <- err }()
	<-failed
	cancel()
	select {
	case err := <-done:
		// The cancel came during the wait (the cancel's error) or just before it (the
		// attempt's): either way no attempt ran again.
		if !errors.Is(err, context.Canceled) && !errors.Is(err, errBusy) {
			t.Errorf("Call = %v, want the cancel or the attempt's error", err)
		}
		if len(failed) != 0 {
			t.Error("an attempt ran after the cancel")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the wait between attempts was not cancelled")
	}
}

func TestWithPolicyInvalid(t *testing.T) {
	t.Parallel()
	inner, _ := flakyTool(0, false)
	tests := []struct {
		name   string
		policy tool.Policy
		want   string
	}{
		{"negative timeout", tool.Policy{Timeout: -time.Second}, "negative timeout"},
		{"zero attempts", tool.Policy{Retry: &run.RetryPolicy{}}, "Attempts is 0"},
		{"no Retryable", tool.Policy{Retry: &run.RetryPolicy{Attempts: 2}}, "no Retryable"},
	}
	for _, tt := range tests {
		err := tool.Validate(tool.WithPolicy(inner, tt.policy))
		if !errors.Is(err, tool.ErrInvalidDefinition) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate = %v, want ErrInvalidDefinition mentioning %q", tt.name, err, tt.want)
		}
	}
}
