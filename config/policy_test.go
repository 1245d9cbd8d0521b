package config

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

const policyYAML = `models:
  m: {provider: scripted, text: "done", price: {input: 2, output: 8, cache_read: 0.5}}
agents:
  boss:
    model: m
    budget: 5000
    tools:
      - {agent: helper, description: Asks the helper, timeout: 1m, retry: {attempts: 2, on: timeout}}
      - {workflow: pipeline, description: Runs the pipeline}
  helper: {model: m}
workflows:
  pipeline:
    timeout: 2m
    budget: 20000
    steps:
      - name: first
        agent: helper
        timeout: 30s
        retry: {attempts: 3, backoff: 1s, max_backoff: 10s, multiplier: 3, on: [timeout]}
      - {name: second, agent: helper, retry: {attempts: 2, on: error}}
      - {name: third, agent: helper, retry: {attempts: 2}}
      - parallel:
          name: fan
          timeout: 1m
          retry: {attempts: 2, on: timeout}
          steps: [{name: left, agent: helper}, {name: right, agent: helper}]
      - loop: {name: again, max_iterations: 2, timeout: 5m, steps: [{name: inner, agent: helper}]}
      - steps: {name: group, retry: {attempts: 3}, steps: [{name: grouped, agent: helper}]}
      - condition: {name: maybe, if: "true", timeout: 10s, steps: [{name: cond, agent: helper}]}
      - router:
          name: pick
          retry: {attempts: 2, on: error}
          choices: [{name: routed, agent: helper}]
          route: [{default: routed}]
`

func TestPoliciesAndAgentTools(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("kern.yaml", []byte(policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	boss, helper := cfg.Agents[0], cfg.Agents[1]
	if boss.Budget != 5000 || helper.Budget != 0 {
		t.Errorf("budgets %d, %d; want 5000, 0", boss.Budget, helper.Budget)
	}
	if len(boss.Tools) != 2 || boss.Tools[0].Definition().Name != "helper" || boss.Tools[1].Definition().Name != "pipeline" ||
		boss.Tools[0].Definition().Description != "Asks the helper" {
		t.Errorf("boss tools %v", boss.Tools)
	}
	p, ok := boss.Model.(model.Pricer)
	if !ok || *p.Price() != (model.Price{Input: 2, Output: 8, CacheRead: 0.5}) {
		t.Errorf("model price %v", boss.Model)
	}
	w := cfg.Workflows[0]
	if w.Timeout != 2*time.Minute || w.Budget != 20000 {
		t.Errorf("workflow timeout %s, budget %d", w.Timeout, w.Budget)
	}
	first, second, third := w.Steps[0].(*workflow.Task), w.Steps[1].(*workflow.Task), w.Steps[2].(*workflow.Task)
	r := first.Retry
	if first.Timeout != 30*time.Second || r == nil || r.Attempts != 3 || r.Backoff != time.Second || r.MaxBackoff != 10*time.Second || r.Multiplier != 3 {
		t.Fatalf("first step: timeout %s, retry %+v", first.Timeout, r)
	}
	timeout := &run.TimeoutError{After: time.Second}
	other := errors.New("model: server error")
	for _, c := range []struct {
		step          *workflow.Task
		timeout, fail bool
	}{{first, true, false}, {second, false, true}, {third, true, true}} {
		if got := c.step.Retry.Retryable(timeout); got != c.timeout {
			t.Errorf("step %s retries a timeout: %v, want %v", c.step.Name, got, c.timeout)
		}
		if got := c.step.Retry.Retryable(other); got != c.fail {
			t.Errorf("step %s retries an error: %v, want %v", c.step.Name, got, c.fail)
		}
	}
	containers := []struct {
		policy  workflow.Policy
		timeout time.Duration
		retries int
	}{
		{w.Steps[3].(*workflow.Parallel).Policy, time.Minute, 2},
		{w.Steps[4].(*workflow.Loop).Policy, 5 * time.Minute, 0},
		{w.Steps[5].(*workflow.Steps).Policy, 0, 3},
		{w.Steps[6].(*workflow.Condition).Policy, 10 * time.Second, 0},
		{w.Steps[7].(*workflow.Router).Policy, 0, 2},
	}
	for i, c := range containers {
		if c.policy.Timeout != c.timeout || (c.retries == 0) != (c.policy.Retry == nil) || (c.policy.Retry != nil && c.policy.Retry.Attempts != c.retries) {
			t.Errorf("container %d: policy %+v, want timeout %s and %d attempts", i, c.policy, c.timeout, c.retries)
		}
	}
	if !w.Steps[3].(*workflow.Parallel).Retry.Retryable(timeout) || w.Steps[3].(*workflow.Parallel).Retry.Retryable(other) {
		t.Error("the parallel's retry does not retry timeouts only")
	}
	out, err := boss.Run(context.Background(), "go")
	if err != nil || out.Metrics.Cost <= 0 || math.IsNaN(out.Metrics.Cost) {
		t.Errorf("boss run: %v, cost %v", err, out.Metrics.Cost)
	}
}

func TestPoliciesBad(t *testing.T) {
	t.Parallel()
	const models = "models:\n  m: {provider: scripted}\n"    // lines 1-2
	const agents = "agents:\n  a: {model: m}\n"              // lines 3-4
	wf := models + agents + "workflows:\n  w:\n    steps:\n" // steps from line 8
	tests := []struct {
		name string
		yaml string
		line int
		want string
	}{
		{"negative step timeout", wf + "      - {name: x, agent: a, timeout: -5s}\n", 8, "timeout must be positive"},
		{"bad step timeout", wf + "      - {name: x, agent: a, timeout: soon}\n", 8, `"soon" is not a duration`},
		{"timeout not a string", wf + "      - {name: x, agent: a, timeout: 30}\n", 8, "must be a string, not an integer"},
		{"retry without attempts", wf + "      - {name: x, agent: a, retry: {backoff: 1s}}\n", 8, "missing attempts"},
		{"retry zero attempts", wf + "      - {name: x, agent: a, retry: {attempts: 0}}\n", 8, "at least 1"},
		{"retry negative backoff", wf + "      - {name: x, agent: a, retry: {attempts: 2, backoff: -1s}}\n", 8, "backoff must be positive"},
		{"retry unknown class", wf + "      - {name: x, agent: a, retry: {attempts: 2, on: [timeout, crash]}}\n", 8, `unknown failure class "crash"`},
		{"retry on nothing", wf + "      - {name: x, agent: a, retry: {attempts: 2, on: []}}\n", 8, "lists no failure class"},
		{"retry unknown key", wf + "      - {name: x, agent: a, retry: {attempts: 2, tries: 3}}\n", 8, `unknown key "tries"`},
		{"retry multiplier below 1", wf + "      - {name: x, agent: a, retry: {attempts: 2, multiplier: 0.5}}\n", 8, "below 1"},
		{"retry cap below backoff", wf + "      - {name: x, agent: a, retry: {attempts: 2, backoff: 5s, max_backoff: 1s}}\n", 8, "below Backoff"},
		{"container bad timeout", wf + "      - parallel: {name: p, timeout: soon, steps: [{name: x, agent: a}]}\n", 8, `parallel "p" timeout "soon" is not a duration`},
		{"container retry without attempts", wf + "      - loop: {name: l, max_iterations: 1, retry: {on: error}, steps: [{name: x, agent: a}]}\n", 8, "missing attempts"},
		{"negative workflow timeout", models + agents + "workflows:\n  w:\n    timeout: -1m\n    steps: [{name: x, agent: a}]\n", 7, "timeout must be positive"},
		{"negative workflow budget", models + agents + "workflows:\n  w:\n    budget: -1\n    steps: [{name: x, agent: a}]\n", 7, "must not be negative"},
		{"negative agent budget", models + "agents:\n  a: {model: m, budget: -100}\n", 4, "must not be negative"},
		{"negative price", "models:\n  m: {provider: scripted, price: {input: -1, output: 2}}\n" + agents, 2, "must not be negative"},
		{"price without output", "models:\n  m: {provider: scripted, price: {input: 1}}\n" + agents, 2, "missing output"},
		{"unknown tool agent", models + "agents:\n  a: {model: m, tools: [{agent: ghost}]}\n", 4, `tool agent "ghost" does not exist`},
		{"unknown tool workflow", models + "agents:\n  a: {model: m, tools: [{workflow: ghost}]}\n", 4, `tool workflow "ghost" does not exist`},
		{"tool both", models + "agents:\n  a: {model: m}\n  b: {model: m, tools: [{agent: a, workflow: w}]}\n", 5, "one agent or one workflow"},
		{"tool itself", models + "agents:\n  a: {model: m, tools: [{agent: a}]}\n", 4, "makes a cycle: agents.a → agents.a"},
		{"tool bad timeout", models + "agents:\n  a: {model: m}\n  b: {model: m, tools: [{agent: a, timeout: 0s}]}\n", 5, `tool "a" timeout must be positive`},
		{"tool cycle", models + "agents:\n  a: {model: m, tools: [{agent: b}]}\n  b:\n    model: m\n    tools:\n      - {agent: a}\n", 4, "makes a cycle: agents.a → agents.b → agents.a"},
		{"cycle through a workflow", models + "agents:\n  a: {model: m, tools: [{workflow: w}]}\nworkflows:\n  w: {steps: [{name: x, agent: a}]}\n", 4, "agents.a → workflows.w → agents.a"},
	}
	for _, tt := range tests {
		_, err := Parse("kern.yaml", []byte(tt.yaml))
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Errorf("%s: error %v, want Errors", tt.name, err)
			continue
		}
		first := es[0]
		if first.Line != tt.line || !strings.Contains(first.Msg, tt.want) {
			t.Errorf("%s: %v\nwant line %d and %q", tt.name, err, tt.line, tt.want)
		}
	}
}
