package config

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

// duration reads a duration such as 30s or 1m30s, which must be positive; 0 if n is
// nil.
func (l *loader) duration(n *yaml.Node, what string) time.Duration {
	n = resolve(n)
	if n == nil {
		return 0
	}
	s, ok := l.str(n, what)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		l.errorf(n, "%s %q is not a duration such as 30s or 2m", what, s)
		return 0
	case d <= 0:
		l.errorf(n, "%s must be positive, not %s", what, s)
		return 0
	}
	return d
}

// number reads a non-negative number.
func (l *loader) number(n *yaml.Node, what string) float64 {
	var f float64
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&f) != nil {
		l.errorf(n, "%s must be a number, not %s", what, kind(n))
		return 0
	}
	if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		l.errorf(n, "%s must not be negative, not %s", what, n.Value)
		return 0
	}
	return f
}

// price reads a model's price: {input, output, cache_read, cache_write}, per
// million tokens.
func (l *loader) price(n *yaml.Node, what string) *model.Price {
	if resolve(n) == nil {
		return nil
	}
	what += " price"
	f := l.fields(n, what, "input", "output", "cache_read", "cache_write")
	if f == nil || !l.required(resolve(n), f, what, "input", "output") {
		return nil
	}
	p := &model.Price{Input: l.number(f["input"], what+" input"), Output: l.number(f["output"], what+" output")}
	if f["cache_read"] != nil {
		p.CacheRead = l.number(f["cache_read"], what+" cache_read")
	}
	if f["cache_write"] != nil {
		p.CacheWrite = l.number(f["cache_write"], what+" cache_write")
	}
	return p
}

// retryClasses are the values of a retry policy's on list.
var retryClasses = []string{"timeout", "error"}

// retry reads a step's retry policy: {attempts, backoff, max_backoff, multiplier,
// on}. on lists the failures retried: timeout (the step's timeout), error (any
// other failure); both when it is left out.
func (l *loader) retry(n *yaml.Node, what string) *run.RetryPolicy {
	if resolve(n) == nil {
		return nil
	}
	what += " retry"
	f := l.fields(n, what, "attempts", "backoff", "max_backoff", "multiplier", "on")
	if f == nil || !l.required(resolve(n), f, what, "attempts") {
		return nil
	}
	before := len(l.errs)
	p := &run.RetryPolicy{
		Attempts:   l.count(f["attempts"], what+" attempts"),
		Backoff:    l.duration(f["backoff"], what+" backoff"),
		MaxBackoff: l.duration(f["max_backoff"], what+" max_backoff"),
	}
	if f["multiplier"] != nil {
		p.Multiplier = l.number(f["multiplier"], what+" multiplier")
	}
	timeouts, others := l.retryOn(f["on"], what)
	switch {
	case timeouts && others:
		p.Retryable = run.RetryAny
	case timeouts:
		p.Retryable = run.RetryOn(run.ErrTimeout)
	case others:
		p.Retryable = func(err error) bool { return !errors.Is(err, run.ErrTimeout) }
	}
	if len(l.errs) > before {
		return nil
	}
	if err := p.Validate(); err != nil {
		l.errorf(n, "%s: %v", what, err)
		return nil
	}
	return p
}

// retryOn reads a retry policy's on list and reports which failures it retries.
func (l *loader) retryOn(n *yaml.Node, what string) (timeouts, others bool) {
	n = resolve(n)
	if n == nil {
		return true, true
	}
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	if len(items) == 0 {
		l.errorf(n, "%s on lists no failure class (want %s)", what, strings.Join(retryClasses, " or "))
	}
	for _, item := range items {
		s, ok := l.str(resolve(item), what+" on")
		switch {
		case !ok:
		case s == "timeout":
			timeouts = true
		case s == "error":
			others = true
		default:
			l.errorf(item, "%s on: unknown failure class %q (want %s)", what, s, strings.Join(retryClasses, " or "))
		}
	}
	return timeouts, others
}

// toolRef is an agent's tool that is another agent or a workflow, resolved once
// every entry is built.
type toolRef struct {
	owner       string // the key of the agent whose tool it is
	kind        string // "agents" or "workflows"
	id          string
	description string
	policy      tool.Policy // the calls' timeout and retry
	n           *yaml.Node  // where the reference is
}

// toolRef reads a tool given as a mapping: {agent: id, description: …} or
// {workflow: id, description: …}, with an optional timeout and retry of its calls.
func (l *loader) toolRef(owner string, n *yaml.Node, what string) {
	f := l.fields(n, what+" tool", "agent", "workflow", "description", "timeout", "retry")
	if f == nil {
		return
	}
	if (f["agent"] == nil) == (f["workflow"] == nil) {
		l.errorf(n, "%s: a tool mapping names one agent or one workflow: {agent: <id>, description: ...}", what)
		return
	}
	ref := toolRef{owner: owner, kind: "agents", n: f["agent"], description: l.optStr(f["description"], what+" tool description")}
	key := "agent"
	if f["workflow"] != nil {
		ref.kind, ref.n, key = "workflows", f["workflow"], "workflow"
	}
	id, ok := l.str(resolve(ref.n), what+" tool "+key)
	if !ok {
		return
	}
	ref.id = id
	ref.policy.Timeout = l.duration(f["timeout"], fmt.Sprintf("%s tool %q timeout", what, id))
	ref.policy.Retry = l.retry(f["retry"], fmt.Sprintf("%s tool %q", what, id))
	l.toolRefs = append(l.toolRefs, ref)
}

// linkTools gives the agents their tools that are agents or workflows, once every
// entry is built, reporting unknown ones and cycles (an agent that would end up
// calling itself).
func (l *loader) linkTools() {
	graph := make(map[string][]string) // "agents.a" → what its runs start
	for _, r := range l.toolRefs {
		graph["agents."+r.owner] = append(graph["agents."+r.owner], r.kind+"."+r.id)
	}
	for key, refs := range l.workflowAgents {
		for _, ref := range refs {
			graph["workflows."+key] = append(graph["workflows."+key], "agents."+ref)
		}
	}
	touched := make(map[string]*agent.Agent)
	for _, r := range l.toolRefs {
		what := fmt.Sprintf("agent %q", r.owner)
		owner := l.agents[r.owner]
		var t tool.Tool
		switch {
		case r.kind == "agents" && l.agents[r.id] != nil:
			t = agent.AsTool(l.agents[r.id], r.description)
		case r.kind == "workflows" && l.workflows[r.id] != nil:
			t = workflow.AsTool(l.workflows[r.id], r.description)
		case !l.declared[r.kind+"."+r.id]:
			l.errorf(r.n, "%s: tool %s %q does not exist", what, strings.TrimSuffix(r.kind, "s"), r.id)
			continue
		default:
			continue // broken already, and reported
		}
		if path := cycle(graph, r.kind+"."+r.id, "agents."+r.owner); path != nil {
			l.errorf(r.n, "%s: tool %s %q makes a cycle: %s", what, strings.TrimSuffix(r.kind, "s"), r.id,
				strings.Join(append([]string{"agents." + r.owner}, path...), " → "))
			continue
		}
		if r.policy != (tool.Policy{}) {
			t = tool.WithPolicy(t, r.policy)
		}
		if owner != nil {
			owner.Tools = append(owner.Tools, t)
			touched[r.owner] = owner
		}
	}
	for key, a := range touched {
		if err := a.Validate(); err != nil {
			l.errorf(l.agentNodes[key], "%v", err)
		}
	}
}

// cycle returns a path of graph from from to to (both included), or nil.
func cycle(graph map[string][]string, from, to string) []string {
	seen := make(map[string]bool)
	var walk func(n string) []string
	walk = func(n string) []string {
		if n == to {
			return []string{n}
		}
		if seen[n] {
			return nil
		}
		seen[n] = true
		for _, next := range graph[n] {
			if p := walk(next); p != nil {
				return append([]string{n}, p...)
			}
		}
		return nil
	}
	return walk(from)
}
