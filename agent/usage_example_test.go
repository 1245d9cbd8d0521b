package agent_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
)

// A model with a price gives its runs a cost; a budget ends a run that uses more
// tokens than it allows.
func ExampleAgent_budget() {
	// The scripted model counts 3 input tokens here (the input's words) and an output
	// token per chunk it streams (a word each).
	m := model.WithPrice(scripted.New("one two three four"), model.Price{Input: 1, Output: 4}) // per million tokens
	a := &agent.Agent{Name: "Counter", Model: m}
	out, _ := a.Run(context.Background(), "count to four")
	fmt.Printf("%d tokens cost %.6f\n", out.Metrics.TotalTokens, out.Metrics.Cost)

	a.Budget = 5
	out, err := a.Run(context.Background(), "count to four")
	fmt.Println(out.Status, errors.Is(err, run.ErrBudget))
	// Output:
	// 7 tokens cost 0.000019
	// ERROR true
}
