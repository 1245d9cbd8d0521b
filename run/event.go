package run

import (
	"encoding/json"
	"errors"
	"time"
)

// EventType is an event's wire name, as Agno sends it in the `event` field.
type EventType string

// Agent events.
const (
	EventRunStarted            EventType = "RunStarted"
	EventRunContent            EventType = "RunContent"
	EventRunContentCompleted   EventType = "RunContentCompleted"
	EventRunCompleted          EventType = "RunCompleted"
	EventRunError              EventType = "RunError"
	EventRunCancelled          EventType = "RunCancelled"
	EventToolCallStarted       EventType = "ToolCallStarted"
	EventToolCallCompleted     EventType = "ToolCallCompleted"
	EventToolCallError         EventType = "ToolCallError"
	EventModelRequestStarted   EventType = "ModelRequestStarted"
	EventModelRequestCompleted EventType = "ModelRequestCompleted"
)

// Workflow events.
const (
	EventWorkflowStarted             EventType = "WorkflowStarted"
	EventWorkflowCompleted           EventType = "WorkflowCompleted"
	EventWorkflowCancelled           EventType = "WorkflowCancelled"
	EventWorkflowError               EventType = "WorkflowError"
	EventStepStarted                 EventType = "StepStarted"
	EventStepCompleted               EventType = "StepCompleted"
	EventStepError                   EventType = "StepError"
	EventStepOutput                  EventType = "StepOutput"
	EventParallelExecutionStarted    EventType = "ParallelExecutionStarted"
	EventParallelExecutionCompleted  EventType = "ParallelExecutionCompleted"
	EventConditionExecutionStarted   EventType = "ConditionExecutionStarted"
	EventConditionExecutionCompleted EventType = "ConditionExecutionCompleted"
	EventLoopExecutionStarted        EventType = "LoopExecutionStarted"
	EventLoopExecutionCompleted      EventType = "LoopExecutionCompleted"
	EventLoopIterationStarted        EventType = "LoopIterationStarted"
	EventLoopIterationCompleted      EventType = "LoopIterationCompleted"
	EventRouterExecutionStarted      EventType = "RouterExecutionStarted"
	EventRouterExecutionCompleted    EventType = "RouterExecutionCompleted"
	EventStepsExecutionStarted       EventType = "StepsExecutionStarted"
	EventStepsExecutionCompleted     EventType = "StepsExecutionCompleted"
	EventCustom                      EventType = "CustomEvent"
)

// EventStepRetried is kern's, not Agno's (Agno retries a step without an event): an
// attempt of a step with a retry policy failed and the step runs again. Its attempt
// and error are the failed attempt's; the events that carry the same step and
// attempt belong to that attempt.
const EventStepRetried EventType = "StepRetried"

// Terminal reports whether an event of this type ends a run: each run, nested or not,
// has exactly one.
func (t EventType) Terminal() bool {
	switch t {
	case EventRunCompleted, EventRunCancelled, EventRunError,
		EventWorkflowCompleted, EventWorkflowCancelled, EventWorkflowError:
		return true
	}
	return false
}

// Event is one thing that happened in a run, in Agno's wire shape: a flat JSON object
// whose `event` field names its type. Fields that do not apply to a type are omitted.
//
// An agent event inside a workflow carries the agent's own RunID, the workflow's in
// WorkflowRunID, and the step it ran in. EventIndex counts the events of the top-level
// run from 0, nested ones included. Events are immutable once emitted.
type Event struct {
	Event      EventType `json:"event"`
	RunID      string    `json:"run_id"`
	CreatedAt  int64     `json:"created_at"` // Unix seconds
	EventIndex int       `json:"event_index"`

	// Origin says where the run sits. Every event kern emits has one, shared by the
	// events of a run (or of a step), so that an event stays small.
	*Origin

	Content string `json:"content,omitempty"`
	Reason  string `json:"reason,omitempty"` // why a run was cancelled
	Error   string `json:"error,omitempty"`

	Tool    *ToolExecution `json:"tool,omitempty"`
	Metrics *Metrics       `json:"metrics,omitempty"`

	// Detail holds the fields of rarer events; it is nil on most. Its fields appear
	// at the top level of the event's JSON.
	Detail *Detail `json:"-"`
}

// Detail holds the fields of rarer events: the model of RunStarted, those of
// container steps, and a workflow's results on its terminal event.
type Detail struct {
	Model         string `json:"model,omitempty"`
	ModelProvider string `json:"model_provider,omitempty"`

	Iteration       int      `json:"iteration,omitempty"`
	MaxIterations   int      `json:"max_iterations,omitempty"`
	ConditionResult *bool    `json:"condition_result,omitempty"`
	SelectedSteps   []string `json:"selected_steps,omitempty"`
	StepCount       int      `json:"step_count,omitempty"`

	// StepResults are the finished steps, on a workflow's terminal event.
	StepResults []StepResult `json:"step_results,omitempty"`
}

func (d *Detail) isZero() bool {
	return d.Model == "" && d.ModelProvider == "" && d.Iteration == 0 && d.MaxIterations == 0 &&
		d.ConditionResult == nil && d.SelectedSteps == nil && d.StepCount == 0 && d.StepResults == nil
}

// plainEvent is Event without its JSON methods.
type plainEvent Event

// MarshalJSON writes the event as one flat object: Origin's and Detail's fields sit
// beside the event's own.
func (e Event) MarshalJSON() ([]byte, error) { return e.AppendJSON(nil) }

// marshalReflect is MarshalJSON done by encoding/json, the reference AppendJSON is
// tested against.
func (e Event) marshalReflect() ([]byte, error) {
	return json.Marshal(struct {
		*plainEvent
		*Detail
	}{(*plainEvent)(&e), e.Detail})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (e *Event) UnmarshalJSON(b []byte) error {
	var d Detail
	if err := json.Unmarshal(b, &struct {
		*plainEvent
		*Detail
	}{(*plainEvent)(e), &d}); err != nil {
		return err
	}
	if !d.isZero() {
		e.Detail = &d
	}
	return nil
}

// Origin is where a run's events come from: the agent or workflow, the session, and
// the step an event belongs to. Its fields appear at the top level of an event's JSON.
type Origin struct {
	AgentID       string `json:"agent_id,omitempty"`
	AgentName     string `json:"agent_name,omitempty"`
	WorkflowID    string `json:"workflow_id,omitempty"`
	WorkflowName  string `json:"workflow_name,omitempty"`
	WorkflowRunID string `json:"workflow_run_id,omitempty"`
	ParentRunID   string `json:"parent_run_id,omitempty"`
	SessionID     string `json:"session_id,omitempty"`
	UserID        string `json:"user_id,omitempty"`

	StepID       string `json:"step_id,omitempty"`
	StepName     string `json:"step_name,omitempty"`
	StepIndex    *int   `json:"step_index,omitempty"`
	ParentStepID string `json:"parent_step_id,omitempty"`
	NestedDepth  int    `json:"nested_depth,omitempty"`
	// Attempt counts the runs of a step with a retry policy, from 1; zero for a step
	// without one.
	Attempt int `json:"attempt,omitempty"`
}

// ToolExecution is one tool call as events report it.
type ToolExecution struct {
	ToolCallID string          `json:"tool_call_id"`
	ToolName   string          `json:"tool_name"`
	ToolArgs   json.RawMessage `json:"tool_args,omitempty"`
	Result     string          `json:"result,omitempty"`
	IsError    bool            `json:"tool_call_error,omitempty"`
}

// Metrics measure one run.
type Metrics struct {
	Duration         time.Duration // from start to the terminal event
	TimeToFirstToken time.Duration // zero when no content was streamed
	InputTokens      int
	OutputTokens     int
	TotalTokens      int
}

// MarshalJSON writes metrics as Agno does: durations in seconds.
func (m Metrics) MarshalJSON() ([]byte, error) {
	type wire struct {
		InputTokens      int      `json:"input_tokens"`
		OutputTokens     int      `json:"output_tokens"`
		TotalTokens      int      `json:"total_tokens"`
		Duration         float64  `json:"duration"`
		TimeToFirstToken *float64 `json:"time_to_first_token,omitempty"`
	}
	w := wire{m.InputTokens, m.OutputTokens, m.TotalTokens, m.Duration.Seconds(), nil}
	if m.TimeToFirstToken > 0 {
		s := m.TimeToFirstToken.Seconds()
		w.TimeToFirstToken = &s
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (m *Metrics) UnmarshalJSON(b []byte) error {
	var w struct {
		InputTokens      int     `json:"input_tokens"`
		OutputTokens     int     `json:"output_tokens"`
		TotalTokens      int     `json:"total_tokens"`
		Duration         float64 `json:"duration"`
		TimeToFirstToken float64 `json:"time_to_first_token"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*m = Metrics{
		Duration:         time.Duration(w.Duration * float64(time.Second)),
		TimeToFirstToken: time.Duration(w.TimeToFirstToken * float64(time.Second)),
		InputTokens:      w.InputTokens,
		OutputTokens:     w.OutputTokens,
		TotalTokens:      w.TotalTokens,
	}
	return nil
}

// Add adds the token counts of o to m.
func (m *Metrics) Add(o Metrics) {
	m.InputTokens += o.InputTokens
	m.OutputTokens += o.OutputTokens
	m.TotalTokens += o.TotalTokens
}

// StepResult is what one workflow step produced.
type StepResult struct {
	StepID   string       `json:"step_id,omitempty"`
	StepName string       `json:"step_name"`
	Content  string       `json:"content"`
	Status   Status       `json:"status,omitempty"`
	Error    string       `json:"error,omitempty"`
	Steps    []StepResult `json:"steps,omitempty"` // the results of a container's steps
	// Attempts is how many times a step with a retry policy ran; zero without one.
	Attempts int `json:"attempts,omitempty"`
	// Stop asks the workflow to end after this step, successfully.
	Stop bool `json:"stop,omitempty"`
}

// Output is the outcome of a run: what it produced up to its end, and how it ended.
type Output struct {
	RunID        string `json:"run_id"`
	SessionID    string `json:"session_id,omitempty"`
	UserID       string `json:"user_id,omitempty"`
	ParentRunID  string `json:"parent_run_id,omitempty"`
	AgentID      string `json:"agent_id,omitempty"`
	AgentName    string `json:"agent_name,omitempty"`
	WorkflowID   string `json:"workflow_id,omitempty"`
	WorkflowName string `json:"workflow_name,omitempty"`

	Model         string `json:"model,omitempty"`
	ModelProvider string `json:"model_provider,omitempty"`

	Status Status `json:"status"`
	Input  string `json:"input"`
	// Content is what the run produced; for a cancelled run, what it had produced
	// by then.
	Content string `json:"content"`
	Error   string `json:"error,omitempty"`
	Reason  string `json:"reason,omitempty"` // why it was cancelled

	StepResults []StepResult `json:"step_results,omitempty"`
	Metrics     Metrics      `json:"metrics"`
	CreatedAt   int64        `json:"created_at"`

	err error // the run's own error, kept for errors.Is/As on Err's result
}

// Err returns the run's outcome as an error: nil when it completed, a *CancelledError
// when it was cancelled, and a *RunError when it failed. Both wrap the error that
// caused them when the output comes from a run of this process.
func (o *Output) Err() error {
	switch o.Status {
	case StatusCancelled:
		var ce *CancelledError
		if errors.As(o.err, &ce) {
			return ce
		}
		return &CancelledError{RunID: o.RunID, Reason: o.Reason}
	case StatusError:
		return &RunError{RunID: o.RunID, Message: o.Error, Err: o.err}
	}
	return nil
}

// RunError is the error of a run that ended in StatusError.
type RunError struct {
	RunID   string
	Message string
	Err     error // the cause, when known
}

func (e *RunError) Error() string { return "run " + e.RunID + " failed: " + e.Message }

// Unwrap returns the cause.
func (e *RunError) Unwrap() error { return e.Err }
