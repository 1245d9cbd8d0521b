package run_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kern-dev/kern/run"
)

// A cancel that arrives before its run starts is kept; the run starts cancelled.
// A retry policy waits longer after each failed attempt, up to its cap, and retries
// only the errors it names, never a cancel.
func ExampleRetryPolicy() {
	p := run.RetryPolicy{
		Attempts:   5,
		Backoff:    time.Second,
		MaxBackoff: 5 * time.Second,
		Retryable:  run.RetryOn(run.ErrTimeout),
	}
	for n := 1; n < p.Attempts; n++ {
		fmt.Printf("after attempt %d: wait %s\n", n, p.Delay(n))
	}
	ctx := context.Background()
	fmt.Println("timeout retried:", p.ShouldRetry(ctx, 1, &run.TimeoutError{After: time.Minute}))
	fmt.Println("other error retried:", p.ShouldRetry(ctx, 1, errors.New("bad request")))
	fmt.Println("cancel retried:", p.ShouldRetry(ctx, 1, &run.CancelledError{RunID: "r"}))
	// Output:
	// after attempt 1: wait 1s
	// after attempt 2: wait 2s
	// after attempt 3: wait 4s
	// after attempt 4: wait 5s
	// timeout retried: true
	// other error retried: false
	// cancel retried: false
}
