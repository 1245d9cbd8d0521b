package telemetry

import (
	"context"
	"slices"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// maxSpansPerTrace bounds the spans a SpanStore keeps of one trace: a run that
// loops for ever does not grow it without limit.
const maxSpansPerTrace = 10000

// SpanStore keeps the ended spans of the last traces in memory, for a server
// to show a run's trace without a collector (as adk-go's dev UI does). It is an
// sdktrace.SpanProcessor; it is safe for concurrent use.
type SpanStore struct {
	max int

	mu     sync.Mutex              // guards the fields below
	traces map[string]*storedTrace // by trace id
	order  []string                // trace ids, oldest first
	runs   map[string]string       // run id -> trace id
}

type storedTrace struct {
	id    string
	spans []sdktrace.ReadOnlySpan
	runs  []string
}

// NewSpanStore returns a store of the spans of the last max traces.
func NewSpanStore(max int) *SpanStore {
	return &SpanStore{max: max, traces: make(map[string]*storedTrace), runs: make(map[string]string)}
}

// OnStart does nothing: spans are kept once ended.
func (s *SpanStore) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd keeps the span.
func (s *SpanStore) OnEnd(sp sdktrace.ReadOnlySpan) {
	tid := sp.SpanContext().TraceID().String()
	var runID string
	for _, kv := range sp.Attributes() {
		if kv.Key == keyRunID {
			runID = kv.Value.AsString()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.traces[tid]
	if t == nil {
		t = &storedTrace{id: tid}
		s.traces[tid] = t
		s.order = append(s.order, tid)
		s.evict()
	}
	if len(t.spans) < maxSpansPerTrace {
		t.spans = append(t.spans, sp)
	}
	if runID != "" && s.runs[runID] != tid {
		s.runs[runID] = tid
		t.runs = append(t.runs, runID)
	}
}

// evict forgets the oldest traces beyond max. s.mu must be held.
func (s *SpanStore) evict() {
	for len(s.order) > s.max {
		old := s.traces[s.order[0]]
		delete(s.traces, s.order[0])
		for _, id := range old.runs {
			if s.runs[id] == old.id {
				delete(s.runs, id)
			}
		}
		s.order[0] = ""
		s.order = s.order[1:]
	}
}

// Shutdown does nothing.
func (s *SpanStore) Shutdown(context.Context) error { return nil }

// ForceFlush does nothing: spans are kept as they end.
func (s *SpanStore) ForceFlush(context.Context) error { return nil }

// Span is a kept span as a server shows it: its children nested, its times and
// duration in milliseconds.
type Span struct {
	TraceID       string         `json:"trace_id"`
	SpanID        string         `json:"span_id"`
	ParentSpanID  string         `json:"parent_span_id,omitempty"`
	Name          string         `json:"name"`
	Kind          string         `json:"kind"`
	StartTime     time.Time      `json:"start_time"`
	EndTime       time.Time      `json:"end_time"`
	DurationMS    float64        `json:"duration_ms"`
	Status        string         `json:"status"`
	StatusMessage string         `json:"status_message,omitempty"`
	Attributes    map[string]any `json:"attributes,omitempty"`
	Events        []SpanEvent    `json:"events,omitempty"`
	Links         []string       `json:"links,omitempty"` // traceparents of linked spans
	Children      []*Span        `json:"children,omitempty"`
}

// SpanEvent is an event of a kept span.
type SpanEvent struct {
	Name       string         `json:"name"`
	Time       time.Time      `json:"time"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// TraceSummary is one kept trace in a listing.
type TraceSummary struct {
	TraceID    string    `json:"trace_id"`
	Name       string    `json:"name"` // its first root span's
	RunIDs     []string  `json:"run_ids"`
	Spans      int       `json:"span_count"`
	StartTime  time.Time `json:"start_time"`
	DurationMS float64   `json:"duration_ms"`
	Status     string    `json:"status"`
}

// Run returns the trace of the run id (a top-level run's or a nested one's):
// its trace id and root spans, with their children nested. It reports false
// for a run none of whose spans is kept.
func (s *SpanStore) Run(id string) (string, []*Span, bool) {
	s.mu.Lock()
	tid, ok := s.runs[id]
	s.mu.Unlock()
	if !ok {
		return "", nil, false
	}
	roots, ok := s.Trace(tid)
	return tid, roots, ok
}

// Trace returns the root spans of the trace id, their children nested.
func (s *SpanStore) Trace(id string) ([]*Span, bool) {
	s.mu.Lock()
	t := s.traces[id]
	var spans []sdktrace.ReadOnlySpan
	if t != nil {
		spans = slices.Clone(t.spans)
	}
	s.mu.Unlock()
	if t == nil {
		return nil, false
	}
	return tree(spans), true
}

// Traces returns the kept traces, newest first, at most limit.
func (s *SpanStore) Traces(limit int) []TraceSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TraceSummary, 0, min(limit, len(s.order)))
	for i := len(s.order) - 1; i >= 0 && len(out) < limit; i-- {
		t := s.traces[s.order[i]]
		sum := TraceSummary{TraceID: t.id, RunIDs: slices.Clone(t.runs), Spans: len(t.spans), Status: "OK"}
		var start, end time.Time
		for _, sp := range t.spans {
			if start.IsZero() || sp.StartTime().Before(start) {
				start = sp.StartTime()
			}
			if sp.EndTime().After(end) {
				end = sp.EndTime()
			}
			if !sp.Parent().IsValid() || sp.Parent().IsRemote() {
				sum.Name = sp.Name()
			}
			if sp.Status().Code.String() == "Error" {
				sum.Status = "ERROR"
			}
		}
		sum.StartTime, sum.DurationMS = start, ms(end.Sub(start))
		out = append(out, sum)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// tree nests spans under their parents; spans whose parent is not kept (a
// remote caller's, or not ended yet) are roots. Children are in start order.
func tree(spans []sdktrace.ReadOnlySpan) []*Span {
	slices.SortFunc(spans, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	byID := make(map[string]*Span, len(spans))
	all := make([]*Span, len(spans))
	for i, sp := range spans {
		all[i] = convert(sp)
		byID[all[i].SpanID] = all[i]
	}
	var roots []*Span
	for _, n := range all {
		if p := byID[n.ParentSpanID]; p != nil && p != n {
			p.Children = append(p.Children, n)
		} else {
			roots = append(roots, n)
		}
	}
	return roots
}

func convert(sp sdktrace.ReadOnlySpan) *Span {
	n := &Span{TraceID: sp.SpanContext().TraceID().String(), SpanID: sp.SpanContext().SpanID().String(),
		Name: sp.Name(), Kind: sp.SpanKind().String(), StartTime: sp.StartTime(), EndTime: sp.EndTime(),
		DurationMS: ms(sp.EndTime().Sub(sp.StartTime())), Status: sp.Status().Code.String(),
		StatusMessage: sp.Status().Description}
	if p := sp.Parent(); p.IsValid() {
		n.ParentSpanID = p.SpanID().String()
	}
	if attrs := sp.Attributes(); len(attrs) > 0 {
		n.Attributes = make(map[string]any, len(attrs))
		for _, kv := range attrs {
			n.Attributes[string(kv.Key)] = kv.Value.AsInterface()
		}
	}
	for _, ev := range sp.Events() {
		e := SpanEvent{Name: ev.Name, Time: ev.Time}
		if len(ev.Attributes) > 0 {
			e.Attributes = make(map[string]any, len(ev.Attributes))
			for _, kv := range ev.Attributes {
				e.Attributes[string(kv.Key)] = kv.Value.AsInterface()
			}
		}
		n.Events = append(n.Events, e)
	}
	for _, l := range sp.Links() {
		n.Links = append(n.Links, l.SpanContext.TraceID().String()+"-"+l.SpanContext.SpanID().String())
	}
	return n
}
