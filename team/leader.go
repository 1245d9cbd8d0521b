package team

import (
	"context"
	"encoding/json"
	"errors"
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

	mu      sync.Mutex // guards members, answer and paused
	members []*run.Output
	// answer is a route-mode member's answer: the team's (guarded by mu).
	answer *run.Output
	// paused are the member runs that paused for a person in this turn, by the
	// id of the leader's call that gave them their task (guarded by mu).
	paused map[string]memberPause
}

func (l *leaderRun) event(t run.EventType) run.Event {
	ev := *l.base
	ev.Event = t
	return ev
}

// execute is the leader's model/tool loop. It leaves what the run produced in out,
// whatever the outcome, and returns why it stopped early, if it did. With
// pausable set (a top-level team run), a member given a task alone may pause
// for a person, and the team pauses with it (run.ErrPaused); with paused set,
// the run continues from such a pause.
func (t *Team) execute(ctx context.Context, reg *run.Registry, gate *engine.Gate, base *run.Event, out *run.Output, input string,
	pausable bool, paused *run.Resume) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("team %q: panic: %v", t.Name, p)
		}
	}()
	sc := &engine.Scope{Registry: reg, Log: gate.Log, Origin: *base.Origin, Pausable: pausable}
	sc.Origin.ParentRunID = base.RunID
	sc.Origin.TeamID, sc.Origin.TeamName = "", ""
	l := &leaderRun{t: t, reg: reg, gate: gate, base: base, out: out, scope: sc}
	var st *pauseState
	if paused != nil {
		if st, err = t.pausedState(paused.Paused); err != nil {
			return err
		}
		l.members = st.MemberResponses
		out.Metrics = st.Metrics
	}
	defer func() {
		l.mu.Lock()
		out.MemberResponses = l.members
		for _, m := range l.members {
			out.Metrics.Add(m.Metrics) // the team's tokens and cost are its members' too
		}
		l.mu.Unlock()
	}()
	started := l.event(run.EventTeamRunStarted)
	if st != nil {
		started.Event = run.EventTeamRunContinued
	}
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
	iteration := 0
	if st != nil {
		content.WriteString(st.Content)
		iteration = st.Iteration
		msgs := l.continueCalls(ctx, st, paused.Decisions)
		if ctx.Err() != nil {
			return stopped(ctx)
		}
		if err := l.pauseIfWaiting(st.Messages, st.Calls, msgs, iteration, content.String()); err != nil {
			return err
		}
		req.Messages = append(st.Messages, msgs...)
		if a := l.routed(); a != nil {
			return l.answerRouted(ctx, &content, a)
		}
	}
	for ; iteration < limit; iteration++ {
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
		msgs := l.callTools(ctx, calls)
		if ctx.Err() != nil {
			return stopped(ctx)
		}
		if err := l.pauseIfWaiting(req.Messages, calls, msgs, iteration+1, content.String()); err != nil {
			return err
		}
		req.Messages = append(req.Messages, msgs...)
		if a := l.routed(); a != nil {
			return l.answerRouted(ctx, &content, a)
		}
	}
	return fmt.Errorf("team %q: %w (%d)", t.Name, ErrMaxIterations, limit)
}

// answerRouted ends a route-mode run with the member's answer a as the team's.
func (l *leaderRun) answerRouted(ctx context.Context, content *strings.Builder, a *run.Output) error {
	content.Reset()
	content.WriteString(a.Content)
	ev := l.event(run.EventTeamRunContent)
	ev.Content = a.Content
	if !l.gate.Emit(&ev) {
		return stopped(ctx)
	}
	done := l.event(run.EventTeamRunContentCompleted)
	l.gate.Emit(&done)
	return nil
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
	if errors.Is(err, run.ErrPaused) {
		// The member waits for a person: the call ends when the run continues.
		return model.Message{Role: model.RoleTool, ToolCallID: c.ID, ToolName: c.Name}
	}
	return l.endCall(c, result, err)
}

// endCall ends a call of the leader with its TeamToolCallCompleted (or Error)
// event and returns its tool message.
func (l *leaderRun) endCall(c model.ToolCall, result string, err error) model.Message {
	exec := &run.ToolExecution{ToolCallID: c.ID, ToolName: c.Name, ToolArgs: c.Arguments}
	if !json.Valid(c.Arguments) {
		exec.ToolArgs = nil
	}
	msg := model.Message{Role: model.RoleTool, ToolCallID: c.ID, ToolName: c.Name, Content: result}
	done := *exec
	done.Result = result
	ev := l.event(run.EventTeamToolCallCompleted)
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
				return l.delegated(c.ID, m, args.Task, l.scope)(l.runMember(ctx, l.scope, m, args.Task))
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
	// Members given one task together do not pause (ErrNestedPause): the
	// leader's one call would wait on several people at once.
	sc := *l.scope
	sc.Pausable = false
	var wg sync.WaitGroup
	for i, m := range l.t.Members {
		wg.Go(func() {
			out, err := l.runMember(ctx, &sc, m, task)
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

// runMember runs a member's task as a child run of the team's, in sc, and keeps
// its output; a member run that paused is returned with run.ErrPaused, not kept.
func (l *leaderRun) runMember(ctx context.Context, sc *engine.Scope, m Member, task string, opts ...run.Option) (*run.Output, error) {
	out, err := m.runMember(ctx, sc, task, opts...)
	if errors.Is(err, run.ErrPaused) && out != nil && out.Paused != nil {
		return out, err
	}
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
