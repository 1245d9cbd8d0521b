package eventually

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	t.Parallel()
	n := 0
	err := Wait(t.Context(), time.Minute, func() error {
		if n++; n < 3 {
			return fmt.Errorf("n = %d", n)
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Errorf("Wait = %v after %d checks; want nil after 3", err, n)
	}
}

// TestWaitReportsTheLastCheck: past the deadline, Wait returns what the last
// check saw, not a timeout of its own.
func TestWaitReportsTheLastCheck(t *testing.T) {
	t.Parallel()
	n := 0
	err := Wait(t.Context(), 10*time.Millisecond, func() error {
		n++
		return fmt.Errorf("check %d", n)
	})
	if want := fmt.Sprintf("check %d", n); err == nil || err.Error() != want || n < 2 {
		t.Errorf("Wait = %v after %d checks; want %q", err, n, want)
	}
}

func TestWaitStopsWithItsContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	errNo := errors.New("no")
	if err := Wait(ctx, time.Minute, func() error { return errNo }); !errors.Is(err, errNo) {
		t.Errorf("Wait = %v, want the check's error", err)
	}
}
