package engine_test

import (
	"context"
	"fmt"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/run"
)

func ExampleBegin() {
	var reg run.Registry
	ctx := context.Background()

	st, _ := reg.Cancel(ctx, "run-1", "not needed any more")
	fmt.Println("before start:", st)

	e, _ := engine.Begin(&reg, ctx, "run-1", nil)
	fmt.Println("context done at start:", e.Ctx.Err() != nil)
	st, reason := e.Finish(nil)
	e.Close()
	fmt.Println("ended:", st, reason)

	st, _ = reg.Cancel(ctx, "run-1", "again")
	fmt.Println("after the end:", st)
	// Output:
	// before start: PENDING
	// context done at start: true
	// ended: CANCELLED not needed any more
	// after the end: CANCELLED
}
