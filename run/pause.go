package run

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Events of a run that waits for a person (Agno's names).
const (
	// EventRunPaused ends what an agent run does until a person decides: it
	// carries the tool executions that wait (tools) and what each needs
	// (requirements). The run's status is PAUSED; it is not terminal.
	EventRunPaused EventType = "RunPaused"
	// EventRunContinued is the first event of a paused run that was continued.
	EventRunContinued EventType = "RunContinued"

	// EventStepPaused: a workflow step waits for a person before it runs (its
	// requirement in step_requirements); EventWorkflowPaused follows it and ends
	// what the workflow run does until it is continued, with its finished steps.
	EventStepPaused     EventType = "StepPaused"
	EventWorkflowPaused EventType = "WorkflowPaused"
	// EventStepContinued: the paused step's decision came, and the workflow goes
	// on from it.
	EventStepContinued EventType = "StepContinued"
)

// Pauses reports whether an event of this type pauses a run: the run's stream
// ends there until the run is continued, as it ends at a terminal event.
func (t EventType) Pauses() bool {
	return t == EventRunPaused || t == EventWorkflowPaused || t == EventTeamRunPaused
}

// StepRequirement is what a paused workflow step waits for (Agno's
// StepRequirement): a confirmation before it runs, with what the workflow does
// on a rejection (OnReject: "skip" the step, "cancel" the run, or, for a
// Condition, "else": run its else steps), or values
// from the user, given to the step as its user input.
type StepRequirement struct {
	StepID               string           `json:"step_id"`
	StepName             string           `json:"step_name,omitempty"`
	StepIndex            int              `json:"step_index"`
	StepType             string           `json:"step_type,omitempty"`
	RequiresConfirmation bool             `json:"requires_confirmation"`
	ConfirmationMessage  string           `json:"confirmation_message,omitempty"`
	Confirmed            *bool            `json:"confirmed"`
	OnReject             string           `json:"on_reject,omitempty"`
	RequiresUserInput    bool             `json:"requires_user_input"`
	UserInputMessage     string           `json:"user_input_message,omitempty"`
	UserInputSchema      []UserInputField `json:"user_input_schema,omitempty"`
	UserInput            map[string]any   `json:"user_input,omitempty"`
	// A Router that asks a person which of its choices to run.
	RequiresRouteSelection  bool     `json:"requires_route_selection"`
	AvailableChoices        []string `json:"available_choices,omitempty"`
	AllowMultipleSelections bool     `json:"allow_multiple_selections"`
	SelectedChoices         []string `json:"selected_choices,omitempty"`
	// A step whose agent paused on tool calls that wait for a person (Agno's
	// executor requirements): decided as an agent run's requirements are, each
	// its tool_execution with confirmed (or confirmation), values or result.
	RequiresExecutorInput bool          `json:"requires_executor_input,omitempty"`
	ExecutorRequirements  []Requirement `json:"executor_requirements,omitempty"`
	ExecutorID            string        `json:"executor_id,omitempty"`
	ExecutorName          string        `json:"executor_name,omitempty"`
	ExecutorRunID         string        `json:"executor_run_id,omitempty"`
	ExecutorType          string        `json:"executor_type,omitempty"`
}

// ExecutorTools returns the tool executions of the requirements, each with the
// decision its requirement carries in Agno's RunRequirement fields (confirmation,
// confirmation_note, external_execution_result) when its tool execution does not.
func ExecutorTools(reqs []Requirement) []ToolExecution {
	out := make([]ToolExecution, 0, len(reqs))
	for _, r := range reqs {
		if r.ToolExecution == nil {
			continue
		}
		t := *r.ToolExecution
		if t.Confirmed == nil {
			t.Confirmed = r.Confirmation
		}
		if t.ConfirmationNote == "" {
			t.ConfirmationNote = r.ConfirmationNote
		}
		if t.Result == "" && r.ExternalExecutionResult != nil {
			t.Result = *r.ExternalExecutionResult
		}
		out = append(out, t)
	}
	return out
}

// ResolveSteps checks decisions (step requirements as a client sends them back,
// matched by step_id, else by step_name) against pending, what a paused workflow
// run waits for, and returns pending with the decisions applied; a mismatch is a
// *DecisionError naming it.
func ResolveSteps(runID string, pending, decisions []StepRequirement) ([]StepRequirement, error) {
	var problems []string
	used := make([]bool, len(decisions))
	out := make([]StepRequirement, len(pending))
	for i, p := range pending {
		out[i] = p
		j := slices.IndexFunc(decisions, func(d StepRequirement) bool {
			return d.StepID != "" && d.StepID == p.StepID || d.StepID == "" && d.StepName == p.StepName
		})
		if j < 0 || used[j] {
			problems = append(problems, fmt.Sprintf("step %q is not decided", p.StepName))
			continue
		}
		used[j] = true
		d := decisions[j]
		if p.RequiresConfirmation {
			if d.Confirmed == nil {
				problems = append(problems, fmt.Sprintf("step %q needs confirmed true or false", p.StepName))
			}
			out[i].Confirmed = d.Confirmed
		}
		if p.RequiresUserInput && (p.RequiresConfirmation && d.Confirmed != nil && *d.Confirmed || !p.RequiresConfirmation) {
			values := d.UserInput
			if values == nil {
				values = map[string]any{}
				for _, f := range d.UserInputSchema {
					if f.Value != nil {
						values[f.Name] = f.Value
					}
				}
			}
			for _, f := range p.UserInputSchema {
				if _, ok := values[f.Name]; !ok {
					problems = append(problems, fmt.Sprintf("step %q needs a value for %q", p.StepName, f.Name))
				}
			}
			out[i].UserInput = values
		}
		if p.RequiresRouteSelection {
			problems = append(problems, checkSelection(p, d.SelectedChoices)...)
			out[i].SelectedChoices = d.SelectedChoices
		}
		if p.RequiresExecutorInput {
			tools, err := Resolve(runID, ExecutorTools(p.ExecutorRequirements), ExecutorTools(d.ExecutorRequirements))
			var de *DecisionError
			if errors.As(err, &de) {
				for _, pr := range de.Problems {
					problems = append(problems, fmt.Sprintf("step %q: %s", p.StepName, pr))
				}
			}
			reqs := make([]Requirement, len(tools))
			for j := range tools {
				reqs[j] = p.ExecutorRequirements[j]
				reqs[j].ToolExecution = &tools[j]
				reqs[j].Confirmation, reqs[j].ConfirmationNote = tools[j].Confirmed, tools[j].ConfirmationNote
			}
			out[i].ExecutorRequirements = reqs
		}
	}
	for j, d := range decisions {
		if !used[j] {
			problems = append(problems, fmt.Sprintf("step %q is not one the run waits for", cmpStr(d.StepID, d.StepName)))
		}
	}
	if len(problems) > 0 {
		return nil, &DecisionError{RunID: runID, Problems: problems}
	}
	return out, nil
}

// checkSelection reports what is wrong with a selection of the routes p offers.
func checkSelection(p StepRequirement, selected []string) []string {
	var problems []string
	switch {
	case len(selected) == 0:
		problems = append(problems, fmt.Sprintf("router %q needs selected_choices among %s", p.StepName, strings.Join(p.AvailableChoices, ", ")))
	case len(selected) > 1 && !p.AllowMultipleSelections:
		problems = append(problems, fmt.Sprintf("router %q takes one of its choices, not %d", p.StepName, len(selected)))
	}
	for _, c := range selected {
		if !slices.Contains(p.AvailableChoices, c) {
			problems = append(problems, fmt.Sprintf("router %q has no choice %q (it has %s)", p.StepName, c, strings.Join(p.AvailableChoices, ", ")))
		}
	}
	return problems
}

func cmpStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ErrPaused is what a run's body returns when the run pauses to wait for a
// person (see Paused): the run ends its execution PAUSED, not terminal.
var ErrPaused = errors.New("run paused")

// ErrNotPaused matches the error of a continue of a run that is not paused (it
// runs, it ended, another continue took it first).
var ErrNotPaused = errors.New("run is not paused")

// UserInputField is one value a tool call waits for from a person (Agno's
// UserInputField): its name, type ("str", "int", "float", "bool", "list",
// "dict"), description, and, once given, its value.
type UserInputField struct {
	Name        string `json:"name"`
	FieldType   string `json:"field_type"`
	Description string `json:"description"`
	Value       any    `json:"value"`
}

// Requirement is one decision a paused run waits for (Agno's RunRequirement):
// the tool execution it is about and what it needs.
type Requirement struct {
	ID        string `json:"id"`
	CreatedAt string `json:"created_at,omitempty"` // ISO 8601, as Agno writes it
	// Confirmation and ConfirmationNote are the decision on a call that requires
	// confirmation, once made.
	Confirmation     *bool  `json:"confirmation,omitempty"`
	ConfirmationNote string `json:"confirmation_note,omitempty"`
	// ExternalExecutionResult is the result of a call executed outside, once given.
	ExternalExecutionResult *string          `json:"external_execution_result,omitempty"`
	ToolExecution           *ToolExecution   `json:"tool_execution,omitempty"`
	UserInputSchema         []UserInputField `json:"user_input_schema,omitempty"`
	// MemberAgentID, MemberAgentName and MemberRunID name the team member whose
	// call this is, in a paused team run (Agno's member context).
	MemberAgentID   string `json:"member_agent_id,omitempty"`
	MemberAgentName string `json:"member_agent_name,omitempty"`
	MemberRunID     string `json:"member_run_id,omitempty"`
}

// Paused is the state a paused run continues from, kept in its output (and so in
// its stored record): where its events go on, and the state of the component that
// paused, which only that component reads.
type Paused struct {
	// NextEvent is the index of the run's next event: its RunPaused's plus one.
	NextEvent int `json:"next_event"`
	// State is the paused component's own (an agent's conversation and pending
	// tool calls).
	State json.RawMessage `json:"state,omitempty"`
	// ExpiresAt, when set, is when the pause ends without a person: the run
	// then ends as OnExpiry says.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	OnExpiry  OnExpiry  `json:"on_expiry,omitempty"`
}

// OnExpiry says how a pause that expired ends.
type OnExpiry string

// Outcomes of an expired pause.
const (
	// ExpiryCancel ends the run CANCELLED (the default).
	ExpiryCancel OnExpiry = "cancel"
	// ExpiryReject rejects what the run waits for and continues it: the model
	// reads the rejection, a workflow step is skipped or the run cancelled as
	// its on_reject says. A call that waits for values or a result, which
	// cannot be rejected, ends the run CANCELLED.
	ExpiryReject OnExpiry = "reject"
)

// ReasonExpired is the cancel reason, and the rejection note, of a pause that
// expired.
const ReasonExpired = "the pause expired before a person decided"

// Pending reports whether the tool execution waits for a person.
func (t *ToolExecution) Pending() bool {
	return t.RequiresConfirmation || t.RequiresUserInput || t.ExternalExecutionRequired
}

// DecisionError is the error of a continue whose decisions do not match what the
// run waits for: a call it does not wait for, a call left undecided, a decision
// of the wrong kind. It matches ErrInvalid.
type DecisionError struct {
	RunID    string
	Problems []string
}

func (e *DecisionError) Error() string {
	return fmt.Sprintf("run %s: the decisions do not match what it waits for: %s", e.RunID, strings.Join(e.Problems, "; "))
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *DecisionError) Is(target error) bool { return target == ErrInvalid }

// Resolve checks decisions (tool executions as a client sends them back, matched by
// tool_call_id) against pending, the tool executions a paused run waits for, and
// returns pending with the decisions applied: a confirmation (confirmed and its
// note), the user's values, an external result. Every pending call must be
// decided; a decision for a call the run does not wait for, or missing what its
// call needs, is a *DecisionError naming it.
func Resolve(runID string, pending, decisions []ToolExecution) ([]ToolExecution, error) {
	byID := make(map[string]*ToolExecution, len(decisions))
	var problems []string
	for i := range decisions {
		d := &decisions[i]
		if d.ToolCallID == "" {
			problems = append(problems, fmt.Sprintf("tools[%d] has no tool_call_id", i))
			continue
		}
		if _, dup := byID[d.ToolCallID]; dup {
			problems = append(problems, fmt.Sprintf("tool call %q is decided twice", d.ToolCallID))
			continue
		}
		byID[d.ToolCallID] = d
	}
	out := make([]ToolExecution, len(pending))
	for i, p := range pending {
		out[i] = p
		d, ok := byID[p.ToolCallID]
		if !ok {
			problems = append(problems, fmt.Sprintf("tool call %q (%s) is not decided", p.ToolCallID, p.ToolName))
			continue
		}
		delete(byID, p.ToolCallID)
		problems = append(problems, resolveOne(&out[i], d)...)
	}
	for id := range byID {
		problems = append(problems, fmt.Sprintf("tool call %q is not one the run waits for", id))
	}
	if len(problems) > 0 {
		return nil, &DecisionError{RunID: runID, Problems: problems}
	}
	return out, nil
}

// resolveOne applies the decision d to the pending call t and returns what is
// wrong with it.
func resolveOne(t, d *ToolExecution) []string {
	var problems []string
	switch {
	case t.RequiresConfirmation:
		if d.Confirmed == nil {
			problems = append(problems, fmt.Sprintf("tool call %q (%s) needs confirmed true or false", t.ToolCallID, t.ToolName))
			break
		}
		t.Confirmed, t.ConfirmationNote = d.Confirmed, d.ConfirmationNote
	case t.ExternalExecutionRequired:
		if d.Result == "" {
			problems = append(problems, fmt.Sprintf("tool call %q (%s) needs its result", t.ToolCallID, t.ToolName))
			break
		}
		t.Result = d.Result
	case t.RequiresUserInput:
		values := make(map[string]any, len(d.UserInputSchema))
		for _, f := range d.UserInputSchema {
			if f.Value != nil {
				values[f.Name] = f.Value
			}
		}
		fields := make([]UserInputField, len(t.UserInputSchema))
		for i, f := range t.UserInputSchema {
			v, ok := values[f.Name]
			if !ok {
				problems = append(problems, fmt.Sprintf("tool call %q (%s) needs a value for %q", t.ToolCallID, t.ToolName, f.Name))
			}
			f.Value = v
			fields[i] = f
		}
		t.UserInputSchema = fields
		answered := len(problems) == 0
		t.Answered = &answered
	}
	return problems
}
