package agent

import (
	"context"
	"fmt"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
)

// budget returns the budget a run charges, with ctx carrying it for the runs its
// tools start: the agent's own inside the one ctx carries (a workflow's, an outer
// agent's), or that one alone when the agent has no Budget. Nil: no bound.
func (a *Agent) budget(ctx context.Context) (context.Context, *run.Budget) {
	b := run.BudgetFrom(ctx)
	if a.Budget <= 0 {
		return ctx, b
	}
	b = run.NewBudget(b, fmt.Sprintf("agent %q", a.Name), a.Budget)
	return run.ContextWithBudget(ctx, b), b
}

// count adds the usage of one model response, and its cost when the model has a
// price, to the run's metrics, and charges the budget; it returns the budget's
// error once the run is over it.
func (a *Agent) count(out *run.Output, u *model.Usage, price model.Pricer, budget *run.Budget) error {
	m := run.Metrics{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, TotalTokens: u.TotalTokens,
		CacheReadTokens: u.CacheReadTokens, CacheWriteTokens: u.CacheWriteTokens, ReasoningTokens: u.ReasoningTokens}
	if price != nil {
		m.Cost = price.Price().Cost(u)
	}
	out.Metrics.Add(m)
	if budget == nil {
		return nil
	}
	n := u.TotalTokens
	if n == 0 {
		n = u.InputTokens + u.OutputTokens
	}
	return budget.Charge(n)
}
