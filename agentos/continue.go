package agentos

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/run"
)

// continueRequest is the body of POST /agents/{agent_id}/runs/{run_id}/continue (and
// of the workflows' route), as
// form fields (Agno's client sends a form) or JSON.
type continueRequest struct {
	// Tools are the tool executions the run waits for, with the decisions: a
	// JSON array, or (as Agno's form field) a string holding one.
	Tools json.RawMessage `json:"tools"`
	// StepRequirements are a workflow run's decisions: its step requirements,
	// decided (a JSON array, or a string holding one).
	StepRequirements json.RawMessage `json:"step_requirements"`
	// Requirements are the decisions as Agno's continue_team_run sends them:
	// its RunRequirements (confirmation, confirmation_note,
	// external_execution_result, tool_execution), a JSON array or a string
	// holding one. They add to Tools.
	Requirements json.RawMessage `json:"requirements"`
	Stream       *bool           `json:"stream"`
	Background   bool            `json:"background"`
	SessionID    string          `json:"session_id"`
	UserID       string          `json:"user_id"`
}

// readContinue reads a continue request and the decisions it carries.
func (s *Server) readContinue(w http.ResponseWriter, r *http.Request) (continueRequest, error) {
	var req continueRequest
	q := r.URL.Query()
	for _, name := range [...]string{"stream", "background"} {
		if q.Has(name) {
			return req, badRequest(http.StatusUnprocessableEntity, "%s is a body field (form or JSON), not a query parameter", name)
		}
	}
	isJSON, err := s.readForm(w, r, &req)
	if err != nil {
		return req, err
	}
	if !isJSON {
		f := r.PostForm
		req.Tools, req.SessionID, req.UserID = formJSON(f.Get("tools")), f.Get("session_id"), f.Get("user_id")
		req.StepRequirements = formJSON(f.Get("step_requirements"))
		req.Requirements = formJSON(f.Get("requirements"))
		if err := formFlags(f, &req.Stream, &req.Background); err != nil {
			return req, err
		}
	}
	for _, id := range [...]struct{ name, v string }{{"session_id", req.SessionID}, {"user_id", req.UserID}} {
		if err := checkID(id.name, id.v); err != nil {
			return req, badRequest(http.StatusUnprocessableEntity, "%v", err)
		}
	}
	return req, nil
}

// decodeList reads a field that holds a JSON array into v: the array, or a JSON
// string holding one; empty means none. Malformed JSON is a 400, as Agno answers.
func decodeList(name string, raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return badRequest(http.StatusBadRequest, "Invalid JSON in %s field: %v", name, err)
		}
		return decodeList(name, json.RawMessage(s), v)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return badRequest(http.StatusBadRequest, "Invalid JSON in %s field: %v", name, err)
	}
	return nil
}

// continueRun continues a paused agent or workflow run with the decisions the request
// carries: streamed as SSE from the run's next event, waited for and answered as
// JSON, or, with background, answered 202 while it goes on.
func (s *Server) continueRun(w http.ResponseWriter, r *http.Request, c *component) {
	req, err := s.readContinue(w, r)
	hr := host.ContinueRequest{Kind: c.kind, Component: c.id, RunID: r.PathValue("run_id"), Background: req.Background,
		Parent: host.ParseTraceparent(r.Header.Get("Traceparent"))}
	if err == nil && c.kind == run.KindWorkflow {
		err = decodeList("step_requirements", req.StepRequirements, &hr.Steps)
	} else if err == nil {
		err = decodeList("tools", req.Tools, &hr.Tools)
		var reqs []run.Requirement
		if err == nil {
			err = decodeList("requirements", req.Requirements, &reqs)
		}
		// Agno's RunRequirements: each its tool execution, decided.
		hr.Tools = append(hr.Tools, run.ExecutorTools(reqs)...)
	}
	if err != nil {
		s.answerError(w, err)
		return
	}
	streamed := !req.Background && (req.Stream == nil || *req.Stream)
	if streamed {
		if !s.takeStream(w) {
			return
		}
		defer s.streamSlots.give()
	}
	cr, err := s.host.Continue(r.Context(), hr)
	if err != nil {
		s.answerContinueError(w, err)
		return
	}
	s.answerContinued(w, r, c, cr, req, streamed)
}

// answerContinued answers a continued run as the request asked: 202 at once
// (background), its events from RunContinued on, or its output once it ended.
func (s *Server) answerContinued(w http.ResponseWriter, r *http.Request, c *component, hr *host.Run, req continueRequest, streamed bool) {
	x := hr.Exec()
	if req.Background {
		writeJSON(w, http.StatusAccepted, map[string]string{
			"run_id": hr.ID(), "session_id": x.Output().SessionID, "status": string(run.StatusRunning),
		})
		return
	}
	s.attach(hr)
	if streamed {
		s.stream(w, r, hr, x.Resume.NextEvent)
		return
	}
	out, err := s.host.Result(r.Context(), hr)
	switch {
	case r.Context().Err() != nil:
		s.detach(hr, false)
	case err != nil:
		s.detach(hr, true)
		s.writeStoreError(w, err, "run "+hr.ID())
	default:
		s.detach(hr, true)
		writeJSON(w, http.StatusOK, newAnswer(fixOutput(out, c.kind, c.id, ""), ""))
	}
}

// answerContinueError answers why a run could not be continued: 404 for a run
// the agent does not have, 409 for one that is not paused, 422 for decisions
// that do not match what it waits for.
func (s *Server) answerContinueError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, host.ErrUnknownRun):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, run.ErrNotPaused), errors.Is(err, host.ErrNoPauses):
		writeError(w, http.StatusConflict, err.Error())
	default:
		s.answerStartError(w, err)
	}
}
