package agent

import (
	"context"
	"fmt"
	"time"

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

// count adds the metrics of one model response to the run's and charges the
// budget; it returns the budget's error once the run is over it.
func count(out *run.Output, m *run.Metrics, budget *run.Budget) error {
	out.Metrics.Add(*m)
	if budget == nil {
		return nil
	}
	return budget.Charge(m.Tokens())
}

// requestUsage sums the usage a model response reports (in its last chunk, as a
// rule).
type requestUsage struct {
	model.Usage
	seen bool // a chunk carried a usage
}

func (r *requestUsage) add(u *model.Usage) {
	r.seen = true
	r.InputTokens += u.InputTokens
	r.OutputTokens += u.OutputTokens
	r.TotalTokens += u.TotalTokens
	r.CacheReadTokens += u.CacheReadTokens
	r.CacheWriteTokens += u.CacheWriteTokens
	r.ReasoningTokens += u.ReasoningTokens
}

// requestMetrics returns the metrics of the turn's model request, which lasted d:
// its usage, its cost when the model has a price, its time to first token.
func (t *turn) requestMetrics(price model.Pricer, d time.Duration) *run.Metrics {
	u := &t.usage.Usage
	m := &run.Metrics{Duration: d, TimeToFirstToken: t.firstToken,
		InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, TotalTokens: u.TotalTokens,
		CacheReadTokens: u.CacheReadTokens, CacheWriteTokens: u.CacheWriteTokens, ReasoningTokens: u.ReasoningTokens}
	if price != nil && t.usage.seen {
		m.Cost = price.Price().Cost(u)
	}
	return m
}
