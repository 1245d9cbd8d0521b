// Package telemetry turns the events kern's runs emit into OpenTelemetry spans and
// metrics that follow the GenAI semantic conventions: invoke_workflow and
// invoke_agent spans for runs, a span per workflow step, chat spans (CLIENT) per
// model request and execute_tool spans per tool call, with gen_ai.* attributes and
// kern's own under kern.*.
//
// It is an observer: nothing in agents or workflows calls it. The host begins a
// run's span as the run starts (so that what the run calls under its context, a
// model's HTTP request, carries the trace out), and an Observer then follows the
// run's event log in a goroutine of its own, opening and ending spans as start and
// end events go by. A nil *Observer does nothing and costs nothing: with telemetry
// off the host holds none, and no run pays for it.
package telemetry

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/kern-dev/kern/run"
)

// ScopeName is the instrumentation scope of kern's spans and metrics.
const ScopeName = "github.com/kern-dev/kern/telemetry"

// Config says where an Observer sends what it makes.
type Config struct {
	// TracerProvider makes the spans; nil makes none.
	TracerProvider trace.TracerProvider
	// MeterProvider makes the metrics; nil makes none.
	MeterProvider metric.MeterProvider
	// CaptureContent records message content (a run's output, a tool call's
	// arguments and result) in the conventions' opt-in attributes. Off by
	// default: content may hold what users would not have in a trace store.
	CaptureContent bool
	// Replica names this process in kern.replica.
	Replica string
}

// Observer builds spans and metrics from the runs it is given. Its methods may be
// called on a nil *Observer, which does nothing.
type Observer struct {
	tracer  trace.Tracer
	inst    *instruments // nil without a MeterProvider
	content bool
	replica string
	wg      sync.WaitGroup // the followers of runs' logs

	namesMu sync.RWMutex         // guards names
	names   map[[2]string]string // span names made (see spanName)

	mu      sync.Mutex           // guards tracked and paused
	tracked map[string]*Tracked  // the top-level runs being followed, by id
	paused  map[string]time.Time // when runs paused here, by id (bounded: maxPaused)
}

// New returns an Observer sending to cfg's providers.
func New(cfg Config) (*Observer, error) {
	o := &Observer{content: cfg.CaptureContent, replica: cfg.Replica, tracked: make(map[string]*Tracked), paused: make(map[string]time.Time),
		names: make(map[[2]string]string)}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	o.tracer = tp.Tracer(ScopeName)
	if cfg.MeterProvider != nil {
		inst, err := newInstruments(cfg.MeterProvider.Meter(ScopeName))
		if err != nil {
			return nil, err
		}
		o.inst = inst
	}
	return o, nil
}

// Wait waits until the spans of every run begun so far are ended (each run
// begun must be followed or failed): call it after the runs ended (the host's
// Shutdown), before the providers shut down.
func (o *Observer) Wait() {
	if o != nil {
		o.wg.Wait()
	}
}

// Run describes a top-level run about to start.
type Run struct {
	ID        string
	Kind      run.Kind
	Component string // the workflow's or agent's id
	Name      string // its name
	SessionID string
	// Background is set for a run taken from the queue; Queued is when it was
	// queued (zero: unknown).
	Background bool
	Queued     time.Time
	// Parent is the caller's span, the run span's parent when valid: the
	// traceparent of the HTTP request that started the run, or of the one that
	// queued it.
	Parent trace.SpanContext
	// TakenOver is set when this process continues a run another one left
	// behind; Link is then the span of the run's earlier part, when known.
	TakenOver bool
	Link      trace.SpanContext
	// Continued is set when the run goes on from a pause (a person decided):
	// Link is then the span of the part that paused, the run span's parent too
	// when the continue request carried no traceparent (so that a run's parts
	// share a trace), and PausedAt, when known, is when it paused.
	Continued bool
	PausedAt  time.Time
}

// Cancel sources: where a cancel came from, in kern.cancel.source.
const (
	SourceRequest  = "request"  // Host.Cancel here, from a program (no source on its context)
	SourceAPI      = "api"      // POST /runs/{run_id}/cancel from an HTTP client
	SourceCLI      = "cli"      // the same, from `kern cancel` (its User-Agent)
	SourceMCP      = "mcp"      // an MCP client's notifications/cancelled
	SourceReplica  = "replica"  // another process, through the store
	SourceConsumer = "consumer" // the run's consumer went away
	SourceShutdown = "shutdown" // this process shut down
	SourceOther    = "other"    // a caller's context, a deadline
)

// Tracked is a top-level run an Observer follows. Its methods may be called on a
// nil *Tracked, which does nothing.
type Tracked struct {
	o     *Observer
	info  Run
	ctx   context.Context // carries the run's span
	span  trace.Span
	start time.Time

	mu       sync.Mutex // guards the cancel fields
	cancelAt time.Time  // when a cancel was first asked for the run; zero if none
	source   string
}

// Begin begins the span of a top-level run about to start and returns ctx
// carrying it: start the run with it, so that what the run calls under its
// context (a model's HTTP request) is part of the trace. Follow the run once it
// started, or Fail it when it could not start.
func (o *Observer) Begin(ctx context.Context, r Run) (context.Context, *Tracked) {
	if o == nil {
		return ctx, nil
	}
	parent := r.Parent
	if !parent.IsValid() && r.Continued {
		parent = r.Link
	}
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	op := "invoke_agent"
	if r.Kind == run.KindWorkflow {
		op = "invoke_workflow"
	}
	opts := []trace.SpanStartOption{kindInternal, trace.WithAttributes(o.runAttrs(r, op)...)}
	if r.Link.IsValid() && !r.Link.Equal(parent) {
		la := linkTakeover
		if r.Continued {
			la = linkContinued
		}
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: r.Link, Attributes: la}))
	}
	ctx, span := o.tracer.Start(ctx, o.spanName(op, r.Name), opts...)
	var paused time.Duration
	if r.Continued {
		o.mu.Lock()
		if at, ok := o.paused[r.ID]; ok { // paused here: the exact time
			r.PausedAt = at
			delete(o.paused, r.ID)
		}
		o.mu.Unlock()
		if !r.PausedAt.IsZero() {
			paused = max(time.Since(r.PausedAt), 0)
		}
	}
	if r.Continued {
		attrs := []attribute.KeyValue{}
		if paused > 0 {
			attrs = append(attrs, keyPauseDuration.Float64(float64(paused.Microseconds())/1000))
		}
		span.AddEvent(EventContinued, trace.WithAttributes(attrs...))
	}
	o.wg.Add(1) // done once the run's spans are ended (Follow, Fail)
	t := &Tracked{o: o, info: r, ctx: ctx, span: span, start: time.Now()}
	o.mu.Lock()
	o.tracked[r.ID] = t
	o.mu.Unlock()
	o.inst.runStarted(ctx, r, paused)
	return ctx, t
}

// SpanContext returns the run span's context (invalid for a nil Tracked).
func (t *Tracked) SpanContext() trace.SpanContext {
	if t == nil {
		return trace.SpanContext{}
	}
	return t.span.SpanContext()
}

// Fail ends the span of a run that could not start.
func (t *Tracked) Fail(err error) {
	if t == nil {
		return
	}
	defer t.o.wg.Done()
	t.o.forget(t.info.ID)
	setError(t.span, "_OTHER", err.Error())
	t.span.End()
	t.o.inst.runEnded(t.ctx, t.info, run.StatusError, 0)
}

// Follow follows x, the run Begin began, in a goroutine of the Observer's until
// its log closes, building the spans of its steps, nested runs, model requests and
// tool calls from its events, and ends the run's span with its terminal event.
func (t *Tracked) Follow(x *run.Exec) {
	if t == nil {
		return
	}
	if !t.span.IsRecording() && t.o.inst == nil {
		// Sampled out, and no metrics: nothing to build. The run's span is ended
		// all the same (it makes no export).
		t.o.forget(t.info.ID)
		t.span.End()
		t.o.wg.Done()
		return
	}
	// Reserved here, before the run's first other reader can come: the log of a
	// recorded run drops events once read and stored.
	follow, err := x.Log.Reserve(0)
	go func() {
		defer t.o.wg.Done()
		defer t.o.forget(t.info.ID)
		b := newBuilder(t, x)
		if err == nil {
			_ = follow(context.Background(), b.event)
		}
		b.close()
	}()
}

// CancelRequested notes that a cancel of the run id was asked for now, from
// source: the cancel's latency (to the run's terminal event) and source go in
// the run span's cancel event. Only the first one counts; a run not followed
// here is ignored.
func (o *Observer) CancelRequested(id, source string) {
	if o == nil {
		return
	}
	o.mu.Lock()
	t := o.tracked[id]
	o.mu.Unlock()
	if t == nil {
		return
	}
	t.mu.Lock()
	if t.cancelAt.IsZero() {
		t.cancelAt, t.source = time.Now(), source
	}
	t.mu.Unlock()
}

// CancelAllRequested notes, as CancelRequested does, a cancel of every run
// followed now, from source: a process shutting down.
func (o *Observer) CancelAllRequested(source string) {
	if o == nil {
		return
	}
	o.mu.Lock()
	all := make([]string, 0, len(o.tracked))
	for id := range o.tracked {
		all = append(all, id)
	}
	o.mu.Unlock()
	for _, id := range all {
		o.CancelRequested(id, source)
	}
}

type sourceKey struct{}

// WithCancelSource returns ctx saying that a cancel made with it comes from
// source (SourceAPI, SourceCLI...): Host.Cancel reports that source.
func WithCancelSource(ctx context.Context, source string) context.Context {
	return context.WithValue(ctx, sourceKey{}, source)
}

// CancelSource returns the source WithCancelSource put in ctx, or def.
func CancelSource(ctx context.Context, def string) string {
	if s, ok := ctx.Value(sourceKey{}).(string); ok && s != "" {
		return s
	}
	return def
}

func (t *Tracked) cancelRequest() (time.Time, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cancelAt, t.source
}

// maxPaused bounds the pause times an Observer keeps for runs paused here and
// not continued yet (past it, a continue here knows the pause's time only
// from Run.PausedAt).
const maxPaused = 10000

// pausedNow notes that the run id paused now. Runs paused here may end elsewhere
// (cancelled, expired, continued by another replica) and never be forgotten, so
// at the bound the notes start again rather than stop: a continue here of a run
// paused before that reads its pause's time from Run.PausedAt, as across
// processes.
func (o *Observer) pausedNow(id string) {
	o.mu.Lock()
	if len(o.paused) >= maxPaused {
		clear(o.paused)
	}
	o.paused[id] = time.Now()
	o.mu.Unlock()
}

func (o *Observer) forget(id string) {
	o.mu.Lock()
	delete(o.tracked, id)
	o.mu.Unlock()
}
