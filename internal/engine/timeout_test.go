package engine_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/run"
)

func TestEntryFinishTimeoutIsAnError(t *testing.T) {
	t.Parallel()
	var reg run.Registry
	ctx, cancel := run.ContextWithTimeout(context.Background(), time.Nanosecond, "")
	defer cancel()
	e, err := engine.Begin(&reg, ctx, run.NewID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	<-e.Ctx.Done()
	st, reason := e.Finish(e.Ctx.Err())
	if st != run.StatusError || reason != "" || !errors.Is(e.Err(nil), run.ErrTimeout) {
		t.Errorf("Finish = %s %q, Err = %v; want ERROR with the timeout", st, reason, e.Err(nil))
	}
	e.Close()

	plain, cancelPlain := context.WithCancel(context.Background())
	e, _ = engine.Begin(&reg, plain, run.NewID(), nil)
	cancelPlain()
	if st, _ := e.Finish(nil); st != run.StatusCancelled {
		t.Errorf("cancelled context: Finish = %s, want CANCELLED", st)
	}
	e.Close()
}
