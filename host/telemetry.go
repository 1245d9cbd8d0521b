package host

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/telemetry"
)

// MetadataTraceparent is the key of a traced run's W3C traceparent in its
// metadata (run.Output.Metadata): a queued run's is its caller's span, a started
// run's its own span, which a process that takes the run over links to.
const MetadataTraceparent = "traceparent"

// Telemetry returns the host's observer (nil: telemetry off).
func (h *Host) Telemetry() *telemetry.Observer { return h.opts.Telemetry }

// logCtx returns a context for the log lines about r: carrying its span once it
// started traced, so that a telemetry.LogHandler adds its trace and span ids.
func (r *Run) logCtx() context.Context {
	if !r.span.IsValid() {
		return context.Background()
	}
	return trace.ContextWithSpanContext(context.Background(), r.span)
}

// traced is what the host knows of a run's trace before it starts.
type traced struct {
	parent    trace.SpanContext // the caller's span (Request.Parent, or the queued run's)
	link      trace.SpanContext // the span of the run's earlier part (a run taken over, or continued)
	takenOver bool
	continued bool      // the run goes on from a pause
	pausedAt  time.Time // when it paused, if known
}

// traceBegin begins r's span when the host has telemetry, and returns the
// context and options r starts with: the context carries the span (a model's
// HTTP request made under it carries its traceparent), and the options keep the
// span's traceparent in the run's metadata.
func (h *Host) traceBegin(ctx context.Context, r *Run) (context.Context, []run.Option, *telemetry.Tracked) {
	obs := h.opts.Telemetry
	if obs == nil {
		return ctx, r.opts, nil
	}
	info := telemetry.Run{ID: r.id, Kind: r.comp.kind, Component: r.comp.id, SessionID: r.sessionID,
		Background: r.background, Parent: r.trace.parent, Link: r.trace.link, TakenOver: r.trace.takenOver,
		Continued: r.trace.continued, PausedAt: r.trace.pausedAt}
	switch {
	case r.comp.wf != nil:
		info.Name = r.comp.wf.Name
	case r.comp.team != nil:
		info.Name = r.comp.team.Name
	case r.comp.agent != nil:
		info.Name = r.comp.agent.Name
	}
	if r.background && !r.trace.takenOver && !r.trace.continued {
		info.Queued = r.queuedAt
	}
	ctx, tr := obs.Begin(ctx, info)
	opts := append(r.opts[:len(r.opts):len(r.opts)], run.WithMetadata(MetadataTraceparent, Traceparent(tr.SpanContext())))
	return ctx, opts, tr
}

// Traceparent returns sc as a W3C traceparent header value, "" when sc is not
// valid.
func Traceparent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), c)
	return c.Get("traceparent")
}

// ParseTraceparent returns the span context a W3C traceparent header value names,
// invalid when the value is not one.
func ParseTraceparent(tp string) trace.SpanContext {
	if tp == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	return trace.SpanContextFromContext(ctx)
}

// traceparentOf returns the traceparent kept in a stored run's metadata.
func traceparentOf(out *run.Output) trace.SpanContext {
	return ParseTraceparent(out.Metadata[MetadataTraceparent])
}

// queueDepth returns how many background runs wait for a worker: in this
// process's memory, or in the store's queue (counted up to Options.QueueSize,
// over every process on the database).
func (h *Host) queueDepth(ctx context.Context) (int64, error) {
	switch q := h.queue.(type) {
	case *memQueue:
		h.mu.Lock()
		defer h.mu.Unlock()
		return int64(len(q.pending)), nil
	case *storeQueue:
		n, err := q.q.Queued(ctx, h.opts.QueueSize)
		return int64(n), err
	}
	return 0, nil
}
