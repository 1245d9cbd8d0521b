package agentos

import (
	"net/http"

	"github.com/kern-dev/kern/agentos/console"
	"github.com/kern-dev/kern/run"
)

// route is one entry of the route table: what the mux serves and what GET
// /openapi.json and GET /docs describe, from the same value.
type route struct {
	method      string
	pattern     string // a ServeMux path pattern, {name} for path parameters
	handler     http.HandlerFunc
	summary     string
	description string
	params      []param // query and header parameters; path ones come from pattern
	body        bodyKind
	responses   []response
	public      bool // served without the security key
}

// param is a query or header parameter of a route.
type param struct {
	name, in, typ, description string
}

// bodyKind is what a route's request body is.
type bodyKind int

const (
	bodyNone     bodyKind = iota
	bodyRun               // a run request: form (urlencoded or multipart) or JSON
	bodyResume            // a resume request: form (urlencoded or multipart)
	bodyContinue          // a continue request: form (urlencoded or multipart) or JSON
	bodyResolve           // an approval's resolution: JSON (or a form)
)

// response is one answer a route gives: a status, what it means, and the schema of
// its JSON body ("" for none); sse marks a text/event-stream answer, retry one
// that carries a Retry-After header.
type response struct {
	code        int
	description string
	schema      string
	sse         bool
	retry       bool
}

// Schema names of the answers, defined in the OpenAPI document's components.
const (
	schemaError     = "Error"
	schemaHealth    = "Health"
	schemaConfig    = "Config"
	schemaSummary   = "ComponentSummaries"
	schemaWorkflow  = "Workflow"
	schemaAgent     = "Agent"
	schemaOutput    = "RunOutput"
	schemaOutputs   = "RunOutputs"
	schemaCancel    = "CancelAnswer"
	schemaAccepted  = "RunAccepted"
	schemaSession   = "Session"
	schemaSessions  = "SessionPage"
	schemaReplicas  = "Replicas"
	schemaQueue     = "Queue"
	schemaApproval  = "Approval"
	schemaApprovals = "ApprovalPage"
)

func ok(schema string) response {
	return response{code: http.StatusOK, description: "OK", schema: schema}
}

// retryLater is a refusal for now, with Retry-After: admission control's 503, a
// full queue's 429.
func retryLater(code int, description string) response {
	r := fail(code, description)
	r.retry = true
	return r
}

func fail(code int, description string) response {
	return response{code: code, description: description, schema: schemaError}
}

var (
	notFound     = fail(http.StatusNotFound, "Unknown workflow, agent, run or session")
	invalidQuery = fail(http.StatusUnprocessableEntity, "Invalid query parameter")
	storeDown    = fail(http.StatusServiceUnavailable, "Store unavailable")
	// resumeDown is a resumption's 503: the store's, or admission control's.
	resumeDown     = fail(http.StatusServiceUnavailable, "Store unavailable; or busy, at its max streams: retry after Retry-After seconds")
	badResume      = fail(http.StatusBadRequest, "Malformed form or invalid event index")
	tooLarge       = fail(http.StatusRequestEntityTooLarge, "Request body over the size limit")
	wrongMediaType = fail(http.StatusUnsupportedMediaType, "Body neither a form nor JSON")
)

// runQueryParams are the filters and page of a run listing.
var runQueryParams = []param{
	{"session_id", "query", "string", "Only the runs of this session."},
	{"user_id", "query", "string", "Only the runs of this user."},
	{"status", "query", "string", "Only the runs with this status (PENDING, RUNNING, COMPLETED, PAUSED, CANCELLED, ERROR)."},
	{"limit", "query", "integer", "At most this many runs (default 100)."},
	{"offset", "query", "integer", "Skip this many runs, newest first."},
}

// routeTable returns every route the server serves.
func (s *Server) routeTable() []route {
	rs := []route{
		{method: "GET", pattern: "/health", handler: health, public: true,
			summary: "Health check", description: "Answers 200 while the server runs; never requires the security key.",
			responses: []response{ok(schemaHealth)}},
		{method: "GET", pattern: "/config", handler: s.getConfig,
			summary: "What this server offers", description: "The server's os_id, databases, agents, teams, workflows and interfaces.",
			responses: []response{ok(schemaConfig)}},
		{method: "GET", pattern: "/openapi.json", handler: s.getOpenAPI,
			summary: "OpenAPI document", description: "This API as an OpenAPI 3.1 document, generated from the server's route table.",
			responses: []response{{code: http.StatusOK, description: "OK"}}},
		{method: "GET", pattern: "/docs", handler: s.getDocs,
			summary: "API documentation", description: "A readable HTML page listing every route.",
			responses: []response{{code: http.StatusOK, description: "An HTML page"}}},
		{method: "GET", pattern: "/runs/{run_id}", handler: s.getRun,
			summary: "Get a run", description: "A run of any workflow or agent, by id: its output, status, partial content when cancelled.",
			responses: []response{ok(schemaOutput), notFound, storeDown}},
		{method: "POST", pattern: "/runs/{run_id}/cancel", handler: s.cancelRun,
			summary: "Cancel a run", description: "Cancels a run of any workflow or agent and, unless wait=false, waits for it to end. A run not known yet keeps the intent (PENDING).",
			params:    []param{{"wait", "query", "boolean", "Wait for the run to end (default true)."}},
			responses: []response{ok(schemaCancel), invalidQuery, storeDown}},
		{method: "GET", pattern: "/approvals", handler: s.listApprovals,
			summary: "List approvals", description: "The decisions paused runs wait for, one per paused run (its id the run's), newest first, " +
				"in Agno's paginated shape; only pending ones are kept.",
			params: []param{{"status", "query", "string", "pending (the default; other statuses list nothing)."},
				{"agent_id", "query", "string", "Only this agent's."}, {"workflow_id", "query", "string", "Only this workflow's."},
				{"team_id", "query", "string", "Only this team's."},
				{"user_id", "query", "string", "Only this user's (filtered within the page)."}, {"run_id", "query", "string", "Only this run's."},
				{"limit", "query", "integer", "At most this many (1 to 1,000; default 100)."}, {"page", "query", "integer", "From 1."}},
			responses: []response{ok(schemaApprovals), invalidQuery, storeDown}},
		{method: "GET", pattern: "/approvals/{approval_id}", handler: s.getApproval,
			summary: "Get an approval", description: "The decision a paused run waits for; 404 once it no longer waits.",
			responses: []response{ok(schemaApproval), notFound, storeDown}},
		{method: "POST", pattern: "/approvals/{approval_id}/resolve", handler: s.resolveApproval, body: bodyResolve,
			summary: "Resolve an approval", description: "Approves or rejects every requirement of the paused run (resolution_data: note, " +
				"values, result) and continues it in the background.",
			responses: []response{ok(schemaApproval), notFound, fail(http.StatusConflict, "The run is no longer paused"),
				fail(http.StatusUnprocessableEntity, "Invalid status, or decisions that do not match what the run waits for"), storeDown}},
		{method: "GET", pattern: "/sessions", handler: s.listSessions,
			summary: "List sessions", description: "A page of sessions, newest first; a session exists from its first run.",
			params: sessionListParams, responses: []response{ok(schemaSessions), invalidQuery, storeDown}},
		{method: "GET", pattern: "/sessions/{session_id}", handler: s.getSession,
			summary: "Get a session", params: sessionParams,
			responses: []response{ok(schemaSession), notFound, invalidQuery, storeDown}},
		{method: "DELETE", pattern: "/sessions/{session_id}", handler: s.deleteSession,
			summary: "Delete a session", description: "Deletes a session and its runs.", params: sessionParams[1:],
			responses: []response{{code: http.StatusNoContent, description: "Deleted"}, notFound,
				fail(http.StatusConflict, "A server without a store cannot delete sessions"), storeDown}},
		{method: "GET", pattern: "/sessions/{session_id}/runs", handler: s.listSessionRuns,
			summary: "List a session's runs", params: runQueryParams[1:],
			responses: []response{ok(schemaOutputs), invalidQuery, storeDown}},
		{method: "GET", pattern: "/sessions/{session_id}/runs/{run_id}", handler: s.getSessionRun,
			summary: "Get a session's run", responses: []response{ok(schemaOutput), notFound, storeDown}},
	}
	for _, k := range []struct {
		kind  run.Kind
		base  string
		list  []*component
		param string
		info  string
	}{
		{run.KindWorkflow, "/workflows", s.workflows, "workflow_id", schemaWorkflow},
		{run.KindAgent, "/agents", s.agents, "agent_id", schemaAgent},
		{run.KindTeam, "/teams", s.teams, "team_id", schemaTeam},
	} {
		rs = append(rs, s.collectionRoutes(collection{s: s, kind: k.kind, param: k.param}, k.base, k.list, k.info)...)
	}
	rs = append(rs, s.consoleRoutes()...)
	rs = append(rs, s.mcpRoutes()...)
	return append(rs, s.observeRoutes()...)
}

// collectionRoutes are the routes of the workflows or of the agents.
func (s *Server) collectionRoutes(c collection, base string, list []*component, info string) []route {
	one := base + "/{" + c.param + "}"
	what := string(c.kind)
	resume := "Streams the run's events after an event index, given as last_event_index (0-based) or as the " +
		"Last-Event-ID header, then its live events until it ends; a finished run's are replayed from the store."
	resumeParams := []param{{"Last-Event-ID", "header", "string", "Resume after this event index (EventSource)."}}
	sseOK := response{code: http.StatusOK, description: "The run's events as server-sent events", sse: true}
	rs := []route{
		{method: "GET", pattern: base, handler: c.list(list),
			summary: "List the " + what + "s", responses: []response{ok(schemaSummary)}},
		{method: "GET", pattern: one, handler: c.with(c.info),
			summary: "Get a " + what, responses: []response{ok(info), notFound}},
		{method: "POST", pattern: one + "/runs", handler: c.with(s.createRun), body: bodyRun,
			summary: "Start a " + what + " run",
			description: "With stream=true (the default) the answer is a server-sent event stream that ends after the run's " +
				"terminal event; with stream=false the run's output as JSON; with background=true a 202 and the run goes on. " +
				"A streaming client that disconnects cancels a foreground run after a grace period.",
			responses: []response{
				{code: http.StatusOK, description: "The run's events (stream=true), or its output (stream=false)", schema: schemaOutput, sse: true},
				{code: http.StatusAccepted, description: "A background run, queued", schema: schemaAccepted},
				fail(http.StatusBadRequest, "Malformed form or JSON"), notFound, fail(http.StatusConflict, "Duplicate run id"),
				tooLarge, wrongMediaType, fail(http.StatusUnprocessableEntity, "Missing message or invalid field"),
				retryLater(http.StatusTooManyRequests, "Background queue full"),
				retryLater(http.StatusServiceUnavailable, "Server shutting down; or busy, at its max runs or max streams: retry after Retry-After seconds"),
			}},
		{method: "GET", pattern: one + "/runs", handler: c.with(s.listRuns),
			summary: "List the " + what + "'s runs", params: runQueryParams,
			responses: []response{ok(schemaOutputs), notFound, invalidQuery, storeDown}},
		{method: "GET", pattern: one + "/runs/{run_id}", handler: c.with(s.getComponentRun),
			summary: "Get a " + what + " run", responses: []response{ok(schemaOutput), notFound, storeDown}},
		{method: "POST", pattern: one + "/runs/{run_id}/cancel", handler: c.with(s.cancelComponentRun),
			summary: "Cancel a " + what + " run",
			description: "200 with the run's id and status for any run id of a known " + what +
				" (the intent is kept for a run not started yet); waits for the run to end unless wait=false.",
			params:    []param{{"wait", "query", "boolean", "Wait for the run to end (default true)."}},
			responses: []response{ok(schemaCancel), notFound, invalidQuery, storeDown}},
		{method: "POST", pattern: one + "/runs/{run_id}/resume", handler: c.with(s.resume), body: bodyResume,
			summary: "Resume a " + what + " run's stream", description: resume, params: resumeParams,
			responses: []response{sseOK, badResume, notFound, tooLarge, wrongMediaType, resumeDown}},
		{method: "GET", pattern: one + "/runs/{run_id}/resume", handler: c.with(s.resume),
			summary: "Resume a " + what + " run's stream (EventSource)", description: resume,
			params:    append(resumeParams, param{"last_event_index", "query", "integer", "Resume after this event index."}),
			responses: []response{sseOK, badResume, notFound, resumeDown}},
	}
	decisions := "tools holds the tool executions it waits for (its RunPaused's tools) with the decisions set " +
		"(confirmed and confirmation_note, user_input_schema values, or result), matched by tool_call_id"
	if c.kind == run.KindWorkflow {
		decisions = "step_requirements holds the step requirements it waits for (its WorkflowPaused's) with the decisions set " +
			"(confirmed, or user_input), matched by step_id"
	}
	{
		rs = append(rs, route{method: "POST", pattern: one + "/runs/{run_id}/continue", handler: c.with(s.continueRun), body: bodyContinue,
			summary: "Continue a paused " + what + " run",
			description: "Continues a PAUSED run, from any server on the same database: " + decisions + ". Streams the run's events " +
				"from its continuation on (stream=true, the default), answers its output (stream=false), or 202 while it goes on " +
				"(background=true).",
			responses: []response{
				{code: http.StatusOK, description: "The run's events (stream=true), or its output (stream=false)", schema: schemaOutput, sse: true},
				{code: http.StatusAccepted, description: "Continued in the background", schema: schemaAccepted},
				fail(http.StatusBadRequest, "Malformed form, JSON or tools field"), notFound,
				fail(http.StatusConflict, "The run is not paused (it runs, it ended, or another continue took it first)"),
				tooLarge, wrongMediaType, fail(http.StatusUnprocessableEntity, "Decisions that do not match what the run waits for"),
				retryLater(http.StatusServiceUnavailable, "Server shutting down; or busy, at its max streams"),
			}})
	}
	return rs
}

func health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// routes builds the server's handler from the route table, behind the security
// check and the JSON answers to unknown routes and wrong methods.
func (s *Server) routes() http.Handler {
	s.table = s.routeTable()
	s.mux = http.NewServeMux()
	for _, rt := range s.table {
		s.mux.HandleFunc(rt.method+" "+rt.pattern, rt.handler)
	}
	// The console: public assets, outside the API's table (see package console).
	s.mux.Handle("GET /{$}", console.Handler())
	s.mux.Handle("GET "+console.Prefix, console.Handler())
	return s.secure(jsonFallback(s.mux))
}
