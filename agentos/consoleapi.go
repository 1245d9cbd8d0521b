package agentos

import (
	"net/http"

	"github.com/kern-dev/kern/run"
)

// Routes the console needs beyond Agno's API: every run of the server's
// database, filtered and paged on the server.

// MaxRunsPage bounds a page of GET /runs.
const MaxRunsPage = 1000

// consoleRoutes are the routes added for the console (and any client).
func (s *Server) consoleRoutes() []route {
	return []route{
		{method: "GET", pattern: "/runs", handler: s.listAllRuns,
			summary: "List runs", description: "Every run of every workflow and agent this server's database holds, newest first, " +
				"filtered and paged on the server; the runs this server executes and has not stored yet come first.",
			params: append([]param{
				{"workflow_id", "query", "string", "Only the runs of this workflow."},
				{"agent_id", "query", "string", "Only the runs of this agent."},
			}, runQueryParams...),
			responses: []response{ok(schemaOutputs), invalidQuery, storeDown}},
	}
}

// listAllRuns answers GET /runs.
func (s *Server) listAllRuns(w http.ResponseWriter, r *http.Request) {
	q, err := runQuery(r)
	if err != nil {
		s.answerError(w, err)
		return
	}
	if q.Limit > MaxRunsPage {
		writeError(w, http.StatusUnprocessableEntity, "limit is at most 1000")
		return
	}
	wf, ag := r.URL.Query().Get("workflow_id"), r.URL.Query().Get("agent_id")
	switch {
	case wf != "" && ag != "":
		writeError(w, http.StatusUnprocessableEntity, "give workflow_id or agent_id, not both")
		return
	case wf != "":
		q.Kind, q.ComponentID = run.KindWorkflow, wf
	case ag != "":
		q.Kind, q.ComponentID = run.KindAgent, ag
	}
	s.answerRuns(w, r, q)
}
