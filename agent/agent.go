// Package agent runs one agent: a model, the tools it may call, and instructions. A run
// streams the model's answer, executes the tool calls it asks for (in parallel when it
// asks for several), feeds their results back, and repeats until the model answers
// without tool calls, every step visible as an event.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
)

// DefaultMaxIterations bounds the model requests of one run when MaxIterations is 0.
const DefaultMaxIterations = 10

// ErrMaxIterations is the error of a run whose model kept asking for tools past the
// agent's MaxIterations.
var ErrMaxIterations = errors.New("agent: model requests exceeded the iteration bound")

// Agent is a model with tools and instructions. Build it as a struct literal; the zero
// value of every optional field works. An Agent may run many times at once.
type Agent struct {
	// ID identifies the agent in events and routes; it defaults to a slug of Name.
	ID           string
	Name         string
	Model        model.Model
	Tools        []tool.Tool
	Instructions string
	// MaxIterations bounds the model requests of one run (DefaultMaxIterations if 0).
	MaxIterations int
	// History is how many of the session's earlier completed runs the agent puts
	// before the new input in the model's context, each as the user's input and the
	// agent's answer. It needs a Recorder that keeps sessions, and a session id.
	History int
	// Registry is where the agent's runs can be cancelled. Share one with the
	// workflows and servers that must cancel them; nil means a registry of the
	// agent's own.
	Registry *run.Registry
	// Recorder persists the agent's runs (see store.Recorder); nil keeps them in
	// memory only.
	Recorder run.Recorder
	// Settings tune the model's answers (temperature, max tokens, tool choice...);
	// a run can override them with WithSettings. Nil leaves them to the provider.
	Settings *model.Settings
	// Output, when set, makes the agent answer with a JSON object matching it (see
	// OutputSchema).
	Output *OutputSchema
	// Budget bounds the tokens of one run (input and output, as the model reports
	// them, agents called as tools included): once over it, the run ends ERROR
	// with a *run.BudgetError. Zero means no bound.
	Budget int
	// Toolsets are groups of tools that may change during a run (an MCP server's,
	// see package tools/mcp): the agent asks each for its tools before every model
	// request, and offers them after Tools.
	Toolsets []tool.Toolset

	once sync.Once
	reg  *run.Registry
	// detail is the model's detail of the agent's last run, shared by its runs'
	// events while the model says the same (events are immutable once emitted):
	// a run that streams keeps none of its own.
	detail atomic.Pointer[run.Detail]
}

// AgentID returns the agent's ID: ID, or a slug of Name.
func (a *Agent) AgentID() string {
	if a.ID != "" {
		return a.ID
	}
	return run.Slug(a.Name)
}

func (a *Agent) registry() *run.Registry {
	if a.Registry != nil {
		return a.Registry
	}
	a.once.Do(func() { a.reg = new(run.Registry) })
	return a.reg
}

// Validate reports what makes the agent unable to run: no model, an invalid or
// duplicate tool, a negative bound, settings out of range or refused by the model's
// provider, an output schema that cannot be used.
func (a *Agent) Validate() (err error) {
	if a == nil {
		return fmt.Errorf("agent is nil: %w", run.ErrInvalid)
	}
	defer func() {
		// A typed nil Tool panics when asked for its definition.
		if p := recover(); p != nil {
			err = fmt.Errorf("agent %q: a tool failed to describe itself: %v: %w", a.Name, p, run.ErrInvalid)
		}
	}()
	name := a.Name
	if name == "" {
		name = a.ID
	}
	if a.Model == nil {
		return fmt.Errorf("agent %q: no model: %w", name, run.ErrInvalid)
	}
	if a.MaxIterations < 0 || a.History < 0 || a.Budget < 0 {
		return fmt.Errorf("agent %q: MaxIterations (%d), History (%d) and Budget (%d) must not be negative: %w", name, a.MaxIterations, a.History, a.Budget, run.ErrInvalid)
	}
	for i, t := range a.Tools {
		if t == nil {
			return fmt.Errorf("agent %q: tool %d is nil: %w", name, i, run.ErrInvalid)
		}
		if err := tool.Validate(t); err != nil {
			return fmt.Errorf("agent %q: %w: %w", name, err, run.ErrInvalid)
		}
		for _, u := range a.Tools[:i] {
			if u.Definition().Name == t.Definition().Name {
				return fmt.Errorf("agent %q: two tools named %q: %w", name, t.Definition().Name, run.ErrInvalid)
			}
		}
	}
	for i, ts := range a.Toolsets {
		if ts == nil {
			return fmt.Errorf("agent %q: toolset %d is nil: %w", name, i, run.ErrInvalid)
		}
	}
	if a.Settings == nil {
		return a.check(name, model.Settings{}, nil)
	}
	return a.check(name, *a.Settings, nil)
}

// check checks the settings and attachments of a run unless there is nothing to
// check.
func (a *Agent) check(name string, s model.Settings, atts []model.Attachment) error {
	if a.Output == nil && s.IsZero() && len(atts) == 0 {
		return nil
	}
	return a.checkRequest(name, s, atts)
}

// Run runs the agent on input and returns its output once it has ended. The error is
// nil when the run completed; for a cancelled run it matches run.ErrCancelled, and the
// output still holds what the run produced until then.
func (a *Agent) Run(ctx context.Context, input string, opts ...run.Option) (*run.Output, error) {
	return engine.Result(a.Start(ctx, input, opts...))
}

// Stream runs the agent on input and yields its events as they happen, ending with
// the run's one terminal event (RunCompleted, RunCancelled or RunError). The error is
// not nil only when the run could not start. Breaking out of the loop cancels the run.
func (a *Agent) Stream(ctx context.Context, input string, opts ...run.Option) iter.Seq2[*run.Event, error] {
	return func(yield func(*run.Event, error) bool) {
		x, err := a.Start(ctx, input, opts...)
		engine.Events(x, err, yield)
	}
}

// Start starts a run in the background and returns at once; the returned Exec gives
// its events and output. Cancelling ctx cancels the run.
//
// With run.WithResume, the run continues a stored one: it starts over (an agent
// keeps no finished steps; Resume.Steps is ignored), its events numbered from
// Resume.NextEvent.
func (a *Agent) Start(ctx context.Context, input string, opts ...run.Option) (*run.Exec, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	c := engine.Component{Kind: run.KindAgent, ID: a.AgentID(), Name: a.Name, Registry: a.registry(), Recorder: a.Recorder}
	return engine.Start(ctx, c, input, opts, func(o run.Options, base *run.Event, out *run.Output) (func(engine.Run) error, error) {
		if o.Resume != nil && o.Resume.NextEvent < 0 {
			return nil, fmt.Errorf("agent %q: cannot resume at event index %d: %w", a.Name, o.Resume.NextEvent, run.ErrInvalid)
		}
		settings, atts := a.settings(&o), attachments(&o)
		if len(o.Extras) > 0 {
			if err := a.check(a.Name, settings, atts); err != nil {
				return nil, err
			}
		}
		a.describeModel(out)
		sessionID := o.SessionID
		return func(r engine.Run) error {
			history, err := a.history(r.Ctx(), sessionID)
			if err != nil {
				return err
			}
			ctx := a.toolScope(r.Ctx(), a.registry(), r.Log, base)
			var paused *run.Resume
			if o.Resume != nil && o.Resume.Paused != nil {
				paused = o.Resume
			}
			return a.execute(ctx, &engine.Gate{Log: r.Log}, base, out, input, history, settings, atts, paused)
		}, nil
	})
}

// RunNested runs the agent inside another run (a workflow step, a team): its events
// go to the scope's log, stamped with the scope's fields and the agent's own run ID
// (new unless opts set one), and it can be cancelled through the scope's registry as
// well as through ctx. It returns once the run has ended, as Run does: its output,
// and an error that is nil when it completed and matches run.ErrCancelled when it
// was cancelled; a nil output when the run could not start.
func (a *Agent) RunNested(ctx context.Context, sc *engine.Scope, input string, opts ...run.Option) (*run.Output, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	base, out, settings, atts, paused, err := a.nestedRun(sc, input, opts)
	if err != nil {
		return nil, err
	}
	reg := sc.Registry
	if reg == nil {
		reg = a.registry()
	}
	gate := &engine.Gate{Log: sc.Log}
	spec := engine.Spec{Registry: reg, Base: base, Kind: run.KindAgent, Output: out, Pausable: sc.Pausable}
	return engine.Nested(ctx, spec, sc.Log, gate.Stop, func(ctx context.Context) error {
		return a.execute(a.toolScope(ctx, reg, sc.Log, base), gate, base, out, input, nil, settings, atts, paused)
	})
}

// nestedRun returns what RunNested runs with: the base of the run's events, its
// output, its settings and attachments, and the pause it continues from, if any.
// A call of its own: RunNested's frame is on the stack of the run's goroutine
// while the agent streams.
//
//go:noinline
func (a *Agent) nestedRun(sc *engine.Scope, input string, opts []run.Option) (base *run.Event, out *run.Output, settings model.Settings, atts []model.Attachment, paused *run.Resume, err error) {
	o := run.Apply(opts)
	settings, atts = a.settings(&o), attachments(&o)
	if len(o.Extras) > 0 {
		if err := a.check(a.Name, settings, atts); err != nil {
			return nil, nil, settings, nil, nil, err
		}
	}
	origin := sc.Origin
	origin.AgentID, origin.AgentName = a.AgentID(), a.Name
	if o.SessionID != "" {
		origin.SessionID = o.SessionID
	}
	if o.ParentRunID != "" {
		origin.ParentRunID = o.ParentRunID
	}
	base = &run.Event{RunID: o.ID, Origin: &origin}
	out = a.newOutput(base, input)
	if o.Resume != nil && o.Resume.Paused != nil {
		paused = o.Resume // continued from a pause, in the step it paused in
	}
	return base, out, settings, atts, paused, nil
}

// CancelRun cancels the agent's run with the given ID and waits until it has ended (or
// ctx is done); see run.Registry.Cancel for what it returns. An agent run inside a
// workflow step is registered with the workflow's registry: cancel it there, or give
// the agent and the workflow the same Registry.
func (a *Agent) CancelRun(ctx context.Context, runID string) (run.Status, error) {
	return a.registry().Cancel(ctx, runID, run.ReasonRequested)
}

func (a *Agent) newOutput(base *run.Event, input string) *run.Output {
	out := &run.Output{
		RunID: base.RunID, SessionID: base.SessionID, UserID: base.UserID, ParentRunID: base.ParentRunID,
		AgentID: base.AgentID, AgentName: base.AgentName,
		Status: run.StatusRunning, Input: input, CreatedAt: time.Now().Unix(),
	}
	a.describeModel(out)
	return out
}

// describeModel sets the model and its provider on out, when the model says them.
func (a *Agent) describeModel(out *run.Output) {
	if d, ok := a.Model.(model.Describer); ok {
		out.ModelProvider, out.Model = d.Provider(), d.ModelID()
	}
}

// execute is the model/tool loop of one run. It leaves what the run produced in out,
// whatever the outcome, and returns why it stopped early, if it did.
// history returns the messages of the session's earlier runs the agent adds to its
// context.
func (a *Agent) history(ctx context.Context, sessionID string) ([]model.Message, error) {
	sessions, ok := a.Recorder.(run.Sessions)
	if !ok || a.History <= 0 || sessionID == "" {
		return nil, nil
	}
	var outs []*run.Output
	var err error
	engine.Apart(func() { outs, err = sessions.History(ctx, sessionID, run.KindAgent, a.AgentID(), a.History) }) // a store's deep stack, not the run's
	if err != nil {
		return nil, err
	}
	msgs := make([]model.Message, 0, 2*len(outs))
	for _, o := range outs {
		msgs = append(msgs, model.Message{Role: model.RoleUser, Content: o.Input}, model.Message{Role: model.RoleAssistant, Content: o.Content})
	}
	return msgs, nil
}

// With paused set, the run continues from a pause: the calls it waited for run
// as decided, and the loop goes on from there.
func (a *Agent) execute(ctx context.Context, log *engine.Gate, base *run.Event, out *run.Output, input string, history []model.Message, settings model.Settings, atts []model.Attachment, paused *run.Resume) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("agent %q: panic: %v", a.Name, p)
		}
	}()
	event := func(t run.EventType) run.Event {
		ev := *base
		ev.Event = t
		return ev
	}
	modelDetail := emitStarted(log, base, out, paused != nil, &a.detail)

	start := time.Now()
	toolCtx, budget := a.budget(ctx) // ctx itself is not reassigned: the stream's closure would move it to the heap
	price, _ := a.Model.(model.Pricer)
	var content text
	defer func() { out.Content = content.String() }()

	req := &model.Request{Instructions: a.Instructions, Tools: a.definitions(), Settings: settings}
	if a.Output != nil {
		req.Output = a.Output.request()
	}
	first := 0 // the model requests made before (a paused run's)
	if paused != nil {
		if first, err = a.resume(toolCtx, log, event, out, &content, req, paused, budget); err != nil {
			return err
		}
	} else {
		req.Messages = firstMessages(history, input, atts, len(a.Tools)+len(a.Toolsets) > 0)
	}
	limit := a.MaxIterations
	if limit == 0 {
		limit = DefaultMaxIterations
	}
	retried := false // a structured answer was asked for again
	for iteration := first; iteration < limit; iteration++ {
		if a.Output != nil {
			content.Reset() // the content is the last answer, not the attempts before it
		}
		var offered []tool.Tool // the toolsets' tools offered in this request
		if len(a.Toolsets) > 0 {
			if req.Tools, offered, err = a.currentTools(ctx); err != nil {
				return err
			}
		}
		turnStart := content.Len()
		if err := budget.Charge(0); err != nil { // spent already, by another run in it
			return err
		}
		var t turn
		reqStart := time.Now()
		if !emit(log, base, run.EventModelRequestStarted, "", modelDetail, nil) {
			return stopped(ctx)
		}
		for chunk, err := range a.Model.Stream(ctx, req) {
			if err != nil {
				return fmt.Errorf("agent %q: model: %w", a.Name, err)
			}
			if !t.chunk(log, event, &chunk, reqStart) {
				return stopped(ctx)
			}
			if chunk.Text != "" {
				// A structured answer is sent once valid.
				if a.Output == nil && !emit(log, base, run.EventRunContent, chunk.Text, nil, nil) {
					return stopped(ctx) // the run was cancelled: keep nothing more
				}
				if out.Metrics.TimeToFirstToken == 0 {
					out.Metrics.TimeToFirstToken = time.Since(start)
				}
				content.WriteString(chunk.Text)
			}
			if u := chunk.Usage; u != nil {
				t.usage.add(u)
			}
		}
		if ctx.Err() != nil || !t.end(log, event) || !t.refused(log, event) {
			return stopped(ctx)
		}
		// The request's usage, in its ModelRequestCompleted event, then in the run's
		// metrics and budget.
		m := t.requestMetrics(price, time.Since(reqStart))
		if !emit(log, base, run.EventModelRequestCompleted, "", t.completedDetail(modelDetail), m) {
			return stopped(ctx)
		}
		if t.usage.seen {
			if err := count(out, m, budget); err != nil {
				return err
			}
		}
		turn := content.String()[turnStart:]
		if len(t.calls) == 0 {
			if a.Output != nil {
				fix, err := a.answer(log, event, out, &content, turn, t.refusal.String(), retried)
				if err != nil || fix == nil {
					return err
				}
				retried = true
				req.Messages = appendFix(req.Messages, turn, t.thinking, fix)
				continue
			}
			emit(log, base, run.EventRunContentCompleted, "", nil, nil)
			return nil
		}
		req.Messages = appendCalls(req.Messages, turn, t.calls, t.thinking)
		callCtx := withOffered(toolCtx, offered) // the calls go to this request's tools
		if waiting := a.pending(callCtx, t.calls); waiting != nil {
			return a.pause(callCtx, log, event, out, req.Messages, t.calls, waiting, iteration+1, content.String())
		}
		req.Messages = append(req.Messages, a.callTools(callCtx, log, event, t.calls)...)
		if ctx.Err() != nil {
			return stopped(ctx)
		}
	}
	return fmt.Errorf("agent %q: %w (%d)", a.Name, ErrMaxIterations, limit)
}

// The events of execute are built in calls of their own, not inlined: its frame
// is on the stack of the run's goroutine while the model streams, and each event
// built in it would take the frame an event's size more.

// emitStarted emits the run's RunStarted (RunContinued when it continues a pause)
// and returns the model's detail, shared by the model request events (events are
// immutable once emitted).
//
//go:noinline
func emitStarted(log *engine.Gate, base *run.Event, out *run.Output, continued bool, shared *atomic.Pointer[run.Detail]) *run.Detail {
	ev := *base
	ev.Event = run.EventRunStarted
	if continued {
		ev.Event = run.EventRunContinued
	}
	if out.Model != "" || out.ModelProvider != "" {
		d := shared.Load()
		if d == nil || d.Model != out.Model || d.ModelProvider != out.ModelProvider {
			d = &run.Detail{Model: out.Model, ModelProvider: out.ModelProvider}
			shared.Store(d)
		}
		ev.Detail = d
	}
	log.Emit(&ev)
	return ev.Detail
}

// emit emits an event of type t built on base, with the content, detail and
// metrics given (each may be empty), and reports whether the log took it.
//
//go:noinline
func emit(log *engine.Gate, base *run.Event, t run.EventType, content string, detail *run.Detail, m *run.Metrics) bool {
	ev := *base
	ev.Event, ev.Content, ev.Detail, ev.Metrics = t, content, detail, m
	return log.Emit(&ev)
}

// firstMessages returns a run's first request's messages: the session's history,
// then the input. The slice has room for a turn of tool calls if the agent has
// tools: an agent without keeps its messages for the whole run, and a thousand
// open runs would each keep room for three more.
//
//go:noinline
func firstMessages(history []model.Message, input string, atts []model.Attachment, tools bool) []model.Message {
	room := 1
	if tools {
		room = 4
	}
	msgs := append(make([]model.Message, 0, len(history)+room), history...)
	return append(msgs, model.Message{Role: model.RoleUser, Content: input, Attachments: atts})
}

// appendCalls appends to msgs the model's answer that called tools.
//
//go:noinline
func appendCalls(msgs []model.Message, content string, calls []model.ToolCall, thinking []model.Thinking) []model.Message {
	return append(msgs, model.Message{Role: model.RoleAssistant, Content: content, ToolCalls: calls, Thinking: thinking})
}

// appendFix appends to msgs the model's structured answer that was not valid and
// the request to fix it.
//
//go:noinline
func appendFix(msgs []model.Message, content string, thinking []model.Thinking, fix error) []model.Message {
	return append(msgs, model.Message{Role: model.RoleAssistant, Content: content, Thinking: thinking},
		model.Message{Role: model.RoleUser, Content: fixPrompt(fix)})
}

// stopped returns why a run was stopped: its context's cause, or run.ErrCancelled when
// the log refused an event before the cancel reached the context.
func stopped(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return run.ErrCancelled
}

func (a *Agent) definitions() []tool.Definition {
	if len(a.Tools) == 0 {
		return nil
	}
	defs := make([]tool.Definition, len(a.Tools))
	for i, t := range a.Tools {
		defs[i] = t.Definition()
	}
	return defs
}

// callTools runs the calls, in parallel when there are several, and returns one tool
// message per call, in the calls' order.
func (a *Agent) callTools(ctx context.Context, log *engine.Gate, event func(run.EventType) run.Event, calls []model.ToolCall) []model.Message {
	results := make([]model.Message, len(calls))
	if len(calls) == 1 {
		results[0] = a.callTool(ctx, log, event, calls[0])
		return results
	}
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() { results[i] = a.callTool(ctx, log, event, c) })
	}
	wg.Wait()
	return results
}

// callTool runs one call. Whatever goes wrong (an unknown tool, invalid arguments, an
// error, a panic) becomes a tool-error result the model reads.
func (a *Agent) callTool(ctx context.Context, log *engine.Gate, event func(run.EventType) run.Event, c model.ToolCall) model.Message {
	exec := &run.ToolExecution{ToolCallID: c.ID, ToolName: c.Name, ToolArgs: eventArgs(c.Arguments)}
	ev := event(run.EventToolCallStarted)
	ev.Tool = exec
	log.Emit(&ev)

	result, err := a.invoke(ctx, c)
	msg := model.Message{Role: model.RoleTool, ToolCallID: c.ID, ToolName: c.Name, Content: result}
	done := *exec
	done.Result = result
	ev = event(run.EventToolCallCompleted)
	if err != nil {
		msg.Content, msg.IsError = err.Error(), true
		done.Result, done.IsError = msg.Content, true
		ev.Event, ev.Error = run.EventToolCallError, msg.Content
	}
	ev.Tool = &done
	log.Emit(&ev)
	return msg
}

// eventArgs returns a tool call's arguments as events carry them: as they are when
// they are JSON, or else as a JSON string holding what the model wrote, so that the
// event can still be encoded.
func eventArgs(args json.RawMessage) json.RawMessage {
	if len(args) == 0 || json.Valid(args) {
		return args
	}
	quoted, _ := json.Marshal(string(args))
	return quoted
}

func (a *Agent) invoke(ctx context.Context, c model.ToolCall) (result string, err error) {
	var t tool.Tool
	for _, u := range a.Tools {
		if u.Definition().Name == c.Name {
			t = u
			break
		}
	}
	if t == nil {
		t = offeredTool(ctx, c.Name)
	}
	if t == nil {
		names := make([]string, len(a.Tools))
		for i, u := range a.Tools {
			names[i] = u.Definition().Name
		}
		return "", fmt.Errorf("unknown tool %q; the tools are: %s", c.Name, strings.Join(names, ", "))
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("tool %q panicked: %v", c.Name, p)
		}
	}()
	return t.Call(ctx, c.Arguments)
}
