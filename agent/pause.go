package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
)

// pauseState is what an agent run keeps when it pauses for a person: the
// conversation so far, the calls of the model's last turn and the results of
// those that ran, and where the run stood. It is the run's Paused.State.
type pauseState struct {
	Messages  []model.Message          `json:"messages"` // up to the assistant turn with Calls
	Calls     []model.ToolCall         `json:"calls"`
	Results   map[string]model.Message `json:"results,omitempty"` // the calls that ran, by id
	Iteration int                      `json:"iteration"`         // model requests made
	Content   string                   `json:"content,omitempty"`
	Metrics   run.Metrics              `json:"metrics"`
}

// RejectedNote is what the model reads as the result of a call a person rejected
// without a note.
const RejectedNote = "Function call was rejected by the user"

// pending returns the tool executions among calls that wait for a person, with
// what each waits for; nil when none does.
func (a *Agent) pending(ctx context.Context, calls []model.ToolCall) []run.ToolExecution {
	var out []run.ToolExecution
	for _, c := range calls {
		t := a.tool(ctx, c.Name)
		if t == nil {
			continue // an unknown tool is an error the model reads, at once
		}
		ctl := tool.ControlOf(t)
		if !ctl.Pauses() {
			continue
		}
		exec := run.ToolExecution{ToolCallID: c.ID, ToolName: c.Name, ToolArgs: eventArgs(c.Arguments),
			RequiresConfirmation: ctl.RequiresConfirmation, ExternalExecutionRequired: ctl.ExternalExecution}
		if ctl.RequiresUserInput && !ctl.RequiresConfirmation && !ctl.ExternalExecution {
			exec.RequiresUserInput = true
			exec.UserInputSchema = append([]run.UserInputField(nil), ctl.UserInputFields...)
		}
		out = append(out, exec)
	}
	return out
}

// pause runs the calls of the turn that wait for nobody, then keeps what the run
// needs to continue in out and returns run.ErrPaused.
func (a *Agent) pause(ctx context.Context, log *engine.Gate, event func(run.EventType) run.Event, out *run.Output,
	msgs []model.Message, calls []model.ToolCall, waiting []run.ToolExecution, iteration int, content string) error {
	wait := make(map[string]bool, len(waiting))
	for _, w := range waiting {
		wait[w.ToolCallID] = true
	}
	var now []model.ToolCall
	for _, c := range calls {
		if !wait[c.ID] {
			now = append(now, c)
		}
	}
	results := make(map[string]model.Message, len(now))
	for _, m := range a.callTools(ctx, log, event, now) {
		results[m.ToolCallID] = m
	}
	if err := ctx.Err(); err != nil {
		return stopped(ctx)
	}
	st := pauseState{Messages: msgs, Calls: calls, Results: results, Iteration: iteration, Content: content, Metrics: out.Metrics}
	state, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("agent %q: keep the paused state: %w", a.Name, err)
	}
	created := time.Now().UTC().Format(time.RFC3339)
	out.Tools = waiting
	out.Requirements = make([]run.Requirement, len(waiting))
	for i := range waiting {
		w := &waiting[i]
		out.Requirements[i] = run.Requirement{ID: w.ToolCallID, CreatedAt: created, ToolExecution: w, UserInputSchema: w.UserInputSchema}
	}
	out.Paused = &run.Paused{State: state}
	a.expiry(ctx, out.Paused, waiting)
	return run.ErrPaused
}

// expiry sets when the pause ends without a person: the shortest expiry of the
// tools the calls waiting are of.
func (a *Agent) expiry(ctx context.Context, p *run.Paused, waiting []run.ToolExecution) {
	for _, w := range waiting {
		t := a.tool(ctx, w.ToolName)
		if t == nil {
			continue
		}
		ctl := tool.ControlOf(t)
		if ctl.Expiry <= 0 {
			continue
		}
		at := time.Now().Add(ctl.Expiry)
		if p.ExpiresAt.IsZero() || at.Before(p.ExpiresAt) {
			p.ExpiresAt, p.OnExpiry = at, ctl.OnExpiry
		}
	}
	if !p.ExpiresAt.IsZero() && p.OnExpiry == "" {
		p.OnExpiry = run.ExpiryCancel
	}
}

// resume restores a paused run's state into req and out, runs the decided calls
// and returns the iteration the run goes on from.
func (a *Agent) resume(ctx context.Context, log *engine.Gate, event func(run.EventType) run.Event, out *run.Output,
	content *text, req *model.Request, rs *run.Resume, budget *run.Budget) (int, error) {
	var st pauseState
	if err := json.Unmarshal(rs.Paused.State, &st); err != nil {
		return 0, fmt.Errorf("agent %q: read the paused state: %w: %w", a.Name, err, run.ErrInvalid)
	}
	req.Messages = st.Messages
	content.WriteString(st.Content)
	out.Metrics = st.Metrics
	out.Tools, out.Requirements, out.Paused = nil, nil, nil
	if budget != nil {
		if err := budget.Charge(st.Metrics.Tokens()); err != nil {
			return 0, err
		}
	}
	decided := make(map[string]run.ToolExecution, len(rs.Decisions))
	for _, d := range rs.Decisions {
		decided[d.ToolCallID] = d
	}
	results := make([]model.Message, len(st.Calls))
	var toRun []int // the calls to run now, by index
	for i, c := range st.Calls {
		if m, ok := st.Results[c.ID]; ok {
			results[i] = m
			continue
		}
		d, ok := decided[c.ID]
		if !ok {
			// Undecided: the host checks decisions against the pending calls, so
			// only a call of a tool no longer offered gets here.
			results[i] = model.Message{Role: model.RoleTool, ToolCallID: c.ID, ToolName: c.Name, Content: "the call was not decided", IsError: true}
			continue
		}
		switch {
		case d.RequiresConfirmation && (d.Confirmed == nil || !*d.Confirmed):
			results[i] = a.decided(log, event, c, cmpNote(d.ConfirmationNote), true)
		case d.ExternalExecutionRequired:
			results[i] = a.decided(log, event, c, d.Result, false)
		case d.RequiresUserInput:
			st.Calls[i].Arguments = withInput(c.Arguments, d.UserInputSchema)
			toRun = append(toRun, i)
		default:
			toRun = append(toRun, i)
		}
	}
	calls := make([]model.ToolCall, len(toRun))
	for j, i := range toRun {
		calls[j] = st.Calls[i]
	}
	if len(calls) > 0 && len(a.Toolsets) > 0 {
		// A decided call may be of a toolset's tool (one made to wait with
		// tool.With): the toolsets are asked again, as a new model request would.
		_, offered, err := a.currentTools(ctx)
		if err != nil {
			return 0, err
		}
		ctx = withOffered(ctx, offered)
	}
	for j, m := range a.callTools(ctx, log, event, calls) {
		results[toRun[j]] = m
	}
	if err := ctx.Err(); err != nil {
		return 0, stopped(ctx)
	}
	req.Messages = append(req.Messages, results...)
	return st.Iteration, nil
}

func cmpNote(note string) string {
	if note == "" {
		return RejectedNote
	}
	return note
}

// decided emits the events of a call whose result a person gave (an external
// execution's, or a rejection's note) and returns its tool message.
func (a *Agent) decided(log *engine.Gate, event func(run.EventType) run.Event, c model.ToolCall, result string, isErr bool) model.Message {
	exec := &run.ToolExecution{ToolCallID: c.ID, ToolName: c.Name, ToolArgs: eventArgs(c.Arguments)}
	ev := event(run.EventToolCallStarted)
	ev.Tool = exec
	log.Emit(&ev)
	done := *exec
	done.Result, done.IsError = result, isErr
	ev = event(run.EventToolCallCompleted)
	if isErr {
		ev.Event, ev.Error = run.EventToolCallError, result
		f := false
		done.Confirmed, done.ConfirmationNote = &f, result
	}
	ev.Tool = &done
	log.Emit(&ev)
	return model.Message{Role: model.RoleTool, ToolCallID: c.ID, ToolName: c.Name, Content: result, IsError: isErr}
}

// withInput returns args with the user's values set, by field name.
func withInput(args json.RawMessage, fields []run.UserInputField) json.RawMessage {
	m := map[string]any{}
	if len(args) > 0 {
		_ = json.Unmarshal(args, &m) // arguments that are not an object are replaced
	}
	if m == nil {
		m = map[string]any{}
	}
	for _, f := range fields {
		m[f.Name] = f.Value
	}
	b, err := json.Marshal(m)
	if err != nil {
		return args
	}
	return b
}

// find returns the agent's tool with the given name, or nil.
func (a *Agent) find(name string) tool.Tool {
	for _, t := range a.Tools {
		if t.Definition().Name == name {
			return t
		}
	}
	return nil
}
