package agentos

import (
	"net/http"
	"strconv"

	"github.com/kern-dev/kern/telemetry"
)

// DefaultTraceListLimit is how many traces GET /traces lists unless limit says.
const DefaultTraceListLimit = 20

// observeRoutes are the routes of what the server observes: GET /metrics when
// Config.Metrics is set, the kept traces when Config.Traces is.
func (s *Server) observeRoutes() []route {
	var rs []route
	if s.cfg.Metrics != nil {
		rs = append(rs, route{method: "GET", pattern: "/metrics", handler: s.cfg.Metrics.ServeHTTP, public: s.cfg.MetricsPublic,
			summary: "Metrics", description: "The server's metrics in the Prometheus text format: runs, cancels, streams, " +
				"the GenAI client metrics, the Go runtime's. Behind the security key unless the server makes them public.",
			responses: []response{{code: http.StatusOK, description: "Prometheus text exposition"}}})
	}
	if s.cfg.Traces != nil {
		rs = append(rs,
			route{method: "GET", pattern: "/runs/{run_id}/trace", handler: s.getRunTrace,
				summary: "A run's trace", description: "The spans of the run's trace kept in memory (recent runs only), nested, with their timings.",
				responses: []response{{code: http.StatusOK, description: "The trace"}, notFound}},
			route{method: "GET", pattern: "/traces", handler: s.listTraces,
				summary: "Recent traces", description: "The traces kept in memory, newest first, a page at a time (Agno's shape: data and meta).",
				params: []param{{"limit", "query", "integer", "Traces per page, 1 to 100 (default 20)."},
					{"page", "query", "integer", "Page, from 1 (default 1)."}, {"run_id", "query", "string", "Only the trace of this run."}},
				responses: []response{{code: http.StatusOK, description: "The traces"}, invalidQuery}},
			route{method: "GET", pattern: "/traces/{trace_id}", handler: s.getTrace,
				summary: "A trace", description: "A trace kept in memory with its tree of spans (Agno's shape).",
				responses: []response{{code: http.StatusOK, description: "The trace"}, notFound}})
	}
	return rs
}

// traceAnswer is a trace as GET /runs/{run_id}/trace and GET /traces/{trace_id}
// answer it.
type traceAnswer struct {
	TraceID string            `json:"trace_id"`
	RunID   string            `json:"run_id,omitempty"`
	Spans   []*telemetry.Span `json:"spans"`
}

func (s *Server) getRunTrace(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("run_id")
	tid, spans, ok := s.cfg.Traces.Run(id)
	if !ok {
		writeError(w, http.StatusNotFound, "no trace kept for run "+id+" (traces are kept for recent runs only)")
		return
	}
	writeJSON(w, http.StatusOK, traceAnswer{TraceID: tid, RunID: id, Spans: spans})
}

func (s *Server) getTrace(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("trace_id")
	d, ok := s.cfg.Traces.Detail(id)
	if !ok {
		writeError(w, http.StatusNotFound, "no trace "+id+" kept")
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// traceList is GET /traces's answer, in the shape of Agno's paginated answers.
type traceList struct {
	Data []telemetry.TraceSummary `json:"data"`
	Meta pageInfo                 `json:"meta"`
}

func (s *Server) listTraces(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, page := DefaultTraceListLimit, 1
	for _, p := range []struct {
		name string
		dst  *int
		max  int
	}{{"limit", &limit, 100}, {"page", &page, 1 << 30}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > p.max {
			writeError(w, http.StatusUnprocessableEntity, p.name+" must be an integer from 1 to "+strconv.Itoa(p.max))
			return
		}
		*p.dst = n
	}
	data, total := s.cfg.Traces.Traces(page, limit, q.Get("run_id"))
	writeJSON(w, http.StatusOK, traceList{Data: data,
		Meta: pageInfo{Page: page, Limit: limit, TotalPages: (total + limit - 1) / limit, TotalCount: total}})
}
