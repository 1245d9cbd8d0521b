package workflow

import (
	"cmp"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kern-dev/kern/run"
)

// OnReject says what a workflow does when a person rejects a step that asked for
// a confirmation (Agno's on_reject).
type OnReject string

// What a rejection does.
const (
	// OnRejectCancel ends the run CANCELLED (the default, as Agno's).
	OnRejectCancel OnReject = "cancel"
	// OnRejectSkip skips the step: the next one sees the previous step's content.
	OnRejectSkip OnReject = "skip"
	// OnRejectElse runs a Condition's Else steps (none: it is skipped), as
	// Agno's else branch; a Condition's default.
	OnRejectElse OnReject = "else"
)

// Pause is what a step waits for from a person before it runs: a confirmation,
// values, or both (a confirmation first). The run pauses (StepPaused, then
// WorkflowPaused; status PAUSED) with its finished steps checkpointed, holding no
// goroutine, until it is continued with the decision (see host.Host.Continue).
type Pause struct {
	RequiresConfirmation bool
	ConfirmationMessage  string
	OnReject             OnReject // OnRejectCancel if empty
	RequiresUserInput    bool
	UserInputMessage     string
	UserInputFields      []run.UserInputField
	// Expiry, when set, bounds how long the run waits: then it ends as
	// OnExpiry says (run.ExpiryCancel if empty).
	Expiry   time.Duration
	OnExpiry run.OnExpiry
}

// WithConfirmation makes the step wait for a person's confirmation before it
// runs; onReject says what a rejection does (OnRejectCancel if empty).
func (t *Task) WithConfirmation(message string, onReject OnReject) *Task {
	if t.Pause == nil {
		t.Pause = &Pause{}
	}
	t.Pause.RequiresConfirmation, t.Pause.ConfirmationMessage, t.Pause.OnReject = true, message, onReject
	return t
}

// WithUserInput makes the step wait for a person to give the values of fields,
// which the step gets as its Input's UserInput.
func (t *Task) WithUserInput(message string, fields ...run.UserInputField) *Task {
	if t.Pause == nil {
		t.Pause = &Pause{}
	}
	t.Pause.RequiresUserInput, t.Pause.UserInputMessage = true, message
	t.Pause.UserInputFields = append(t.Pause.UserInputFields, fields...)
	return t
}

// check reports what keeps p from being a step's pause.
func (p *Pause) check(step string, nested bool) error {
	switch {
	case p == nil:
		return nil
	case nested:
		return fmt.Errorf("step %q waits for a person, which only a top-level step can do", step)
	case !p.RequiresConfirmation && !p.RequiresUserInput:
		return fmt.Errorf("step %q has a pause that asks for nothing", step)
	case p.OnReject != "" && p.OnReject != OnRejectCancel && p.OnReject != OnRejectSkip:
		return fmt.Errorf("step %q: on_reject %q is not skip or cancel (else is for a condition)", step, p.OnReject)
	case p.Expiry < 0 || p.OnExpiry != "" && p.OnExpiry != run.ExpiryCancel && p.OnExpiry != run.ExpiryReject:
		return fmt.Errorf("step %q: a negative expiry, or on_expiry %q that is not cancel or reject", step, p.OnExpiry)
	case p.RequiresUserInput && len(p.UserInputFields) == 0:
		return fmt.Errorf("step %q asks for user input without fields", step)
	}
	return nil
}

// checkCondition reports what keeps p from being a Condition's pause: a
// confirmation (on_reject else, skip or cancel) of a top-level condition.
func (p *Pause) checkCondition(step string, nested bool) error {
	switch {
	case p == nil:
		return nil
	case nested:
		return fmt.Errorf("condition %q waits for a person, which only a top-level condition can do", step)
	case !p.RequiresConfirmation || p.RequiresUserInput:
		return fmt.Errorf("condition %q: a condition waits for a confirmation only", step)
	case p.OnReject == OnRejectElse:
		p := *p
		p.OnReject = ""
		return p.check(step, false)
	}
	return p.check(step, false)
}

// requirement returns what the step t, at top-level index i, waits for.
func (p *Pause) requirement(t *Task, i int) run.StepRequirement {
	onReject := p.OnReject
	if onReject == "" {
		onReject = OnRejectCancel
	}
	req := run.StepRequirement{StepID: run.Slug(t.Name), StepName: t.Name, StepIndex: i, StepType: "Step",
		RequiresConfirmation: p.RequiresConfirmation, ConfirmationMessage: p.ConfirmationMessage,
		RequiresUserInput: p.RequiresUserInput, UserInputMessage: p.UserInputMessage,
		UserInputSchema: append([]run.UserInputField(nil), p.UserInputFields...)}
	if p.RequiresConfirmation {
		req.OnReject = string(onReject)
	}
	return req
}

// RouteQuestion has a person choose a Router's route: the run pauses before the
// router, and goes on with the choices the person selected.
type RouteQuestion struct {
	Message       string
	AllowMultiple bool // more than one choice may be selected (run in the order chosen)
}

// byName returns the router's choices with the given names, in that order.
func (rt *Router) byName(names []string) []Step {
	var out []Step
	for _, n := range names {
		for _, c := range rt.Choices {
			if stepName(c) == n {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// waits returns what the top-level step s, at index i, waits for before it runs,
// if anything.
func waits(s Step, i int) (run.StepRequirement, *Pause, bool) {
	switch s := s.(type) {
	case *Task:
		if s.Pause != nil {
			return s.Pause.requirement(s, i), s.Pause, true
		}
	case *Condition:
		if p := s.Pause; p != nil {
			return run.StepRequirement{StepID: run.Slug(s.Name), StepName: s.Name, StepIndex: i, StepType: "Condition",
				RequiresConfirmation: true, ConfirmationMessage: p.ConfirmationMessage,
				OnReject: string(cmp.Or(p.OnReject, OnRejectElse))}, p, true
		}
	case *Router:
		if q := s.Ask; q != nil {
			names := make([]string, len(s.Choices))
			for j, c := range s.Choices {
				names[j] = stepName(c)
			}
			return run.StepRequirement{StepID: run.Slug(s.Name), StepName: s.Name, StepIndex: i, StepType: "Router",
				RequiresRouteSelection: true, UserInputMessage: q.Message, AvailableChoices: names,
				AllowMultipleSelections: q.AllowMultiple}, &Pause{}, true
		}
	}
	return run.StepRequirement{}, nil, false
}

// pauseState is a paused workflow run's Paused.State: the step it waits at, and,
// when that step's agent paused, the agent run's id and pause.
type pauseState struct {
	StepIndex     int         `json:"step_index"`
	ExecutorRunID string      `json:"executor_run_id,omitempty"`
	Executor      *run.Paused `json:"executor,omitempty"`
}

// executorPause is the pause of the agent (or runner: a team) of a top-level
// step.
type executorPause struct {
	kind, id, name string      // the executor's: "agent" or the runner's kind, its id and name
	out            *run.Output // the executor run's: its requirements and its pause
}

// newExecutorPause is the pause of t's agent or runner, whose run ended as out.
func newExecutorPause(t *Task, out *run.Output) *executorPause {
	if t.Agent != nil {
		return &executorPause{kind: "agent", id: t.Agent.AgentID(), name: t.Agent.Name, out: out}
	}
	kind, id := t.Runner.RunnerInfo()
	name := out.TeamName
	if name == "" {
		name = id
	}
	return &executorPause{kind: kind, id: id, name: name, out: out}
}

// executorResume continues a step's agent from its pause.
type executorResume struct {
	runID     string
	paused    *run.Paused
	decisions []run.ToolExecution
}

// pauseExecutor pauses the run at its top-level step s, at index i, whose agent
// paused (r.executor): StepPaused with the agent's requirements, and
// run.ErrPaused.
func (r *execution) pauseExecutor(s Step, i int) error {
	r.mu.Lock()
	e := r.executor
	r.mu.Unlock()
	if e == nil {
		return fmt.Errorf("step %q: its agent paused without its state: %w", stepName(s), run.ErrInvalid)
	}
	req := run.StepRequirement{StepID: run.Slug(stepName(s)), StepName: stepName(s), StepIndex: i, StepType: "Step",
		RequiresExecutorInput: true, ExecutorRequirements: e.out.Requirements, ExecutorID: e.id,
		ExecutorName: e.name, ExecutorRunID: e.out.RunID, ExecutorType: e.kind}
	o := r.stepOrigin(stepName(s), i, frame{})
	r.emit(run.EventStepPaused, o, run.Event{Detail: &run.Detail{StepRequirements: []run.StepRequirement{req}}})
	state, err := json.Marshal(pauseState{StepIndex: i, ExecutorRunID: e.out.RunID, Executor: e.out.Paused})
	if err != nil {
		return fmt.Errorf("step %q: keep its agent's pause: %w", stepName(s), err)
	}
	r.out.StepRequirements = []run.StepRequirement{req}
	r.out.Paused = &run.Paused{State: state, ExpiresAt: e.out.Paused.ExpiresAt, OnExpiry: e.out.Paused.OnExpiry}
	return run.ErrPaused
}

// executorResume returns how the agent of the step decided by d continues.
func (r *execution) executorResume(d run.StepRequirement) (*executorResume, error) {
	var st pauseState
	if r.paused == nil || json.Unmarshal(r.paused.State, &st) != nil || st.Executor == nil {
		return nil, fmt.Errorf("step %q: no paused agent to continue: %w", d.StepName, run.ErrInvalid)
	}
	return &executorResume{runID: st.ExecutorRunID, paused: st.Executor, decisions: run.ExecutorTools(d.ExecutorRequirements)}, nil
}

// pauseAt pauses the run before its top-level step s, at index i, which waits
// for req (under p): StepPaused, the requirement kept in the run's output, and
// run.ErrPaused.
func (r *execution) pauseAt(s Step, i int, req run.StepRequirement, p *Pause) error {
	o := r.stepOrigin(stepName(s), i, frame{})
	flat := &run.StepPause{RequiresConfirmation: req.RequiresConfirmation, ConfirmationMessage: req.ConfirmationMessage,
		RequiresUserInput: req.RequiresUserInput || req.RequiresRouteSelection, UserInputMessage: req.UserInputMessage, UserInputSchema: req.UserInputSchema}
	r.emit(run.EventStepPaused, o, run.Event{Detail: &run.Detail{StepRequirements: []run.StepRequirement{req}, StepPause: flat}})
	state, _ := json.Marshal(pauseState{StepIndex: i}) // a struct of an int always encodes
	r.out.StepRequirements = []run.StepRequirement{req}
	r.out.Paused = &run.Paused{State: state}
	if p.Expiry > 0 {
		r.out.Paused.ExpiresAt, r.out.Paused.OnExpiry = time.Now().Add(p.Expiry), cmp.Or(p.OnExpiry, run.ExpiryCancel)
	}
	return run.ErrPaused
}

// decision returns the decision on top-level step i when the run continues from
// a pause at it.
func (r *execution) decision(i int) (run.StepRequirement, bool) {
	for _, d := range r.decisions {
		if d.StepIndex == i {
			return d, true
		}
	}
	return run.StepRequirement{}, false
}
