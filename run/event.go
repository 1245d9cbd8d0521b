package run

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

	// Reasoning a model shows (OpenAI's reasoning summaries, Anthropic's thinking):
	// Started before its first delta, a ContentDelta per delta (in
	// reasoning_content), Completed with the whole text (in reasoning_content).
	EventReasoningStarted      EventType = "ReasoningStarted"
	EventReasoningContentDelta EventType = "ReasoningContentDelta"
	EventReasoningCompleted    EventType = "ReasoningCompleted"
	// EventRunRefusal carries, in content, a refusal the model gave instead of an
	// answer. It is kern's: Agno has no refusal event.
	EventRunRefusal EventType = "RunRefusal"
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
		EventWorkflowCompleted, EventWorkflowCancelled, EventWorkflowError,
		EventTeamRunCompleted, EventTeamRunCancelled, EventTeamRunError:
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

	Tool *ToolExecution `json:"tool,omitempty"`
	// Metrics are the run's on its terminal event, and those of one model request
	// on ModelRequestCompleted, where their fields sit at the top level of the
	// event's JSON (input_tokens, output_tokens, time_to_first_token...), as Agno
	// sends them.
	Metrics *Metrics `json:"metrics,omitempty"`

	// Detail holds the fields of rarer events; it is nil on most. Its fields appear
	// at the top level of the event's JSON.
	Detail *Detail `json:"-"`
}

// Detail holds the fields of rarer events: the model of RunStarted, those of
// container steps, and a workflow's results on its terminal event.
type Detail struct {
	Model         string `json:"model,omitempty"`
	ModelProvider string `json:"model_provider,omitempty"`
	// ResponseModel and FinishReason are kern's, on ModelRequestCompleted: the
	// model that answered as the provider named it, and why it stopped
	// ("stop", "tool_calls", "length"...), when the provider said.
	ResponseModel string `json:"response_model,omitempty"`
	FinishReason  string `json:"finish_reason,omitempty"`

	// ContentType names the type of a structured content (see
	// Output.ContentType): the event's content is then a JSON value.
	ContentType string `json:"content_type,omitempty"`
	// ReasoningContent is the reasoning of a reasoning event.
	ReasoningContent string `json:"reasoning_content,omitempty"`

	Iteration       int      `json:"iteration,omitempty"`
	MaxIterations   int      `json:"max_iterations,omitempty"`
	ConditionResult *bool    `json:"condition_result,omitempty"`
	SelectedSteps   []string `json:"selected_steps,omitempty"`
	StepCount       int      `json:"step_count,omitempty"`

	// StepResults are the finished steps, on a workflow's terminal event.
	StepResults []StepResult `json:"step_results,omitempty"`

	// Tools and Requirements are what a run waits for, on RunPaused.
	Tools        []ToolExecution `json:"tools,omitempty"`
	Requirements []Requirement   `json:"requirements,omitempty"`
	// StepRequirements are what a workflow run waits for, on StepPaused and
	// WorkflowPaused.
	StepRequirements []StepRequirement `json:"step_requirements,omitempty"`
	// StepPause repeats, flat, what Agno's StepPaused and WorkflowPaused events
	// carry besides the requirements.
	*StepPause
}

// StepPause is what Agno's StepPaused (requires_confirmation, its message, the
// user input asked) and WorkflowPaused (status, paused_step_index and name) carry
// at their top level.
type StepPause struct {
	Status               Status           `json:"status,omitempty"`
	PausedStepIndex      *int             `json:"paused_step_index,omitempty"`
	PausedStepName       string           `json:"paused_step_name,omitempty"`
	RequiresConfirmation bool             `json:"requires_confirmation,omitempty"`
	ConfirmationMessage  string           `json:"confirmation_message,omitempty"`
	RequiresUserInput    bool             `json:"requires_user_input,omitempty"`
	UserInputMessage     string           `json:"user_input_message,omitempty"`
	UserInputSchema      []UserInputField `json:"user_input_schema,omitempty"`
}

func (d *Detail) isZero() bool {
	return d.Model == "" && d.ModelProvider == "" && d.ResponseModel == "" && d.FinishReason == "" && d.ContentType == "" && d.ReasoningContent == "" && d.Iteration == 0 && d.MaxIterations == 0 &&
		d.ConditionResult == nil && d.SelectedSteps == nil && d.StepCount == 0 && d.StepResults == nil &&
		d.Tools == nil && d.Requirements == nil && d.StepRequirements == nil && d.StepPause == nil
}

// plainEvent is Event without its JSON methods.
type plainEvent Event

// MarshalJSON writes the event as one flat object: Origin's and Detail's fields sit
// beside the event's own.
func (e Event) MarshalJSON() ([]byte, error) { return e.AppendJSON(nil) }

// marshalReflect is MarshalJSON done by encoding/json, the reference AppendJSON is
// tested against.
func (e Event) marshalReflect() ([]byte, error) {
	raw, structured := e.jsonContent()
	const mark = "\x00structured\x00"
	if structured {
		e.Content = mark
	}
	var flat *metricsWire
	if e.flatMetrics() {
		w := e.Metrics.wire()
		flat, e.Metrics = &w, nil
	}
	b, err := json.Marshal(struct {
		*plainEvent
		*Detail
		*metricsWire
	}{(*plainEvent)(&e), e.Detail, flat})
	if structured {
		b = bytes.Replace(b, []byte(`"\u0000structured\u0000"`), raw, 1)
	}
	return b, err
}

// jsonContent returns the event's content as JSON when it is structured.
func (e *Event) jsonContent() ([]byte, bool) {
	if e.Detail == nil {
		return nil, false
	}
	return structuredContent(e.Content, e.Detail.ContentType)
}

// flatMetrics reports whether the event's metrics sit at the top level of its JSON.
func (e *Event) flatMetrics() bool {
	return e.Metrics != nil && e.Event == EventModelRequestCompleted
}

// UnmarshalJSON reads what MarshalJSON writes.
func (e *Event) UnmarshalJSON(b []byte) error {
	var d Detail
	var content json.RawMessage
	var flat metricsWire
	if err := json.Unmarshal(b, &struct {
		*plainEvent
		*Detail
		*metricsWire
		Content *json.RawMessage `json:"content"`
	}{(*plainEvent)(e), &d, &flat, &content}); err != nil {
		return err
	}
	if e.Event == EventModelRequestCompleted && e.Metrics == nil {
		m := flat.metrics()
		e.Metrics = &m
	}
	var err error
	if e.Content, err = readContent(content, &d.ContentType); err != nil {
		return err
	}
	if !d.isZero() {
		e.Detail = &d
	}
	return nil
}

// ContentTypeJSON is the content type of a structured content whose type has no
// name.
const ContentTypeJSON = "json"

// structuredContent returns content as JSON when contentType says it is structured
// (a type other than "" and "str") and it is valid JSON.
func structuredContent(content, contentType string) ([]byte, bool) {
	if contentType == "" || contentType == "str" || !json.Valid([]byte(content)) {
		return nil, false
	}
	if strings.ContainsAny(content, "\n\r") { // an event's JSON must stay on one line
		var buf bytes.Buffer
		json.Compact(&buf, []byte(content))
		return buf.Bytes(), true
	}
	return []byte(content), true
}

// readContent returns the text of a content field: a string as it is, another JSON
// value as its compact JSON, with *contentType set to ContentTypeJSON if empty.
func readContent(raw json.RawMessage, contentType *string) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return "", err
	}
	if *contentType == "" {
		*contentType = ContentTypeJSON
	}
	return buf.String(), nil
}

// Origin is where a run's events come from: the agent or workflow, the session, and
// the step an event belongs to. Its fields appear at the top level of an event's JSON.
type Origin struct {
	AgentID       string `json:"agent_id,omitempty"`
	AgentName     string `json:"agent_name,omitempty"`
	WorkflowID    string `json:"workflow_id,omitempty"`
	WorkflowName  string `json:"workflow_name,omitempty"`
	WorkflowRunID string `json:"workflow_run_id,omitempty"`
	TeamID        string `json:"team_id,omitempty"`
	TeamName      string `json:"team_name,omitempty"`
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

	// What a call waits for from a person (Agno's human-in-the-loop fields), and
	// the decision once made: see Requirement.
	RequiresConfirmation      bool             `json:"requires_confirmation,omitempty"`
	Confirmed                 *bool            `json:"confirmed,omitempty"`
	ConfirmationNote          string           `json:"confirmation_note,omitempty"`
	RequiresUserInput         bool             `json:"requires_user_input,omitempty"`
	UserInputSchema           []UserInputField `json:"user_input_schema,omitempty"`
	Answered                  *bool            `json:"answered,omitempty"`
	ExternalExecutionRequired bool             `json:"external_execution_required,omitempty"`
}

// Metrics measure one run.
type Metrics struct {
	Duration         time.Duration // from start to the terminal event
	TimeToFirstToken time.Duration // zero when no content was streamed
	InputTokens      int
	OutputTokens     int
	TotalTokens      int
	// CacheReadTokens, CacheWriteTokens and ReasoningTokens are the parts of the
	// input and output tokens that providers report apart (see model.Usage).
	CacheReadTokens  int
	CacheWriteTokens int
	ReasoningTokens  int
	// Cost is what the tokens cost, for models with a price (model.WithPrice); zero
	// without one.
	Cost float64
}

// metricsWire is Metrics as Agno writes them: durations in seconds, the detailed
// counts and the cost only when there are some.
type metricsWire struct {
	InputTokens      int      `json:"input_tokens"`
	OutputTokens     int      `json:"output_tokens"`
	TotalTokens      int      `json:"total_tokens"`
	CacheReadTokens  int      `json:"cache_read_tokens,omitempty"`
	CacheWriteTokens int      `json:"cache_write_tokens,omitempty"`
	ReasoningTokens  int      `json:"reasoning_tokens,omitempty"`
	Cost             float64  `json:"cost,omitempty"`
	Duration         float64  `json:"duration"`
	TimeToFirstToken *float64 `json:"time_to_first_token,omitempty"`
}

// MarshalJSON writes metrics as Agno does: durations in seconds.
func (m Metrics) MarshalJSON() ([]byte, error) {
	return json.Marshal(m.wire())
}

func (m *Metrics) wire() metricsWire {
	w := metricsWire{m.InputTokens, m.OutputTokens, m.TotalTokens, m.CacheReadTokens, m.CacheWriteTokens,
		m.ReasoningTokens, m.Cost, m.Duration.Seconds(), nil}
	if m.TimeToFirstToken > 0 {
		s := m.TimeToFirstToken.Seconds()
		w.TimeToFirstToken = &s
	}
	return w
}

// UnmarshalJSON reads what MarshalJSON writes.
func (m *Metrics) UnmarshalJSON(b []byte) error {
	var w metricsWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*m = w.metrics()
	return nil
}

func (w *metricsWire) metrics() Metrics {
	m := Metrics{
		Duration:         time.Duration(w.Duration * float64(time.Second)),
		InputTokens:      w.InputTokens,
		OutputTokens:     w.OutputTokens,
		TotalTokens:      w.TotalTokens,
		CacheReadTokens:  w.CacheReadTokens,
		CacheWriteTokens: w.CacheWriteTokens,
		ReasoningTokens:  w.ReasoningTokens,
		Cost:             w.Cost,
	}
	if w.TimeToFirstToken != nil {
		m.TimeToFirstToken = time.Duration(*w.TimeToFirstToken * float64(time.Second))
	}
	return m
}

// Tokens returns the tokens a budget is charged for m: TotalTokens, or the input and
// output tokens when a provider reports no total.
func (m *Metrics) Tokens() int {
	if m.TotalTokens != 0 {
		return m.TotalTokens
	}
	return m.InputTokens + m.OutputTokens
}

// Add adds the token counts and cost of o to m.
func (m *Metrics) Add(o Metrics) {
	m.InputTokens += o.InputTokens
	m.OutputTokens += o.OutputTokens
	m.TotalTokens += o.TotalTokens
	m.CacheReadTokens += o.CacheReadTokens
	m.CacheWriteTokens += o.CacheWriteTokens
	m.ReasoningTokens += o.ReasoningTokens
	m.Cost += o.Cost
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
	// ContentType names the type of a structured Content, which is then its JSON
	// (as Output.ContentType); empty for text.
	ContentType string `json:"content_type,omitempty"`
	// Metrics are what the step's agent runs used, every attempt's (a container's:
	// its steps' tokens and cost); zero for a step that ran no agent. A resumed
	// workflow run counts them in its metrics and its budget.
	Metrics Metrics `json:"metrics,omitzero"`
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
	TeamID       string `json:"team_id,omitempty"`
	TeamName     string `json:"team_name,omitempty"`
	// MemberResponses are the outputs of a team's member runs, in the order they
	// ended (cancelled ones with what they had produced).
	MemberResponses []*Output `json:"member_responses,omitempty"`

	Model         string `json:"model,omitempty"`
	ModelProvider string `json:"model_provider,omitempty"`

	Status Status `json:"status"`
	Input  string `json:"input"`
	// Content is what the run produced; for a cancelled run, what it had produced
	// by then. A structured output (ContentType set) is its JSON (see
	// StructuredContent).
	Content string `json:"content"`
	// ContentType names the type of a structured Content (a Go type's name, a
	// schema's title, or ContentTypeJSON); empty (or Agno's "str") for text.
	ContentType string `json:"content_type,omitempty"`
	Error       string `json:"error,omitempty"`
	Reason      string `json:"reason,omitempty"` // why it was cancelled

	StepResults []StepResult `json:"step_results,omitempty"`
	Metrics     Metrics      `json:"metrics"`
	CreatedAt   int64        `json:"created_at"`
	// Metadata are key-value pairs the run was started with (run.WithMetadata),
	// stored with its output, as Agno's run outputs carry a metadata object:
	// the host keeps a traced run's W3C traceparent there, so that the process
	// that takes the run over links its spans to the first part's.
	Metadata map[string]string `json:"metadata,omitempty"`

	// Tools and Requirements (an agent's) or StepRequirements (a workflow's) are
	// what a PAUSED run waits for (Agno's fields), and Paused where it continues
	// from; all are cleared when it continues.
	Tools            []ToolExecution   `json:"tools,omitempty"`
	Requirements     []Requirement     `json:"requirements,omitempty"`
	StepRequirements []StepRequirement `json:"step_requirements,omitempty"`
	Paused           *Paused           `json:"paused,omitempty"`

	err error // the run's own error, kept for errors.Is/As on Err's result
}

// StructuredContent returns the content as JSON when it is structured (ContentType
// set): what a run's JSON answer should carry as its content, a JSON value rather
// than a string, as Agno answers a structured output. Output itself has no JSON
// methods, so that types embedding it keep their own fields; they write Content
// with this.
func (o *Output) StructuredContent() (json.RawMessage, bool) {
	return structuredContent(o.Content, o.ContentType)
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
	case StatusPaused:
		return fmt.Errorf("run %s: %w", o.RunID, ErrPaused)
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
