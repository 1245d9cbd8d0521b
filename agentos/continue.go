package agentos

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/run"
)

// continueRequest is the body of POST /agents/{agent_id}/runs/{run_id}/continue, as
// form fields (Agno's client sends a form) or JSON.
type continueRequest struct {
	// Tools are the tool executions the run waits for, with the decisions: a
	// JSON array, or (as Agno's form field) a string holding one.
	Tools      json.RawMessage `json:"tools"`
	Stream     *bool           `json:"stream"`
	Background bool            `json:"background"`
	SessionID  string          `json:"session_id"`
	UserID     string          `json:"user_id"`
}

// readContinue reads a continue request and the decisions it carries.
func (s *Server) readContinue(w http.ResponseWriter, r *http.Request) (continueRequest, []run.ToolExecution, error) {
	var req continueRequest
	q := r.URL.Query()
	for _, name := range [...]string{"stream", "background"} {
		if q.Has(name) {
			return req, nil, badRequest(http.StatusUnprocessableEntity, "%s is a body field (form or JSON), not a query parameter", name)
		}
	}
	isJSON, err := s.readForm(w, r, &req)
	if err != nil {
		return req, nil, err
	}
	if !isJSON {
		f := r.PostForm
		req.Tools, req.SessionID, req.UserID = formJSON(f.Get("tools")), f.Get("session_id"), f.Get("user_id")
		for _, b := range []struct {
			name string
			dst  *bool
		}{{"stream", nil}, {"background", &req.Background}} {
			if !f.Has(b.name) {
				continue
			}
			v, err := strconv.ParseBool(f.Get(b.name))
			if err != nil {
				return req, nil, badRequest(http.StatusUnprocessableEntity, "%s must be a boolean, not %q", b.name, f.Get(b.name))
			}
			if b.dst == nil {
				req.Stream = &v
			} else {
				*b.dst = v
			}
		}
	}
	for _, id := range [...]struct{ name, v string }{{"session_id", req.SessionID}, {"user_id", req.UserID}} {
		if err := checkID(id.name, id.v); err != nil {
			return req, nil, badRequest(http.StatusUnprocessableEntity, "%v", err)
		}
	}
	tools, err := decodeTools(req.Tools)
	return req, tools, err
}

// decodeTools reads the tools field: a JSON array of tool executions, or a JSON
// string holding one; empty means none. Malformed JSON is a 400, as Agno answers.
func decodeTools(raw json.RawMessage) ([]run.ToolExecution, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badRequest(http.StatusBadRequest, "Invalid JSON in tools field: %v", err)
		}
		return decodeTools(json.RawMessage(s))
	}
	var tools []run.ToolExecution
	if err := json.Unmarshal(raw, &tools); err != nil {
		return nil, badRequest(http.StatusBadRequest, "Invalid JSON in tools field: %v", err)
	}
	return tools, nil
}

// continueRun continues a paused agent run with the decisions the request
// carries: streamed as SSE from the run's next event, waited for and answered as
// JSON, or, with background, answered 202 while it goes on.
func (s *Server) continueRun(w http.ResponseWriter, r *http.Request, c *component) {
	req, tools, err := s.readContinue(w, r)
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
	hr, err := s.host.Continue(r.Context(), host.ContinueRequest{Kind: c.kind, Component: c.id, RunID: r.PathValue("run_id"),
		Tools: tools, Background: req.Background})
	if err != nil {
		s.answerContinueError(w, err)
		return
	}
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
