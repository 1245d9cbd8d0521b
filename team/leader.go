package team

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
)

// leaderRun is one run of a team's leader.
type leaderRun struct {
	t     *Team
	reg   *run.Registry
	gate  *engine.Gate
	base  *run.Event
	out   *run.Output
	scope *engine.Scope // where member runs execute: the team run as their parent

	mu      sync.Mutex // guards members
	members []*run.Output
	// answer is a route-mode member's answer: the team's (guarded by mu).
	answer *run.Output
}

func (l *leaderRun) event(t run.EventType) run.Event {
	ev := *l.base
	ev.Event = t
	return ev
}

// execute is the leader's model/tool loop. It leaves what the run produced in out,
// whatever the outcome, and returns why it stopped early, if it did.
func (t *Team) execute(ctx context.Context, reg *run.Registry, gate *engine.Gate, base *run.Event, out *run.Output, input string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("team %q: panic: %v", t.Name, p)
		}
	}()
	sc := &engine.Scope{Registry: reg, Log: gate.Log, Origin: *base.Origin}
	sc.Origin.ParentRunID = base.RunID
	sc.Origin.TeamID, sc.Origin.TeamName = "", ""
	l := &leaderRun{t: t, reg: reg, gate: gate, base: base, out: out, scope: sc}
	defer func() {
		l.mu.Lock()
		out.MemberResponses = l.members
		for _, m := range l.members {
			out.Metrics.Add(m.Metrics) // the team's tokens and cost are its members' too
		}
		l.mu.Unlock()
	}()
	started := l.event(run.EventTeamRunStarted)
	gate.Emit(&started)

	var content strings.Builder
	defer func() { out.Content = content.String() }()
	req := &model.Request{Instructions: t.leaderInstructions(), Tools: t.leaderTools(),
		Messages: []model.Message{{Role: model.RoleUser, Content: input}}}
	limit := t.MaxIterations
	if limit == 0 {
		limit = DefaultMaxIterations
	}
	var modelDetail *run.Detail // the leader's model, on its model requests' events
	if d, ok := t.Model.(model.Describer); ok {
		modelDetail = &run.Detail{Model: d.ModelID(), ModelProvider: d.Provider()}
	}
	for range limit {
		turnStart := content.Len()
		ev := l.event(run.EventTeamModelRequestStarted)
		ev.Detail = modelDetail
		if !gate.Emit(&ev) {
			return stopped(ctx)
		}
		var calls []model.ToolCall
		var used run.Metrics // this request's tokens (and cost), as the model reports them
		var answered run.Detail
		for chunk, err := range t.Model.Stream(ctx, req) {
			if err != nil {
				return fmt.Errorf("team %q: leader's model: %w", t.Name, err)
			}
			if chunk.Text != "" {
				ev := l.event(run.EventTeamRunContent)
				ev.Content = chunk.Text
				if !gate.Emit(&ev) {
					return stopped(ctx)
				}
				content.WriteString(chunk.Text)
			}
			calls = append(calls, chunk.ToolCalls...)
			if u := chunk.Usage; u != nil {
				addUsage(&used, u, t.Model)
			}
			if chunk.Model != "" {
				answered.ResponseModel = chunk.Model
			}
			if chunk.FinishReason != "" {
				answered.FinishReason = string(chunk.FinishReason)
			}
		}
		if ctx.Err() != nil {
			return stopped(ctx)
		}
		ev = l.event(run.EventTeamModelRequestCompleted)
		ev.Metrics, ev.Detail = &used, modelDetail
		if answered.ResponseModel != "" || answered.FinishReason != "" {
			if modelDetail != nil {
				answered.Model, answered.ModelProvider = modelDetail.Model, modelDetail.ModelProvider
			}
			ev.Detail = &answered
		}
		out.Metrics.Add(used)
		if !gate.Emit(&ev) {
			return stopped(ctx)
		}
		if len(calls) == 0 {
			done := l.event(run.EventTeamRunContentCompleted)
			gate.Emit(&done)
			return nil
		}
		turn := content.String()[turnStart:]
		req.Messages = append(req.Messages, model.Message{Role: model.RoleAssistant, Content: turn, ToolCalls: calls})
		req.Messages = append(req.Messages, l.callTools(ctx, calls)...)
		if ctx.Err() != nil {
			return stopped(ctx)
		}
		if a := l.routed(); a != nil {
			// Route mode: the member's answer is the team's.
			content.Reset()
			content.WriteString(a.Content)
			ev := l.event(run.EventTeamRunContent)
			ev.Content = a.Content
			if !gate.Emit(&ev) {
				return stopped(ctx)
			}
			done := l.event(run.EventTeamRunContentCompleted)
			gate.Emit(&done)
			return nil
		}
	}
	return fmt.Errorf("team %q: %w (%d)", t.Name, ErrMaxIterations, limit)
}

// addUsage adds a response's usage (and its cost, for a priced model) to m.
func addUsage(m *run.Metrics, u *model.Usage, mdl model.Model) {
	m.InputTokens += u.InputTokens
	m.OutputTokens += u.OutputTokens
	m.TotalTokens += u.TotalTokens
	m.CacheReadTokens += u.CacheReadTokens
	m.CacheWriteTokens += u.CacheWriteTokens
	m.ReasoningTokens += u.ReasoningTokens
	if p, ok := mdl.(model.Pricer); ok {
		m.Cost += p.Price().Cost(u)
	}
}

func (l *leaderRun) routed() *run.Output {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.answer
}

// stopped returns why a run was stopped: its context's cause, or run.ErrCancelled.
func stopped(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return run.ErrCancelled
}

// callTools runs the leader's calls, in parallel, and returns one tool message per
// call, in the calls' order.
func (l *leaderRun) callTools(ctx context.Context, calls []model.ToolCall) []model.Message {
	results := make([]model.Message, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() { results[i] = l.callTool(ctx, c) })
	}
	wg.Wait()
	return results
}

// callTool runs one call of the leader, between its TeamToolCall events.
func (l *leaderRun) callTool(ctx context.Context, c model.ToolCall) model.Message {
	exec := &run.ToolExecution{ToolCallID: c.ID, ToolName: c.Name, ToolArgs: c.Arguments}
	if !json.Valid(c.Arguments) {
		exec.ToolArgs = nil
	}
	ev := l.event(run.EventTeamToolCallStarted)
	ev.Tool = exec
	l.gate.Emit(&ev)
	result, err := l.delegate(ctx, c)
	msg := model.Message{Role: model.RoleTool, ToolCallID: c.ID, ToolName: c.Name, Content: result}
	done := *exec
	done.Result = result
	ev = l.event(run.EventTeamToolCallCompleted)
	if err != nil {
		msg.Content, msg.IsError = err.Error(), true
		done.Result, done.IsError = msg.Content, true
		ev.Event, ev.Error = run.EventTeamToolCallError, msg.Content
	}
	ev.Tool = &done
	l.gate.Emit(&ev)
	return msg
}

// delegate runs a delegate tool call: one member's task, or every member's.
func (l *leaderRun) delegate(ctx context.Context, c model.ToolCall) (string, error) {
	var args struct {
		MemberID string `json:"member_id"`
		Task     string `json:"task"`
	}
	if err := json.Unmarshal(c.Arguments, &args); err != nil {
		return "", fmt.Errorf("invalid arguments: %w", err)
	}
	if strings.TrimSpace(args.Task) == "" {
		return "", fmt.Errorf("invalid arguments: no task")
	}
	switch {
	case c.Name == toolDelegateAll && l.t.Mode == ModeBroadcast:
		return l.delegateAll(ctx, args.Task)
	case c.Name == toolDelegate && l.t.Mode != ModeBroadcast:
		for _, m := range l.t.Members {
			if m.MemberID() == args.MemberID {
				out, err := l.runMember(ctx, m, args.Task)
				if err == nil && l.t.Mode == ModeRoute {
					l.mu.Lock()
					l.answer = out
					l.mu.Unlock()
				}
				if err != nil {
					return "", err
				}
				return out.Content, nil
			}
		}
		ids := make([]string, len(l.t.Members))
		for i, m := range l.t.Members {
			ids[i] = m.MemberID()
		}
		return "", fmt.Errorf("no member %q; the members are: %s", args.MemberID, strings.Join(ids, ", "))
	}
	return "", fmt.Errorf("unknown tool %q", c.Name)
}

// delegateAll runs every member on task at once, and returns their answers.
func (l *leaderRun) delegateAll(ctx context.Context, task string) (string, error) {
	outs := make([]string, len(l.t.Members))
	var wg sync.WaitGroup
	for i, m := range l.t.Members {
		wg.Go(func() {
			out, err := l.runMember(ctx, m, task)
			if err != nil {
				outs[i] = fmt.Sprintf("Member %s (%s) failed: %v", m.MemberName(), m.MemberID(), err)
				return
			}
			outs[i] = fmt.Sprintf("Member %s (%s):\n%s", m.MemberName(), m.MemberID(), out.Content)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return "", context.Cause(ctx)
	}
	return strings.Join(outs, "\n\n"), nil
}

// runMember runs a member's task as a child run of the team's, and keeps its output.
func (l *leaderRun) runMember(ctx context.Context, m Member, task string) (*run.Output, error) {
	out, err := m.runMember(ctx, l.scope, task)
	if out != nil {
		l.mu.Lock()
		l.members = append(l.members, out)
		l.mu.Unlock()
	}
	if out == nil {
		return nil, err
	}
	if err != nil {
		return out, fmt.Errorf("member %q: %w", m.MemberID(), err)
	}
	return out, nil
}
