package agent_test

import (
	"context"
	"errors"
	"iter"
	"math"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
)

// usageModel answers every request with "ok" and the usage u, counting requests.
type usageModel struct {
	u        model.Usage
	requests int
	calls    bool // ask for a tool call every time
}

func (m *usageModel) Stream(ctx context.Context, req *model.Request) iter.Seq2[model.Chunk, error] {
	m.requests++
	return func(yield func(model.Chunk, error) bool) {
		if !yield(model.Chunk{Text: "ok"}, nil) {
			return
		}
		u := m.u
		c := model.Chunk{Usage: &u, FinishReason: model.FinishStop}
		if m.calls {
			c.ToolCalls, c.FinishReason = []model.ToolCall{{ID: "c", Name: "noop", Arguments: []byte(`{}`)}}, model.FinishToolCalls
		}
		yield(c, nil)
	}
}

func noopTool() tool.Tool {
	return tool.Func("noop", "does nothing", func(ctx context.Context, _ struct{}) (string, error) { return "done", nil })
}

func TestUsageAndCost(t *testing.T) {
	t.Parallel()
	m := &usageModel{u: model.Usage{InputTokens: 1_000_000, OutputTokens: 200_000, TotalTokens: 1_200_000,
		CacheReadTokens: 400_000, CacheWriteTokens: 100_000, ReasoningTokens: 50_000}}
	price := model.Price{Input: 2, Output: 8, CacheRead: 0.5} // cache writes at the input price
	a := &agent.Agent{Name: "priced", Model: model.WithPrice(m, price)}
	out, err := a.Run(t.Context(), "hi")
	if err != nil {
		t.Fatal(err)
	}
	got := out.Metrics
	got.Duration, got.TimeToFirstToken = 0, 0
	// 500k plain input at 2, 400k cached at 0.5, 100k written at 2, 200k output at 8.
	wantCost := (500_000*2.0 + 400_000*0.5 + 100_000*2.0 + 200_000*8.0) / 1e6
	want := run.Metrics{InputTokens: 1_000_000, OutputTokens: 200_000, TotalTokens: 1_200_000,
		CacheReadTokens: 400_000, CacheWriteTokens: 100_000, ReasoningTokens: 50_000}
	if math.Abs(got.Cost-wantCost) > 1e-9 {
		t.Errorf("cost %v, want %v", got.Cost, wantCost)
	}
	got.Cost = 0
	if got != want {
		t.Errorf("metrics %+v, want %+v", got, want)
	}
	if out.Model != "" || out.ModelProvider != "" {
		t.Errorf("a priced model without a Describer names itself %q/%q", out.ModelProvider, out.Model)
	}
}

func TestPricedModelDescribes(t *testing.T) {
	t.Parallel()
	a := &agent.Agent{Name: "priced", Model: model.WithPrice(scripted.New("hello there"), model.Price{Input: 1, Output: 1})}
	out, err := a.Run(t.Context(), "hi")
	if err != nil {
		t.Fatal(err)
	}
	if out.ModelProvider != scripted.Provider || out.Model != "scripted" {
		t.Errorf("model %q/%q, want the scripted model's names", out.ModelProvider, out.Model)
	}
	if out.Metrics.Cost <= 0 {
		t.Errorf("cost %v, want > 0", out.Metrics.Cost)
	}
}

func TestBudgetEndsRun(t *testing.T) {
	t.Parallel()
	m := &usageModel{u: model.Usage{InputTokens: 60, OutputTokens: 10, TotalTokens: 70}, calls: true}
	a := &agent.Agent{Name: "thrifty", Model: m, Tools: []tool.Tool{noopTool()}, Budget: 100, MaxIterations: 5}
	var last *run.Event
	for ev, err := range a.Stream(t.Context(), "hi") {
		if err != nil {
			t.Fatal(err)
		}
		last = ev
	}
	if last.Event != run.EventRunError {
		t.Fatalf("terminal event %s, want RunError", last.Event)
	}
	// The first response (70) fits, the second (140) goes over: no third request.
	if m.requests != 2 {
		t.Errorf("%d model requests, want 2", m.requests)
	}
	out, err := a.Run(t.Context(), "hi")
	var be *run.BudgetError
	if !errors.Is(err, run.ErrBudget) || !errors.As(err, &be) || be.Max != 100 || be.Used != 140 {
		t.Fatalf("error %v, want a budget error of 140 tokens used of 100", err)
	}
	if out.Status != run.StatusError || out.Metrics.TotalTokens != 140 {
		t.Errorf("status %s, tokens %d; want ERROR with the 140 tokens counted", out.Status, out.Metrics.TotalTokens)
	}
}

func TestBudgetOfOuterRun(t *testing.T) {
	t.Parallel()
	// An outer budget (a workflow's, an agent's calling this one as a tool) spent
	// already: the run makes no request.
	outer := run.NewBudget(nil, "outer", 10)
	outer.Charge(11)
	m := &usageModel{u: model.Usage{TotalTokens: 1}}
	a := &agent.Agent{Name: "inner", Model: m}
	_, err := a.Run(run.ContextWithBudget(t.Context(), outer), "hi")
	if !errors.Is(err, run.ErrBudget) || m.requests != 0 {
		t.Errorf("error %v after %d requests, want a budget error before any", err, m.requests)
	}
	if err := (&agent.Agent{Name: "x", Model: m, Budget: -1}).Validate(); !errors.Is(err, run.ErrInvalid) {
		t.Errorf("negative budget: %v", err)
	}
}

func TestBudgetSpansAgentsAsTools(t *testing.T) {
	t.Parallel()
	inner := &agent.Agent{Name: "helper", Model: &usageModel{u: model.Usage{TotalTokens: 70}}}
	outerModel := &usageModel{u: model.Usage{TotalTokens: 20}, calls: true}
	outer := &agent.Agent{Name: "lead", Model: &callsHelper{outerModel}, Tools: []tool.Tool{agent.AsTool(inner, "helps")}, Budget: 80}
	out, err := outer.Run(t.Context(), "go")
	var be *run.BudgetError
	if !errors.As(err, &be) || be.What != `agent "lead"` {
		t.Fatalf("error %v, want the lead's budget error", err)
	}
	// The lead's first response (20) and the helper's (70) spend the budget: the
	// lead makes no second request.
	if outerModel.requests != 1 || out.Status != run.StatusError {
		t.Errorf("%d requests by the lead, status %s; want 1, ERROR", outerModel.requests, out.Status)
	}
}

// callsHelper is a usageModel whose tool call is to the helper agent.
type callsHelper struct{ *usageModel }

func (m *callsHelper) Stream(ctx context.Context, req *model.Request) iter.Seq2[model.Chunk, error] {
	return func(yield func(model.Chunk, error) bool) {
		for c, err := range m.usageModel.Stream(ctx, req) {
			for i := range c.ToolCalls {
				c.ToolCalls[i].Name, c.ToolCalls[i].Arguments = "helper", []byte(`{"input":"help"}`)
			}
			if !yield(c, err) {
				return
			}
		}
	}
}
