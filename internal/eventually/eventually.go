// Package eventually waits, in tests, for a condition that nothing signals (a row
// in a database, a status behind an HTTP API, another process's doing): it polls
// the condition until it holds or a deadline passes, and then says what it last
// saw. Where the code under test can signal, wait on the signal instead.
package eventually

import (
	"context"
	"testing"
	"time"
)

// The poll interval starts at minInterval and doubles up to maxInterval, so that
// a quick condition is seen at once and a slow one costs few polls.
const (
	minInterval = time.Millisecond
	maxInterval = 20 * time.Millisecond
)

// Succeeds calls check until it returns nil, and fails t with check's last error
// once within has passed (or t's context ended). check runs on the test's
// goroutine and may call t's methods.
func Succeeds(t testing.TB, within time.Duration, check func() error) {
	t.Helper()
	if err := Wait(t.Context(), within, check); err != nil {
		t.Fatalf("not within %v: %v", within, err)
	}
}

// Wait calls check until it returns nil and then returns nil; once within has
// passed, or ctx is done, it returns check's last error.
func Wait(ctx context.Context, within time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	interval := minInterval
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(interval):
		}
		interval = min(2*interval, maxInterval)
	}
}
