package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"

	"github.com/kern-dev/kern/run"
)

// Approval is a decision a paused run waits for, as the server answers it (Agno's
// ApprovalResponse; kern keeps one per paused run, its id the run's).
type Approval struct {
	ID           string            `json:"id"`
	RunID        string            `json:"run_id"`
	SessionID    string            `json:"session_id"`
	Status       string            `json:"status"`      // pending, approved or rejected
	SourceType   string            `json:"source_type"` // agent, team or workflow
	PauseType    string            `json:"pause_type"`  // confirmation, user_input or external_execution
	ToolName     string            `json:"tool_name"`   // the tool, or the workflow's step
	ToolArgs     json.RawMessage   `json:"tool_args"`
	AgentID      string            `json:"agent_id"`
	WorkflowID   string            `json:"workflow_id"`
	TeamID       string            `json:"team_id"`
	UserID       string            `json:"user_id"`
	Requirements []json.RawMessage `json:"requirements"`
	CreatedAt    int64             `json:"created_at"`
	RunStatus    run.Status        `json:"run_status"`
}

// ApprovalQuery selects approvals; its zero value lists the first page of every
// pending one.
type ApprovalQuery struct {
	AgentID, WorkflowID, TeamID, UserID string
	Limit, Page                         int // 0: the server's defaults (100, 1)
}

// Approvals lists the pending approvals (GET /approvals), newest first.
func (c *Client) Approvals(ctx context.Context, q ApprovalQuery) ([]Approval, error) {
	v := url.Values{}
	for k, s := range map[string]string{"agent_id": q.AgentID, "workflow_id": q.WorkflowID, "team_id": q.TeamID, "user_id": q.UserID} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Page > 0 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	path := "/approvals"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var ans struct {
		Data []Approval `json:"data"`
	}
	if err := c.call(ctx, http.MethodGet, path, nil, &ans); err != nil {
		return nil, err
	}
	return ans.Data, nil
}

// Resolution is a person's decision on an approval.
type Resolution struct {
	Approved   bool
	ResolvedBy string
	Note       string         // a rejection's, which the model reads
	Values     map[string]any // a user input's, by field name
	Result     string         // an external execution's
}

// Resolve approves or rejects an approval (POST /approvals/{id}/resolve): every
// requirement of the paused run is decided, and the server continues the run.
func (c *Client) Resolve(ctx context.Context, id string, r Resolution) (*Approval, error) {
	status := "rejected"
	if r.Approved {
		status = "approved"
	}
	body, err := json.Marshal(map[string]any{"status": status, "resolved_by": r.ResolvedBy,
		"resolution_data": map[string]any{"note": r.Note, "values": r.Values, "result": r.Result}})
	if err != nil {
		return nil, fmt.Errorf("client: resolve approval %s: %w", id, err)
	}
	path := "/approvals/" + url.PathEscape(id) + "/resolve"
	resp, err := c.sendJSON(ctx, http.MethodPost, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var a Approval
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJSONBody)).Decode(&a); err != nil {
		return nil, fmt.Errorf("client: POST %s: malformed answer: %w", path, err)
	}
	return &a, nil
}

// sendJSON sends a request with a JSON body and returns the answer when its status
// is 2xx; otherwise an *Error.
func (c *Client) sendJSON(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("client: %s %s on %s: %w", method, path, c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, newError(resp, method, path)
	}
	return resp, nil
}

// Decisions are what a person decided about what a paused run waits for: an
// agent's tool executions or a workflow's step requirements, as the run's pause
// event (RunPaused, WorkflowPaused) carried them, each with its decision set.
type Decisions struct {
	Tools []run.ToolExecution
	Steps []run.StepRequirement
}

// Continue continues a paused run of the component with the decisions
// (POST .../runs/{run_id}/continue, stream=true, as Agno's client sends it) and
// yields its events from its continuation on, ending after its terminal event or
// its next pause. It behaves as Stream does.
func (c Component) Continue(ctx context.Context, runID string, d Decisions) iter.Seq2[*run.Event, error] {
	form := url.Values{"stream": {"true"}}
	if d.Tools != nil {
		b, _ := json.Marshal(d.Tools) // tool executions always encode
		form.Set("tools", string(b))
	}
	if d.Steps != nil {
		b, _ := json.Marshal(d.Steps) // decoded JSON values always encode
		form.Set("step_requirements", string(b))
	}
	return c.c.events(ctx, http.MethodPost, c.base+"/runs/"+url.PathEscape(runID)+"/continue", form, nil, runID)
}
