package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/kern-dev/kern/run"
)

// instruments are the metrics an Observer records. A nil *instruments records
// nothing.
type instruments struct {
	opDuration   metric.Float64Histogram // gen_ai.client.operation.duration
	tokenUsage   metric.Int64Histogram   // gen_ai.client.token.usage
	ttft         metric.Float64Histogram // gen_ai.client.time_to_first_token
	runsStarted  metric.Int64Counter
	runsEnded    metric.Int64Counter
	runsLive     metric.Int64UpDownCounter
	cancelLat    metric.Float64Histogram
	queueWait    metric.Float64Histogram
	takeovers    metric.Int64Counter
	eventsServed metric.Int64Counter
	streamsOpen  metric.Int64UpDownCounter
	storeWrite   metric.Float64Histogram
	storeBatch   metric.Int64Histogram
	runsPaused   metric.Int64Counter
	runsCont     metric.Int64Counter
	pauseDur     metric.Float64Histogram
	meter        metric.Meter
}

// Bucket boundaries, in seconds: the conventions' advice for the GenAI client
// durations, and finer ones for cancels (kern's cancel takes milliseconds).
var (
	durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	tokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	pauseBuckets    = []float64{1, 5, 15, 60, 300, 900, 3600, 14400, 86400, 604800}
	cancelBuckets   = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
)

func newInstruments(m metric.Meter) (*instruments, error) {
	i := instruments{meter: m}
	var errs [16]error
	i.opDuration, errs[0] = m.Float64Histogram("gen_ai.client.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("GenAI operation duration."), metric.WithExplicitBucketBoundaries(durationBuckets...))
	i.tokenUsage, errs[1] = m.Int64Histogram("gen_ai.client.token.usage", metric.WithUnit("{token}"),
		metric.WithDescription("Number of input and output tokens used."), metric.WithExplicitBucketBoundaries(tokenBuckets...))
	i.ttft, errs[2] = m.Float64Histogram("gen_ai.client.time_to_first_token", metric.WithUnit("s"),
		metric.WithDescription("Time to receive the first chunk of a streamed response."), metric.WithExplicitBucketBoundaries(durationBuckets...))
	i.runsStarted, errs[3] = m.Int64Counter("kern.runs.started", metric.WithUnit("{run}"),
		metric.WithDescription("Top-level runs started in this process, by kind and component."))
	i.runsEnded, errs[4] = m.Int64Counter("kern.runs.ended", metric.WithUnit("{run}"),
		metric.WithDescription("Top-level runs ended in this process, by kind, component and status."))
	i.runsLive, errs[5] = m.Int64UpDownCounter("kern.runs.live", metric.WithUnit("{run}"),
		metric.WithDescription("Top-level runs executing in this process."))
	i.cancelLat, errs[6] = m.Float64Histogram("kern.cancel.latency", metric.WithUnit("s"),
		metric.WithDescription("From a cancel's request to the run's terminal event."), metric.WithExplicitBucketBoundaries(cancelBuckets...))
	i.queueWait, errs[7] = m.Float64Histogram("kern.queue.wait", metric.WithUnit("s"),
		metric.WithDescription("How long background runs waited in the queue."), metric.WithExplicitBucketBoundaries(durationBuckets...))
	i.takeovers, errs[8] = m.Int64Counter("kern.runs.taken_over", metric.WithUnit("{run}"),
		metric.WithDescription("Runs this process took over from a process that left them behind."))
	i.eventsServed, errs[9] = m.Int64Counter("kern.events.delivered", metric.WithUnit("{event}"),
		metric.WithDescription("Events delivered to streaming clients."))
	i.streamsOpen, errs[10] = m.Int64UpDownCounter("kern.streams.open", metric.WithUnit("{stream}"),
		metric.WithDescription("Event streams open to clients."))
	i.storeWrite, errs[11] = m.Float64Histogram("kern.store.write.duration", metric.WithUnit("s"),
		metric.WithDescription("How long a write of a batch of events to the store took."), metric.WithExplicitBucketBoundaries(cancelBuckets...))
	i.storeBatch, errs[12] = m.Int64Histogram("kern.store.write.batch_size", metric.WithUnit("{event}"),
		metric.WithDescription("Events per write to the store (group commit)."), metric.WithExplicitBucketBoundaries(tokenBuckets...))
	i.runsPaused, errs[13] = m.Int64Counter("kern.runs.paused", metric.WithUnit("{run}"),
		metric.WithDescription("Top-level runs that paused here for a person (each pause counts)."))
	i.runsCont, errs[14] = m.Int64Counter("kern.runs.continued", metric.WithUnit("{run}"),
		metric.WithDescription("Paused runs continued here (counted once in kern.runs.started, when they first started)."))
	i.pauseDur, errs[15] = m.Float64Histogram("kern.pause.duration", metric.WithUnit("s"),
		metric.WithDescription("How long runs continued here waited for a person."), metric.WithExplicitBucketBoundaries(pauseBuckets...))
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return &i, nil
}

func compAttrs(r Run) metric.MeasurementOption {
	return metric.WithAttributes(attribute.String("kern.run.kind", string(r.Kind)), attribute.String("kern.component", r.Component))
}

func (i *instruments) runStarted(ctx context.Context, r Run, paused time.Duration) {
	if i == nil {
		return
	}
	a := compAttrs(r)
	if r.Continued {
		i.runsCont.Add(ctx, 1, a)
		if paused > 0 {
			i.pauseDur.Record(ctx, paused.Seconds(), a)
		}
	} else {
		i.runsStarted.Add(ctx, 1, a)
	}
	i.runsLive.Add(ctx, 1, a)
	if r.TakenOver {
		i.takeovers.Add(ctx, 1, a)
	}
	if r.Background && !r.Queued.IsZero() {
		i.queueWait.Record(ctx, time.Since(r.Queued).Seconds(), a)
	}
}

func (i *instruments) runEnded(ctx context.Context, r Run, st run.Status, cancelLatency time.Duration) {
	if i == nil {
		return
	}
	a := compAttrs(r)
	i.runsLive.Add(ctx, -1, a)
	i.runsEnded.Add(ctx, 1, metric.WithAttributes(attribute.String("kern.run.kind", string(r.Kind)),
		attribute.String("kern.component", r.Component), attribute.String("kern.run.status", string(st))))
	if cancelLatency > 0 {
		i.cancelLat.Record(ctx, cancelLatency.Seconds(), a)
	}
}

// runPaused counts a run's pause: it is no longer live, and not ended.
func (i *instruments) runPaused(ctx context.Context, r Run) {
	if i == nil {
		return
	}
	a := compAttrs(r)
	i.runsLive.Add(ctx, -1, a)
	i.runsPaused.Add(ctx, 1, a)
}

func (i *instruments) modelRequest(ctx context.Context, provider, model string, m *run.Metrics) {
	if i == nil {
		return
	}
	base := []attribute.KeyValue{keyOperation.String("chat"), keyProvider.String(provider), keyRequestModel.String(model)}
	a := metric.WithAttributes(base...)
	i.opDuration.Record(ctx, m.Duration.Seconds(), a)
	if m.TimeToFirstToken > 0 {
		i.ttft.Record(ctx, m.TimeToFirstToken.Seconds(), a)
	}
	i.tokenUsage.Record(ctx, int64(m.InputTokens), metric.WithAttributes(append(base, attribute.String("gen_ai.token.type", "input"))...))
	i.tokenUsage.Record(ctx, int64(m.OutputTokens), metric.WithAttributes(append(base, attribute.String("gen_ai.token.type", "output"))...))
}

// StreamOpened counts a client's event stream opened; call the function it
// returns once the stream closes, with the number of events delivered on it.
func (o *Observer) StreamOpened(ctx context.Context) func(delivered int) {
	if o == nil || o.inst == nil {
		return func(int) {}
	}
	o.inst.streamsOpen.Add(ctx, 1)
	return func(n int) {
		o.inst.streamsOpen.Add(ctx, -1)
		o.inst.eventsServed.Add(ctx, int64(n))
	}
}

// StoreWrite records a write of a batch of events to the store (see
// store.RecorderOptions.OnWrite).
func (o *Observer) StoreWrite(d time.Duration, events int, err error) {
	if o == nil || o.inst == nil {
		return
	}
	ctx := context.Background()
	a := metric.WithAttributes(attribute.Bool("kern.store.error", err != nil))
	o.inst.storeWrite.Record(ctx, d.Seconds(), a)
	o.inst.storeBatch.Record(ctx, int64(events), a)
}

// ObserveQueue reports depth's answer as kern.queue.depth, the background runs
// waiting, whenever metrics are read, until the returned function is called.
func (o *Observer) ObserveQueue(depth func(context.Context) (int64, error)) (stop func(), err error) {
	if o == nil || o.inst == nil {
		return func() {}, nil
	}
	g, err := o.inst.meter.Int64ObservableGauge("kern.queue.depth", metric.WithUnit("{run}"),
		metric.WithDescription("Background runs queued, waiting for a worker."))
	if err != nil {
		return nil, err
	}
	reg, err := o.inst.meter.RegisterCallback(func(ctx context.Context, ob metric.Observer) error {
		n, err := depth(ctx)
		if err != nil {
			return err
		}
		ob.ObserveInt64(g, n)
		return nil
	}, g)
	if err != nil {
		return nil, err
	}
	return func() { _ = reg.Unregister() }, nil
}
