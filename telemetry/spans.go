package telemetry

import (
	"context"
	"runtime"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/kern-dev/kern/run"
)

// Attribute keys: the GenAI conventions' and kern's own.
const (
	keyOperation      = attribute.Key("gen_ai.operation.name")
	keyProvider       = attribute.Key("gen_ai.provider.name")
	keyRequestModel   = attribute.Key("gen_ai.request.model")
	keyResponseModel  = attribute.Key("gen_ai.response.model")
	keyFinishReasons  = attribute.Key("gen_ai.response.finish_reasons")
	keyInputTokens    = attribute.Key("gen_ai.usage.input_tokens")
	keyOutputTokens   = attribute.Key("gen_ai.usage.output_tokens")
	keyConversationID = attribute.Key("gen_ai.conversation.id")
	keyAgentID        = attribute.Key("gen_ai.agent.id")
	keyAgentName      = attribute.Key("gen_ai.agent.name")
	keyWorkflowName   = attribute.Key("gen_ai.workflow.name")
	keyToolName       = attribute.Key("gen_ai.tool.name")
	keyToolCallID     = attribute.Key("gen_ai.tool.call.id")
	keyToolType       = attribute.Key("gen_ai.tool.type")
	keyToolArgs       = attribute.Key("gen_ai.tool.call.arguments") // opt-in
	keyToolResult     = attribute.Key("gen_ai.tool.call.result")    // opt-in
	keyOutputMessages = attribute.Key("gen_ai.output.messages")     // opt-in
	keyErrorType      = attribute.Key("error.type")

	keyRunID         = attribute.Key("kern.run.id")
	keyWorkflowID    = attribute.Key("kern.workflow.id")
	keyWorkflowRunID = attribute.Key("kern.workflow_run.id")
	keyStepID        = attribute.Key("kern.step.id")
	keyStepName      = attribute.Key("kern.step.name")
	keyStepIndex     = attribute.Key("kern.step.index")
	keyReplica       = attribute.Key("kern.replica")
	keyBackground    = attribute.Key("kern.run.background")
	keyTakenOver     = attribute.Key("kern.run.taken_over")
	keyFirstEvent    = attribute.Key("kern.event_index.first")
	keyLastEvent     = attribute.Key("kern.event_index.last")
	keyStatus        = attribute.Key("kern.run.status")
	keyReason        = attribute.Key("kern.cancel.reason")
	keySource        = attribute.Key("kern.cancel.source")
	keyLatency       = attribute.Key("kern.cancel.latency_ms")
	keyContinued     = attribute.Key("kern.run.continued")
	keyPauseDuration = attribute.Key("kern.pause.duration_ms")
	keyPausedStep    = attribute.Key("kern.paused.step_name")
	keyPausedTools   = attribute.Key("kern.paused.tools")
)

// ErrorTypeCancelled is error.type on the spans of cancelled runs and steps.
const ErrorTypeCancelled = "cancelled"

// EventCancelled is the name of the span event a cancelled run's or step's span
// carries, with kern.cancel.reason, kern.cancel.source and (when the request was
// seen here) kern.cancel.latency_ms.
const EventCancelled = "kern.cancelled"

// EventPaused is the name of the span event on the span of a run (or a
// step) that paused for a person: the run's span ends there, with
// kern.run.status PAUSED and its status unset (a pause is no error), and
// kern.paused.step_name or kern.paused.tools say what waits. EventStepPaused
// marks the step that waits, EventContinued the span of the part that goes on
// (with kern.pause.duration_ms when the pause's time is known), or a step or
// nested run continued within it.
const (
	EventPaused     = "kern.paused"
	EventStepPaused = "kern.step.paused"
	EventContinued  = "kern.continued"
)

var (
	linkTakeover  = []attribute.KeyValue{attribute.String("kern.link", "taken_over")}
	linkContinued = []attribute.KeyValue{attribute.String("kern.link", "continued")}
)

func (o *Observer) runAttrs(r Run, op string) []attribute.KeyValue {
	a := make([]attribute.KeyValue, 0, 9)
	a = append(a, keyOperation.String(op), keyRunID.String(r.ID))
	if r.Kind == run.KindWorkflow {
		a = append(a, keyWorkflowName.String(r.Name), keyWorkflowID.String(r.Component))
	} else {
		a = append(a, keyAgentID.String(r.Component), keyAgentName.String(r.Name))
	}
	if r.SessionID != "" {
		a = append(a, keyConversationID.String(r.SessionID))
	}
	if o.replica != "" {
		a = append(a, keyReplica.String(o.replica))
	}
	if r.Background {
		a = append(a, keyBackground.Bool(true))
	}
	if r.TakenOver {
		a = append(a, keyTakenOver.Bool(true))
	}
	if r.Continued {
		a = append(a, keyContinued.Bool(true))
	}
	return a
}

// providerName maps a kern model provider to the conventions' gen_ai.provider.name.
func providerName(p string) string { return strings.ToLower(p) }

func setError(s trace.Span, errType, msg string) {
	s.SetAttributes(keyErrorType.String(errType))
	s.SetStatus(codes.Error, msg)
}

// spanKey names an open span: kind 'r' a run's (by run id), 's' a step's (by
// step id), 'm' a run's model request, 't' a tool call's (by call id). A
// struct, not a string: looking a span up makes no string.
type spanKey struct {
	kind byte
	id   string
	call string // a tool call's id, within the run id: models reuse call ids across runs
}

// open is a span the builder has begun and not ended yet.
type open struct {
	ctx        context.Context
	span       trace.Span
	firstEvent int
}

// builder builds the spans of one top-level run from its events, on the one
// goroutine that follows its log: it needs no lock.
type builder struct {
	t     *Tracked
	x     *run.Exec
	o     *Observer
	top   open
	spans map[spanKey]open     // open spans
	attrs []attribute.KeyValue // a buffer of the attributes of a span begun or ended
	opts  []trace.SpanStartOption
	// The buffers' first memory, part of the builder's.
	attrBuf [12]attribute.KeyValue
	optBuf  [2]trace.SpanStartOption
	last    int  // the index of the last event seen
	ended   bool // the top-level terminal event was seen
}

func newBuilder(t *Tracked, x *run.Exec) *builder {
	b := &builder{t: t, x: x, o: t.o, top: open{ctx: t.ctx, span: t.span, firstEvent: -1},
		spans: make(map[spanKey]open), last: -1}
	b.attrs, b.opts = b.attrBuf[:0], b.optBuf[:0]
	return b
}

func (b *builder) event(ev *run.Event) bool {
	if ev.Event.Terminal() {
		// Woken by the same event as the run's stream readers, often first and
		// on their processor: let them have it before the spans are ended, so
		// that a cancel's end reaches its client no later for being traced.
		runtime.Gosched()
	}
	b.last = ev.EventIndex
	if b.top.firstEvent < 0 {
		b.top.firstEvent = ev.EventIndex
	}
	o := ev.Origin
	if o == nil {
		o = &run.Origin{}
	}
	switch ev.Event {
	case run.EventRunStarted, run.EventTeamRunStarted:
		b.runStarted(ev, o)
	case run.EventStepStarted:
		b.stepStarted(ev, o)
	case run.EventStepCompleted:
		b.end(spanKey{kind: 's', id: o.StepID}, ev, run.StatusCompleted, "")
	case run.EventStepError:
		b.end(spanKey{kind: 's', id: o.StepID}, ev, run.StatusError, ev.Error)
	case run.EventStepRetried:
		if s, ok := b.spans[spanKey{kind: 's', id: o.StepID}]; ok {
			s.span.AddEvent("kern.step.retried", trace.WithAttributes(attribute.String("error", ev.Error)))
		}
	case run.EventModelRequestStarted, run.EventTeamModelRequestStarted:
		b.modelStarted(ev)
	case run.EventModelRequestCompleted, run.EventTeamModelRequestCompleted:
		b.modelCompleted(ev)
	case run.EventToolCallStarted, run.EventTeamToolCallStarted:
		b.toolStarted(ev)
	case run.EventToolCallCompleted, run.EventToolCallError, run.EventTeamToolCallCompleted, run.EventTeamToolCallError:
		b.toolEnded(ev)
	case run.EventRunPaused, run.EventWorkflowPaused, run.EventTeamRunPaused:
		b.paused(ev)
	case run.EventStepPaused:
		b.stepPaused(ev, o)
	case run.EventRunContinued, run.EventStepContinued, run.EventTeamRunContinued:
		b.continued(ev, o)
	default:
		if ev.Event.Terminal() {
			b.terminal(ev)
		}
	}
	return true
}

// parent returns the context a span of the run runID starts under: that run's
// span when it is open, the top-level run's otherwise.
func (b *builder) parent(key spanKey) context.Context {
	if s, ok := b.spans[key]; ok {
		return s.ctx
	}
	return b.top.ctx
}

// Span kinds as start options, and constant attributes, made once.
var (
	opInvokeAgent    = keyOperation.String("invoke_agent")
	opChat           = keyOperation.String("chat")
	opExecuteTool    = keyOperation.String("execute_tool")
	toolTypeFunction = keyToolType.String("function")
	errorCancelled   = keyErrorType.String(ErrorTypeCancelled)

	kindInternal = trace.WithSpanKind(trace.SpanKindInternal)
	kindClient   = trace.WithSpanKind(trace.SpanKindClient)
)

// begin starts the span key under parent, with the attributes in b.attrs (which
// the SDK copies: the builder reuses the buffer).
func (b *builder) begin(key spanKey, parent context.Context, name string, ev *run.Event, kind trace.SpanStartOption) {
	if old, ok := b.spans[key]; ok { // a step that runs again (a loop's next iteration)
		old.span.End()
	}
	b.attrs = append(b.attrs, keyFirstEvent.Int(ev.EventIndex))
	b.opts = append(b.opts[:0], kind, trace.WithAttributes(b.attrs...))
	ctx, span := b.o.tracer.Start(parent, name, b.opts...)
	b.attrs = b.attrs[:0]
	b.spans[key] = open{ctx: ctx, span: span, firstEvent: ev.EventIndex}
}

// maxNames bounds the span names an Observer keeps made.
const maxNames = 4096

// spanName returns op+" "+name, made once for each pair: the names of
// components, steps, models and tools repeat from run to run.
func (o *Observer) spanName(op, name string) string {
	k := [2]string{op, name}
	o.namesMu.RLock()
	n, ok := o.names[k]
	o.namesMu.RUnlock()
	if ok {
		return n
	}
	n = op + " " + name
	o.namesMu.Lock()
	if len(o.names) < maxNames {
		o.names[k] = n
	}
	o.namesMu.Unlock()
	return n
}

// finishReasons holds gen_ai.response.finish_reasons for the reasons models
// give, made once.
var finishReasons = func() map[string]attribute.KeyValue {
	m := make(map[string]attribute.KeyValue)
	for _, r := range []string{"stop", "tool_calls", "length", "refusal", "content_filter", "pause_turn"} {
		m[r] = keyFinishReasons.StringSlice([]string{r})
	}
	return m
}()

func finishReason(r string) attribute.KeyValue {
	if kv, ok := finishReasons[r]; ok {
		return kv
	}
	return keyFinishReasons.StringSlice([]string{r})
}

func (b *builder) runStarted(ev *run.Event, o *run.Origin) {
	var model, provider string
	if d := ev.Detail; d != nil {
		model, provider = d.Model, d.ModelProvider
	}
	if ev.RunID == b.x.ID {
		if model != "" {
			b.top.span.SetAttributes(keyRequestModel.String(model), keyProvider.String(providerName(provider)))
		}
		return
	}
	parent := b.top.ctx
	switch {
	case o.StepID != "" && b.spans[spanKey{kind: 's', id: o.StepID}].span != nil:
		parent = b.spans[spanKey{kind: 's', id: o.StepID}].ctx
	case o.ParentRunID != "":
		parent = b.parent(spanKey{kind: 'r', id: o.ParentRunID})
	}
	id, name := o.AgentID, o.AgentName
	if ev.Event == run.EventTeamRunStarted { // a team nested in a team or a step
		id, name = o.TeamID, o.TeamName
	}
	b.attrs = append(b.attrs, opInvokeAgent, keyAgentID.String(id), keyAgentName.String(name), keyRunID.String(ev.RunID))
	if o.WorkflowRunID != "" {
		b.attrs = append(b.attrs, keyWorkflowRunID.String(o.WorkflowRunID))
	}
	if o.SessionID != "" {
		b.attrs = append(b.attrs, keyConversationID.String(o.SessionID))
	}
	if model != "" {
		b.attrs = append(b.attrs, keyRequestModel.String(model), keyProvider.String(providerName(provider)))
	}
	b.begin(spanKey{kind: 'r', id: ev.RunID}, parent, b.o.spanName("invoke_agent", name), ev, kindInternal)
}

func (b *builder) stepStarted(ev *run.Event, o *run.Origin) {
	parent := b.top.ctx
	if o.ParentStepID != "" {
		parent = b.parent(spanKey{kind: 's', id: o.ParentStepID})
	}
	b.attrs = append(b.attrs, keyStepID.String(o.StepID), keyStepName.String(o.StepName), keyRunID.String(ev.RunID))
	if o.StepIndex != nil {
		b.attrs = append(b.attrs, keyStepIndex.Int(*o.StepIndex))
	}
	b.begin(spanKey{kind: 's', id: o.StepID}, parent, b.o.spanName("step", o.StepName), ev, kindInternal)
}

func (b *builder) modelStarted(ev *run.Event) {
	var model, provider string
	if d := ev.Detail; d != nil {
		model, provider = d.Model, d.ModelProvider
	}
	b.attrs = append(b.attrs, opChat, keyProvider.String(providerName(provider)), keyRequestModel.String(model))
	b.begin(spanKey{kind: 'm', id: ev.RunID}, b.parent(spanKey{kind: 'r', id: ev.RunID}), b.o.spanName("chat", model), ev, kindClient)
}

func (b *builder) modelCompleted(ev *run.Event) {
	s, ok := b.spans[spanKey{kind: 'm', id: ev.RunID}]
	if !ok {
		return
	}
	var model, provider string
	if d := ev.Detail; d != nil {
		model, provider = d.Model, d.ModelProvider
		if d.ResponseModel != "" {
			b.attrs = append(b.attrs, keyResponseModel.String(d.ResponseModel))
		}
		if d.FinishReason != "" {
			b.attrs = append(b.attrs, finishReason(d.FinishReason))
		}
	}
	if m := ev.Metrics; m != nil {
		b.attrs = append(b.attrs, keyInputTokens.Int(m.InputTokens), keyOutputTokens.Int(m.OutputTokens))
		b.o.inst.modelRequest(s.ctx, providerName(provider), model, m)
	}
	if len(b.attrs) > 0 {
		s.span.SetAttributes(b.attrs...)
		b.attrs = b.attrs[:0]
	}
	b.finish(spanKey{kind: 'm', id: ev.RunID}, s, ev, run.StatusCompleted, "")
}

func (b *builder) toolStarted(ev *run.Event) {
	tool := ev.Tool
	if tool == nil {
		return
	}
	b.attrs = append(b.attrs, opExecuteTool, keyToolName.String(tool.ToolName),
		keyToolCallID.String(tool.ToolCallID), toolTypeFunction, keyRunID.String(ev.RunID))
	if b.o.content && len(tool.ToolArgs) > 0 {
		b.attrs = append(b.attrs, keyToolArgs.String(string(tool.ToolArgs)))
	}
	b.begin(spanKey{kind: 't', id: ev.RunID, call: tool.ToolCallID}, b.parent(spanKey{kind: 'r', id: ev.RunID}), b.o.spanName("execute_tool", tool.ToolName), ev, kindInternal)
}

func (b *builder) toolEnded(ev *run.Event) {
	tool := ev.Tool
	if tool == nil {
		return
	}
	s, ok := b.spans[spanKey{kind: 't', id: ev.RunID, call: tool.ToolCallID}]
	if !ok {
		return
	}
	if b.o.content && tool.Result != "" {
		s.span.SetAttributes(keyToolResult.String(tool.Result))
	}
	st, msg := run.StatusCompleted, ""
	if ev.Event == run.EventToolCallError || tool.IsError {
		st, msg = run.StatusError, ev.Error
		if msg == "" {
			msg = tool.Result
		}
	}
	b.finish(spanKey{kind: 't', id: ev.RunID, call: tool.ToolCallID}, s, ev, st, msg)
}

func statusOf(t run.EventType) run.Status {
	switch t {
	case run.EventRunCompleted, run.EventWorkflowCompleted, run.EventTeamRunCompleted:
		return run.StatusCompleted
	case run.EventRunCancelled, run.EventWorkflowCancelled, run.EventTeamRunCancelled:
		return run.StatusCancelled
	}
	return run.StatusError
}

// terminal ends a nested run's span, or, for the top-level run's terminal event,
// every span still open and then the run's own.
func (b *builder) terminal(ev *run.Event) {
	st := statusOf(ev.Event)
	msg := ev.Error
	if st == run.StatusCancelled {
		msg = ev.Reason
	}
	if ev.RunID != b.x.ID {
		b.endChildren(ev, st, msg, &spanKey{kind: 'm', id: ev.RunID})
		b.end(spanKey{kind: 'r', id: ev.RunID}, ev, st, msg)
		return
	}
	b.ended = true
	b.endChildren(ev, st, msg, nil)
	if b.o.content && st == run.StatusCompleted && ev.Content != "" {
		b.attrs = append(b.attrs, keyOutputMessages.String(ev.Content))
	}
	b.attrs = append(b.attrs, keyStatus.String(string(st)), keyFirstEvent.Int(max(b.top.firstEvent, 0)), keyLastEvent.Int(ev.EventIndex))
	b.top.span.SetAttributes(b.attrs...)
	b.attrs = b.attrs[:0]
	b.mark(b.top.span, st, msg)
	b.top.span.End()
	var latency time.Duration
	if at, _ := b.t.cancelRequest(); st == run.StatusCancelled && !at.IsZero() {
		latency = time.Since(at)
	}
	b.o.inst.runEnded(b.top.ctx, b.t.info, st, latency)
}

// paused ends a nested run's span, or, for the top-level run's pause, every
// span still open and then the run's own: the part of the run before a person
// decides. The part after is another span (see Run.Continued).
func (b *builder) paused(ev *run.Event) {
	attrs := make([]attribute.KeyValue, 0, 2)
	if d := ev.Detail; d != nil {
		if d.StepPause != nil && d.StepPause.PausedStepName != "" {
			attrs = append(attrs, keyPausedStep.String(d.StepPause.PausedStepName))
		}
		if len(d.Tools) > 0 {
			attrs = append(attrs, keyPausedTools.Int(len(d.Tools)))
		}
	}
	if ev.RunID != b.x.ID {
		if s, ok := b.spans[spanKey{kind: 'r', id: ev.RunID}]; ok {
			s.span.AddEvent(EventPaused, trace.WithAttributes(attrs...))
		}
		b.endChildren(ev, run.StatusPaused, "", &spanKey{kind: 'm', id: ev.RunID})
		b.end(spanKey{kind: 'r', id: ev.RunID}, ev, run.StatusPaused, "")
		return
	}
	b.ended = true
	b.endChildren(ev, run.StatusPaused, "", nil)
	b.top.span.AddEvent(EventPaused, trace.WithAttributes(attrs...))
	b.top.span.SetAttributes(keyStatus.String(string(run.StatusPaused)),
		keyFirstEvent.Int(max(b.top.firstEvent, 0)), keyLastEvent.Int(ev.EventIndex))
	b.top.span.End()
	b.o.pausedNow(b.x.ID)
	b.o.inst.runPaused(b.top.ctx, b.t.info)
}

// stepPaused marks the step that waits for a person: its span when it is open,
// the run's otherwise (a step that asks before it runs has none yet).
func (b *builder) stepPaused(ev *run.Event, o *run.Origin) {
	s := b.top.span
	if open, ok := b.spans[spanKey{kind: 's', id: o.StepID}]; ok {
		s = open.span
	}
	s.AddEvent(EventStepPaused, trace.WithAttributes(keyStepID.String(o.StepID), keyStepName.String(o.StepName)))
}

// continued marks a nested run or step that goes on from a pause within the
// continued part of a run.
func (b *builder) continued(ev *run.Event, o *run.Origin) {
	s := b.top.span
	runContinued := ev.Event == run.EventRunContinued || ev.Event == run.EventTeamRunContinued
	if open, ok := b.spans[spanKey{kind: 'r', id: ev.RunID}]; ok && runContinued {
		s = open.span
	} else if open, ok := b.spans[spanKey{kind: 's', id: o.StepID}]; ok && o.StepID != "" {
		s = open.span
	}
	if ev.RunID == b.x.ID && runContinued {
		return // the run span carries it from its start (see Observer.Begin)
	}
	s.AddEvent(EventContinued, trace.WithAttributes(keyStepName.String(o.StepName)))
}

// endChildren ends the open spans whose keys match, with the status st: the
// spans a run's end leaves open (a cancel stops a model request or a tool call
// without its end event).
func (b *builder) endChildren(ev *run.Event, st run.Status, msg string, only *spanKey) {
	for key, s := range b.spans {
		if only == nil || key == *only {
			b.finish(key, s, ev, st, msg)
		}
	}
}

func (b *builder) end(key spanKey, ev *run.Event, st run.Status, msg string) {
	if s, ok := b.spans[key]; ok {
		b.finish(key, s, ev, st, msg)
	}
}

func (b *builder) finish(key spanKey, s open, ev *run.Event, st run.Status, msg string) {
	delete(b.spans, key)
	b.mark(s.span, st, msg)
	s.span.End()
}

// mark sets a span's status for a run or step that ended in st: cancelled ones
// carry error.type "cancelled" and the cancel event.
func (b *builder) mark(s trace.Span, st run.Status, msg string) {
	switch st {
	case run.StatusCompleted:
		return
	case run.StatusPaused:
		s.SetAttributes(keyStatus.String(string(st)))
		return
	case run.StatusCancelled:
		s.SetAttributes(errorCancelled)
		s.SetStatus(codes.Error, b.o.spanName("cancelled:", msg)) // a few reasons, made once
		at, source := b.t.cancelRequest()
		if source == "" {
			source = sourceOf(msg)
		}
		b.attrs = append(b.attrs, keyReason.String(msg), keySource.String(source))
		if !at.IsZero() {
			b.attrs = append(b.attrs, keyLatency.Float64(float64(time.Since(at).Microseconds())/1000))
		}
		s.AddEvent(EventCancelled, trace.WithAttributes(b.attrs...))
		b.attrs = b.attrs[:0]
	default:
		setError(s, "_OTHER", msg)
	}
}

// sourceOf guesses where a cancel that no one reported came from, by the reasons
// kern gives its own cancels.
func sourceOf(reason string) string {
	switch reason {
	case run.ReasonConsumerStopped:
		return SourceConsumer
	case run.ReasonRequested:
		return SourceRequest
	}
	return SourceOther
}

// close ends what the log's end left open: a run whose terminal event this
// process never emitted (it lost the run to another replica) ends its spans
// unset, with the events seen.
func (b *builder) close() {
	if b.ended {
		return
	}
	for key, s := range b.spans {
		delete(b.spans, key)
		s.span.End()
	}
	b.top.span.SetAttributes(keyFirstEvent.Int(max(b.top.firstEvent, 0)), keyLastEvent.Int(max(b.last, 0)))
	b.top.span.AddEvent("kern.run.lost")
	b.top.span.End()
}
