package telemetry

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
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

// TraceSummary is one kept trace in a listing, in the shape of Agno's
// (GET /traces).
type TraceSummary struct {
	TraceID    string `json:"trace_id"`
	Name       string `json:"name"`   // its root span's
	Status     string `json:"status"` // OK or ERROR
	Duration   string `json:"duration"`
	StartTime  string `json:"start_time"`
	TotalSpans int    `json:"total_spans"`
	ErrorCount int    `json:"error_count"`
	RunID      string `json:"run_id,omitempty"`
	SessionID  string `json:"session_id,omitempty"`
	AgentID    string `json:"agent_id,omitempty"`
	WorkflowID string `json:"workflow_id,omitempty"`
	CreatedAt  string `json:"created_at"`
}

// TraceDetail is a kept trace with its span tree, in the shape of Agno's
// (GET /traces/{trace_id}).
type TraceDetail struct {
	TraceSummary
	EndTime string       `json:"end_time"`
	Error   string       `json:"error,omitempty"`
	Tree    []*TraceNode `json:"tree"`
}

// TraceNode is a span in a TraceDetail's tree.
type TraceNode struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Type      string         `json:"type"` // WORKFLOW, AGENT, STEP, LLM, TOOL
	Duration  string         `json:"duration"`
	StartTime string         `json:"start_time"`
	EndTime   string         `json:"end_time"`
	Status    string         `json:"status"`
	Error     string         `json:"error,omitempty"`
	Spans     []*TraceNode   `json:"spans,omitempty"`
	Metadata  map[string]any `json:"metadata,omitempty"`
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
	spans, ok := s.spans(id)
	if !ok {
		return nil, false
	}
	return tree(spans), true
}

// spans returns a copy of the kept spans of the trace id.
func (s *SpanStore) spans(id string) ([]sdktrace.ReadOnlySpan, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.traces[id]
	if t == nil {
		return nil, false
	}
	return slices.Clone(t.spans), true
}

// Traces returns a page (from 1) of the kept traces, newest first, limit to a
// page, only those of the run runID when it is not empty, and how many there
// are in all.
func (s *SpanStore) Traces(page, limit int, runID string) ([]TraceSummary, int) {
	s.mu.Lock()
	var ids []string
	if runID != "" {
		if tid, ok := s.runs[runID]; ok {
			ids = []string{tid}
		}
	} else {
		ids = slices.Clone(s.order)
		slices.Reverse(ids)
	}
	total := len(ids)
	first := min((page-1)*limit, total)
	ids = ids[first:min(first+limit, total)]
	sets := make([][]sdktrace.ReadOnlySpan, len(ids))
	for i, id := range ids {
		sets[i] = slices.Clone(s.traces[id].spans)
	}
	s.mu.Unlock()
	out := make([]TraceSummary, len(ids))
	for i, spans := range sets {
		out[i], _ = summarize(ids[i], spans)
	}
	return out, total
}

// Detail returns the trace id with its span tree, in Agno's shape.
func (s *SpanStore) Detail(id string) (*TraceDetail, bool) {
	spans, ok := s.spans(id)
	if !ok {
		return nil, false
	}
	sum, end := summarize(id, spans)
	d := &TraceDetail{TraceSummary: sum, EndTime: isoTime(end)}
	for _, root := range tree(spans) {
		if d.Error == "" && root.Status == "Error" {
			d.Error = root.StatusMessage
		}
		d.Tree = append(d.Tree, node(root))
	}
	return d, true
}

// summarize returns the summary of a trace's spans, and when its last span ended.
func summarize(id string, spans []sdktrace.ReadOnlySpan) (TraceSummary, time.Time) {
	sum := TraceSummary{TraceID: id, TotalSpans: len(spans), Status: "OK"}
	var start, end time.Time
	for _, sp := range spans {
		if start.IsZero() || sp.StartTime().Before(start) {
			start = sp.StartTime()
		}
		if sp.EndTime().After(end) {
			end = sp.EndTime()
		}
		if sp.Status().Code == codes.Error {
			sum.ErrorCount++
		}
		if p := sp.Parent(); p.IsValid() && !p.IsRemote() {
			continue
		}
		sum.Name = sp.Name() // a root: the run's span
		if sp.Status().Code == codes.Error {
			sum.Status = "ERROR"
		}
		for _, kv := range sp.Attributes() {
			switch kv.Key {
			case keyRunID:
				sum.RunID = kv.Value.AsString()
			case keyConversationID:
				sum.SessionID = kv.Value.AsString()
			case keyAgentID:
				sum.AgentID = kv.Value.AsString()
			case keyWorkflowID:
				sum.WorkflowID = kv.Value.AsString()
			}
		}
	}
	sum.Duration, sum.StartTime, sum.CreatedAt = humanDuration(end.Sub(start)), isoTime(start), isoTime(start)
	return sum, end
}

// node is a span as a TraceNode, its children nested.
func node(s *Span) *TraceNode {
	n := &TraceNode{ID: s.SpanID, Name: s.Name, Type: spanType(s), Duration: humanDuration(s.EndTime.Sub(s.StartTime)),
		StartTime: isoTime(s.StartTime), EndTime: isoTime(s.EndTime), Status: "OK"}
	if s.Status == "Error" {
		n.Status, n.Error = "ERROR", s.StatusMessage
	}
	meta := map[string]any{}
	for _, k := range []string{"kern.run.id", "gen_ai.request.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
		"gen_ai.tool.name", "gen_ai.tool.call.id", "kern.step.name", "error.type"} {
		if v, ok := s.Attributes[k]; ok {
			meta[k] = v
		}
	}
	if len(meta) > 0 {
		n.Metadata = meta
	}
	for _, c := range s.Children {
		n.Spans = append(n.Spans, node(c))
	}
	return n
}

func spanType(s *Span) string {
	switch s.Attributes["gen_ai.operation.name"] {
	case "invoke_workflow":
		return "WORKFLOW"
	case "invoke_agent":
		return "AGENT"
	case "chat":
		return "LLM"
	case "execute_tool":
		return "TOOL"
	}
	if _, ok := s.Attributes["kern.step.id"]; ok {
		return "STEP"
	}
	return "UNKNOWN"
}

// humanDuration writes d as Agno does: "123ms" under a second, "1.50s" above.
func humanDuration(d time.Duration) string {
	if d < time.Second {
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
}

func isoTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

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
