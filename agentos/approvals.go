package agentos

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// approval is a decision a paused run waits for, in the shape of Agno's
// ApprovalResponse. kern keeps one approval per paused run, its id the run's id:
// resolving it decides every requirement of the run at once, and continues it.
type approval struct {
	ID           string                `json:"id"`
	RunID        string                `json:"run_id"`
	SessionID    string                `json:"session_id"`
	Status       string                `json:"status"`      // pending, approved, rejected
	SourceType   string                `json:"source_type"` // agent, team or workflow
	ApprovalType string                `json:"approval_type"`
	PauseType    string                `json:"pause_type"` // confirmation, user_input, external_execution
	ToolName     string                `json:"tool_name,omitempty"`
	ToolArgs     any                   `json:"tool_args,omitempty"`
	AgentID      string                `json:"agent_id,omitempty"`
	WorkflowID   string                `json:"workflow_id,omitempty"`
	TeamID       string                `json:"team_id,omitempty"`
	UserID       string                `json:"user_id,omitempty"`
	SourceName   string                `json:"source_name,omitempty"`
	Requirements []any                 `json:"requirements"`
	ResolvedBy   string                `json:"resolved_by,omitempty"`
	ResolvedAt   int64                 `json:"resolved_at,omitempty"`
	CreatedAt    int64                 `json:"created_at"`
	UpdatedAt    int64                 `json:"updated_at"`
	RunStatus    run.Status            `json:"run_status"`
	steps        []run.StepRequirement // a workflow's, to decide
	tools        []run.ToolExecution   // an agent's, to decide
	pause        int                   // the pause's run.Paused.NextEvent: which pause is decided
}

// newApproval returns the approval a paused stored run is.
func newApproval(rec *store.Run) approval {
	out := &rec.Output
	a := approval{ID: rec.ID, RunID: rec.ID, SessionID: rec.SessionID, Status: "pending", SourceType: string(rec.Kind),
		ApprovalType: "required", PauseType: "confirmation", UserID: rec.UserID, CreatedAt: rec.UpdatedAt.Unix(),
		UpdatedAt: rec.UpdatedAt.Unix(), RunStatus: rec.Status, steps: out.StepRequirements, tools: out.Tools, Requirements: []any{}}
	if out.Paused != nil {
		a.pause = out.Paused.NextEvent
	}
	if rec.Kind == run.KindWorkflow {
		a.WorkflowID, a.SourceName = rec.ComponentID, out.WorkflowName
		for _, s := range out.StepRequirements {
			a.Requirements = append(a.Requirements, s)
			a.ToolName = s.StepName
			if len(s.ExecutorRequirements) > 0 && s.ExecutorRequirements[0].ToolExecution != nil {
				t := s.ExecutorRequirements[0].ToolExecution
				a.ToolName, a.ToolArgs = t.ToolName, t.ToolArgs
			}
			if !s.RequiresConfirmation && s.RequiresUserInput {
				a.PauseType = "user_input"
			}
		}
		return a
	}
	if rec.Kind == run.KindTeam {
		a.TeamID, a.SourceName = rec.ComponentID, out.TeamName
	} else {
		a.AgentID, a.SourceName = rec.ComponentID, out.AgentName
	}
	for _, r := range out.Requirements {
		a.Requirements = append(a.Requirements, r)
	}
	if len(out.Tools) > 0 {
		t := out.Tools[0]
		a.ToolName, a.ToolArgs = t.ToolName, t.ToolArgs
		switch {
		case t.ExternalExecutionRequired:
			a.PauseType = "external_execution"
		case t.RequiresUserInput:
			a.PauseType = "user_input"
		}
	}
	return a
}

// listApprovals answers GET /approvals: the paused runs, newest first, in Agno's
// paginated shape. Only pending approvals are kept (the paused runs): a listing
// of another status is empty. total_count counts the pages read so far and one
// more approval when there is a next page (0 for an empty page past the end);
// with run_id, it is 1 when that run is a pending approval the other filters
// select, else 0.
func (s *Server) listApprovals(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err1 := queryInt(q.Get("limit"), 100, 1, 1000)
	page, err2 := queryInt(q.Get("page"), 1, 1, 1<<20)
	if err := errors.Join(err1, err2); err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	status := q.Get("status")
	if status != "" && status != "pending" && status != "approved" && status != "rejected" && status != "expired" && status != "cancelled" {
		writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("status %q is not pending, approved, rejected, expired or cancelled", status))
		return
	}
	list := []approval{}
	total := 0
	if s.store != nil && (status == "" || status == "pending") {
		rq := store.RunQuery{Status: run.StatusPaused, UserID: q.Get("user_id"), Limit: limit + 1, Offset: (page - 1) * limit}
		switch {
		case q.Get("agent_id") != "":
			rq.Kind, rq.ComponentID = run.KindAgent, q.Get("agent_id")
		case q.Get("workflow_id") != "":
			rq.Kind, rq.ComponentID = run.KindWorkflow, q.Get("workflow_id")
		case q.Get("team_id") != "":
			rq.Kind, rq.ComponentID = run.KindTeam, q.Get("team_id")
		}
		var runs []*store.Run
		var err error
		if id := q.Get("run_id"); id != "" {
			// One run at most: read it, whatever page it would fall on.
			runs, err = s.pausedRun(r, id, rq)
			total = len(runs)
			if page > 1 {
				runs = nil
			}
		} else if runs, err = s.store.ListRuns(r.Context(), rq); err == nil && len(runs) > 0 {
			total = rq.Offset + len(runs) // an empty page past the end counts nothing
		}
		if err != nil {
			s.writeStoreError(w, err, "approvals")
			return
		}
		if len(runs) > limit {
			runs = runs[:limit]
		}
		for _, rec := range runs {
			list = append(list, newApproval(rec))
		}
	}
	pages := (total + limit - 1) / limit
	writeJSON(w, http.StatusOK, map[string]any{"data": list,
		"meta": map[string]int{"page": page, "limit": limit, "total_pages": pages, "total_count": total}})
}

// pausedRun returns the run with the given id when it is paused and matches rq's
// user and component; none otherwise.
func (s *Server) pausedRun(r *http.Request, id string, rq store.RunQuery) ([]*store.Run, error) {
	rec, err := s.store.GetRun(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case rec.Status != run.StatusPaused || rq.UserID != "" && rec.UserID != rq.UserID ||
		rq.Kind != "" && (rec.Kind != rq.Kind || rec.ComponentID != rq.ComponentID):
		return nil, nil
	}
	return []*store.Run{rec}, nil
}

// queryInt reads an integer query parameter within [lo, hi]; def when empty.
func queryInt(v string, def, lo, hi int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q is not an integer from %d to %d", v, lo, hi)
	}
	return n, nil
}

// pendingApproval reads the approval with the given id: its run, paused. It
// answers the client itself (404) when there is none.
//
// A run that exists but no longer waits is a 404 too, or, with resolving, a 409
// (as Agno answers an approval resolved already).
func (s *Server) pendingApproval(w http.ResponseWriter, r *http.Request, resolving bool) (approval, bool) {
	id := r.PathValue("approval_id")
	if s.store == nil {
		writeError(w, http.StatusNotFound, "approval not found: this server keeps no paused runs")
		return approval{}, false
	}
	rec, err := s.store.GetRun(r.Context(), id)
	switch {
	case err == nil && rec.Status != run.StatusPaused && resolving:
		writeError(w, http.StatusConflict, fmt.Sprintf("run %s is %s: it waits for no decision", id, rec.Status))
		return approval{}, false
	case errors.Is(err, store.ErrNotFound) || err == nil && rec.Status != run.StatusPaused:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no pending approval %q", id))
		return approval{}, false
	case err != nil:
		s.writeStoreError(w, err, "approval "+id)
		return approval{}, false
	}
	return newApproval(rec), true
}

func (s *Server) getApproval(w http.ResponseWriter, r *http.Request) {
	if a, ok := s.pendingApproval(w, r, false); ok {
		writeJSON(w, http.StatusOK, a)
	}
}

// resolveRequest is the body of POST /approvals/{approval_id}/resolve (Agno's
// ApprovalResolve). resolution_data may carry a note (the rejection's, which the
// model reads), values (a user input's, by field name) and result (an external
// execution's).
type resolveRequest struct {
	Status         string `json:"status"`
	ResolvedBy     string `json:"resolved_by"`
	ResolutionData struct {
		Note   string         `json:"note"`
		Values map[string]any `json:"values"`
		Result string         `json:"result"`
	} `json:"resolution_data"`
}

// resolveApproval answers POST /approvals/{approval_id}/resolve: it decides
// every requirement of the paused run (approved: confirmed, with the values and
// result resolution_data gives; rejected: not confirmed, with its note) and
// continues the run in the background. 409 when it is no longer paused.
func (s *Server) resolveApproval(w http.ResponseWriter, r *http.Request) {
	var body resolveRequest
	isJSON, err := s.readForm(w, r, &body)
	if err != nil {
		s.answerError(w, err)
		return
	}
	if !isJSON {
		f := r.PostForm
		body.Status, body.ResolvedBy, body.ResolutionData.Note = f.Get("status"), f.Get("resolved_by"), f.Get("note")
	}
	if body.Status != "approved" && body.Status != "rejected" {
		writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("status must be approved or rejected, not %q", body.Status))
		return
	}
	a, ok := s.pendingApproval(w, r, true)
	if !ok {
		return
	}
	approved := body.Status == "approved"
	d := body.ResolutionData
	req := host.ContinueRequest{Kind: run.Kind(a.SourceType), Component: a.AgentID + a.WorkflowID + a.TeamID, RunID: a.RunID, Background: true,
		Pause: a.pause}
	for _, t := range a.tools {
		t.Confirmed, t.ConfirmationNote, t.Result = &approved, d.Note, d.Result
		for i, f := range t.UserInputSchema {
			if v, ok := d.Values[f.Name]; ok {
				t.UserInputSchema[i].Value = v
			}
		}
		if !approved && !t.RequiresConfirmation {
			writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("tool call %q waits for values or a result, not a confirmation: it cannot be rejected", t.ToolCallID))
			return
		}
		req.Tools = append(req.Tools, t)
	}
	for _, st := range a.steps {
		st.Confirmed = &approved
		if approved {
			st.UserInput = d.Values
		}
		st.ExecutorRequirements = append([]run.Requirement(nil), st.ExecutorRequirements...)
		for j := range st.ExecutorRequirements {
			t := *st.ExecutorRequirements[j].ToolExecution
			t.Confirmed, t.ConfirmationNote, t.Result = &approved, d.Note, d.Result
			t.UserInputSchema = append([]run.UserInputField(nil), t.UserInputSchema...)
			for i, f := range t.UserInputSchema {
				if v, ok := d.Values[f.Name]; ok {
					t.UserInputSchema[i].Value = v
				}
			}
			st.ExecutorRequirements[j].ToolExecution = &t
		}
		req.Steps = append(req.Steps, st)
	}
	if _, err := s.host.Continue(r.Context(), req); err != nil {
		s.answerContinueError(w, err)
		return
	}
	a.Status, a.ResolvedBy, a.ResolvedAt, a.RunStatus = body.Status, body.ResolvedBy, time.Now().Unix(), run.StatusRunning
	writeJSON(w, http.StatusOK, a)
}
