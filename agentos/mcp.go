package agentos

// kern as an MCP server: /mcp speaks the Model Context Protocol's streamable HTTP
// transport (with the official Go SDK), behind the security key like every route.
// Its tools start runs of the host's workflows and agents (progress notifications
// while they stream), and get, list and cancel runs. An MCP client's
// notifications/cancelled for a call that started a run cancels the run.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/telemetry"
)

// MCPSessionTimeout is how long an MCP session with no request lives on.
const MCPSessionTimeout = 30 * time.Minute

// ReasonMCPCancelled is the reason of a run cancelled by its MCP client's
// notifications/cancelled, or by the end of its call's request where the
// protocol version ties the call to it (2026-07-28 on; before it, a client that
// drops the connection without notifications/cancelled leaves the run going).
const ReasonMCPCancelled = "MCP client cancelled the call"

// startArgs are the arguments of a tool that starts a run.
type startArgs struct {
	Message    string `json:"message" jsonschema:"the run's input"`
	SessionID  string `json:"session_id,omitempty" jsonschema:"the session the run belongs to; a new one if omitted"`
	UserID     string `json:"user_id,omitempty" jsonschema:"who the run is for"`
	Background bool   `json:"background,omitempty" jsonschema:"queue the run and answer its id at once, without waiting for its end"`
}

type runArgs struct {
	RunID string `json:"run_id" jsonschema:"the run's id"`
}

type cancelArgs struct {
	RunID string `json:"run_id" jsonschema:"the run's id"`
	Wait  *bool  `json:"wait,omitempty" jsonschema:"wait for the run to end (default true)"`
}

type continueArgs struct {
	RunID            string           `json:"run_id" jsonschema:"the paused run's id"`
	Tools            []map[string]any `json:"tools,omitempty" jsonschema:"an agent's or team's run: the tool executions it waits for (its tools), each with the decision set (confirmed and confirmation_note, user_input_schema values, or result)"`
	StepRequirements []map[string]any `json:"step_requirements,omitempty" jsonschema:"a workflow's run: the step requirements it waits for, each with confirmed or user_input set"`
}

type listArgs struct {
	WorkflowID string `json:"workflow_id,omitempty" jsonschema:"only the runs of this workflow"`
	AgentID    string `json:"agent_id,omitempty" jsonschema:"only the runs of this agent"`
	SessionID  string `json:"session_id,omitempty" jsonschema:"only the runs of this session"`
	Status     string `json:"status,omitempty" jsonschema:"only the runs with this status: PENDING, RUNNING, COMPLETED, PAUSED, CANCELLED or ERROR"`
	Limit      int    `json:"limit,omitempty" jsonschema:"at most this many runs, newest first (default 100)"`
}

// newMCP returns the handler of /mcp.
func (s *Server) newMCP() http.Handler {
	srv := sdk.NewServer(&sdk.Implementation{Name: s.cfg.OSID, Title: "kern", Version: "1"}, &sdk.ServerOptions{
		Instructions: "Start runs of this kern server's workflows, agents and teams, and get, list and cancel runs.",
		Capabilities: &sdk.ServerCapabilities{Tools: &sdk.ToolCapabilities{}},
	})
	for _, c := range append(append(append([]*component(nil), s.workflows...), s.agents...), s.teams...) {
		desc := fmt.Sprintf("Runs the %s %q on a message and answers its output (as JSON: run_id, status, content...). "+
			"Progress notifications carry its events while it runs; cancelling the call cancels the run.", c.kind, c.name)
		if c.description != "" {
			desc = c.description + "\n\n" + desc
		}
		sdk.AddTool(srv, &sdk.Tool{Name: string(c.kind) + "_" + c.id, Title: c.name, Description: desc},
			func(ctx context.Context, req *sdk.CallToolRequest, in startArgs) (*sdk.CallToolResult, any, error) {
				return s.mcpStart(ctx, req, c, in)
			})
	}
	sdk.AddTool(srv, &sdk.Tool{Name: "get_run", Description: "A run of any workflow or agent, by id: its output, status, partial content when cancelled."},
		func(ctx context.Context, _ *sdk.CallToolRequest, in runArgs) (*sdk.CallToolResult, any, error) {
			return s.mcpCall(ctx, "GET", "/runs/"+url.PathEscape(in.RunID), nil)
		})
	sdk.AddTool(srv, &sdk.Tool{Name: "list_runs", Description: "Runs, newest first, of a workflow, an agent, a session or all."},
		func(ctx context.Context, _ *sdk.CallToolRequest, in listArgs) (*sdk.CallToolResult, any, error) {
			return s.mcpList(ctx, in)
		})
	sdk.AddTool(srv, &sdk.Tool{Name: "continue_run", Description: "Continues a PAUSED run (status PAUSED: it waits for a person) " +
		"with the decisions on what it waits for, and answers its output once it ends or pauses again."},
		func(ctx context.Context, _ *sdk.CallToolRequest, in continueArgs) (*sdk.CallToolResult, any, error) {
			return s.mcpContinue(ctx, in)
		})
	sdk.AddTool(srv, &sdk.Tool{Name: "cancel_run", Description: "Cancels a run of any workflow or agent and, unless wait is false, waits for it to end; answers the status it reached."},
		func(ctx context.Context, _ *sdk.CallToolRequest, in cancelArgs) (*sdk.CallToolResult, any, error) {
			q := url.Values{}
			if in.Wait != nil {
				q.Set("wait", strconv.FormatBool(*in.Wait))
			}
			return s.mcpCall(ctx, "POST", "/runs/"+url.PathEscape(in.RunID)+"/cancel", q)
		})
	s.mcpServer = srv
	return sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, &sdk.StreamableHTTPOptions{
		SessionTimeout:               MCPSessionTimeout,
		MaxRequestBodyBytes:          s.cfg.MaxBodyBytes,
		PropagateRequestCancellation: true,
		// The guard checks Host and Origin for every route already.
		DisableLocalhostProtection: true,
	})
}

// mcpStart starts a run of c and, unless it is a background run, waits for its
// end, sending its events as progress notifications when the client asked for
// progress. The call's end (the client's notifications/cancelled, its request
// gone) cancels the run.
func (s *Server) mcpStart(ctx context.Context, req *sdk.CallToolRequest, c *component, in startArgs) (*sdk.CallToolResult, any, error) {
	for _, id := range [...]struct{ name, v string }{{"session_id", in.SessionID}, {"user_id", in.UserID}} {
		if err := checkID(id.name, id.v); err != nil {
			return nil, nil, err
		}
	}
	if err := checkMessage(in.Message); err != nil {
		return nil, nil, err
	}
	hr := host.Request{Kind: c.kind, Component: c.id, Input: in.Message, SessionID: in.SessionID, UserID: in.UserID}
	if hr.SessionID == "" {
		hr.SessionID = run.NewID()
	}
	if in.Background {
		out, err := s.host.Enqueue(ctx, hr)
		if err != nil {
			return nil, nil, err
		}
		return jsonResult(map[string]string{"run_id": out.RunID, "session_id": out.SessionID, "status": string(run.StatusPending)})
	}
	lr, err := s.host.Start(hr)
	if err != nil {
		return nil, nil, err
	}
	select {
	case <-lr.Started():
	case <-ctx.Done():
		return nil, nil, s.mcpCancel(lr.ID(), ctx)
	}
	if err := lr.Err(); err != nil {
		return nil, nil, err
	}
	x := lr.Exec()
	token := req.Params.GetProgressToken()
	err = s.host.FollowExec(ctx, x, 0, func(ev *run.Event) bool {
		if token != nil {
			data, _ := ev.AppendJSON(nil)
			s.progress(ctx, req, token, ev.EventIndex, data)
		}
		return !((ev.Event.Terminal() || ev.Event.Pauses()) && ev.RunID == x.ID)
	}, func(evs []store.Event) bool {
		for _, e := range evs {
			if token != nil {
				s.progress(ctx, req, token, e.Index, e.Data)
			}
			if e.Ends(x.ID) || pauses(e, x.ID) {
				return false
			}
		}
		return true
	})
	if ctx.Err() != nil {
		return nil, nil, s.mcpCancel(lr.ID(), ctx)
	}
	if err != nil {
		return nil, nil, err
	}
	out, err := s.host.Result(ctx, lr)
	if err != nil {
		return nil, nil, err
	}
	res, _, err := jsonResult(newAnswer(fixOutput(out, c.kind, c.id, ""), s.cfg.Replica))
	if res != nil && out.Status != run.StatusCompleted && out.Status != run.StatusPaused {
		res.IsError = true // the run's output says why: its status, error, partial content
	}
	return res, nil, err
}

// pauses reports whether e is the event that pauses the run with the given id.
func pauses(e store.Event, runID string) bool {
	if !e.Type.Pauses() {
		return false
	}
	var id struct {
		RunID string `json:"run_id"`
	}
	return json.Unmarshal(e.Data, &id) == nil && id.RunID == runID
}

// mcpCancel cancels a run whose MCP call ended before it, and returns the call's
// error.
func (s *Server) mcpCancel(id string, ctx context.Context) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.CancelWait)
	defer cancel()
	if _, _, err := s.host.Cancel(telemetry.WithCancelSource(cctx, telemetry.SourceMCP), id, ReasonMCPCancelled, true); err != nil {
		s.log.Warn("agentos: cancel of a run for its MCP client", "run_id", id, "err", err)
	}
	return context.Cause(ctx)
}

// progress sends one event of a run as a progress notification: its index + 1 as
// the progress, the event's JSON (as SSE streams carry it) as the message.
func (s *Server) progress(ctx context.Context, req *sdk.CallToolRequest, token any, index int, event []byte) {
	err := req.Session.NotifyProgress(ctx, &sdk.ProgressNotificationParams{ProgressToken: token, Progress: float64(index + 1), Message: string(event)})
	if err != nil && ctx.Err() == nil {
		s.log.Debug("agentos: MCP progress notification", "err", err)
	}
}

// mcpContinue answers continue_run through the continue route of the run's
// workflow, agent or team (POST .../runs/{run_id}/continue, stream=false). The
// call's end cancels the run.
func (s *Server) mcpContinue(ctx context.Context, in continueArgs) (*sdk.CallToolResult, any, error) {
	got, _, err := s.mcpCall(ctx, "GET", "/runs/"+url.PathEscape(in.RunID), nil)
	if err != nil || got.IsError {
		return got, nil, err
	}
	var owner struct {
		WorkflowID string `json:"workflow_id"`
		TeamID     string `json:"team_id"`
		AgentID    string `json:"agent_id"`
	}
	if err := json.Unmarshal([]byte(got.Content[0].(*sdk.TextContent).Text), &owner); err != nil {
		return nil, nil, err
	}
	path := "/agents/" + url.PathEscape(owner.AgentID)
	switch {
	case owner.WorkflowID != "":
		path = "/workflows/" + url.PathEscape(owner.WorkflowID)
	case owner.TeamID != "":
		path = "/teams/" + url.PathEscape(owner.TeamID)
	}
	body, err := json.Marshal(map[string]any{"tools": in.Tools, "step_requirements": in.StepRequirements, "stream": false})
	if err != nil {
		return nil, nil, err
	}
	res, _, err := s.mcpDo(ctx, "POST", path+"/runs/"+url.PathEscape(in.RunID)+"/continue", nil, body)
	if ctx.Err() != nil && err == nil && res.Content[0].(*sdk.TextContent).Text == "" {
		// The call ended before the route answered (a refusal, 409 or 404, has a
		// body): it cancels the run it continued, as it does a run it started,
		// where the route alone would leave it to the stream grace period.
		return nil, nil, s.mcpCancel(in.RunID, ctx)
	}
	return res, nil, err
}

// mcpList answers list_runs through the matching HTTP route.
func (s *Server) mcpList(ctx context.Context, in listArgs) (*sdk.CallToolResult, any, error) {
	q := url.Values{}
	for k, v := range map[string]string{"session_id": in.SessionID, "status": in.Status} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if in.Limit > 0 {
		q.Set("limit", strconv.Itoa(in.Limit))
	}
	switch {
	case in.WorkflowID != "" && in.AgentID != "":
		return nil, nil, errors.New("give workflow_id or agent_id, not both")
	case in.WorkflowID != "":
		return s.mcpCall(ctx, "GET", "/workflows/"+url.PathEscape(in.WorkflowID)+"/runs", q)
	case in.AgentID != "":
		return s.mcpCall(ctx, "GET", "/agents/"+url.PathEscape(in.AgentID)+"/runs", q)
	}
	if in.SessionID == "" {
		return nil, nil, errors.New("give workflow_id, agent_id or session_id")
	}
	q.Del("session_id")
	return s.mcpCall(ctx, "GET", "/sessions/"+url.PathEscape(in.SessionID)+"/runs", q)
}

// mcpCall answers a tool call with what the HTTP API answers the same request: the
// JSON body, a tool error for a status other than 200.
func (s *Server) mcpCall(ctx context.Context, method, path string, q url.Values) (*sdk.CallToolResult, any, error) {
	return s.mcpDo(ctx, method, path, q, nil)
}

// mcpDo is mcpCall with a JSON body (nil for none).
func (s *Server) mcpDo(ctx context.Context, method, path string, q url.Values, body []byte) (*sdk.CallToolResult, any, error) {
	// path holds escaped ids already: a url.URL's String would escape their '%'.
	target := path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	r, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	var w answerBuffer
	s.boundIDs(s.mux).ServeHTTP(&w, r) // ids are bounded as for HTTP clients
	res := &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: w.body.String()}}}
	if w.code != http.StatusOK {
		res.IsError = true
	}
	return res, nil, nil
}

// jsonResult is a tool result holding v as JSON.
func jsonResult(v any) (*sdk.CallToolResult, any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, nil, err
	}
	return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: string(b)}}}, nil, nil
}

// answerBuffer is an http.ResponseWriter that keeps the answer of a route called
// for an MCP tool.
type answerBuffer struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (b *answerBuffer) Header() http.Header {
	if b.h == nil {
		b.h = make(http.Header)
	}
	return b.h
}

func (b *answerBuffer) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (b *answerBuffer) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

// closeMCP ends the MCP sessions (their standalone streams), once no run is left.
func (s *Server) closeMCP() {
	if s.mcpServer == nil {
		return
	}
	for ss := range s.mcpServer.Sessions() {
		ss.Close()
	}
}

// mcpRoutes are the routes of /mcp: the streamable HTTP transport's POST (messages
// to the server), GET (the server's stream of notifications) and DELETE (a
// session's end).
func (s *Server) mcpRoutes() []route {
	h := s.newMCP()
	desc := "The Model Context Protocol (streamable HTTP): a tool per workflow and agent starts a run " +
		"(progress notifications while it streams; the call's cancel cancels the run), and get_run, list_runs " +
		"and cancel_run. Speak it with an MCP client."
	mcpOK := response{code: http.StatusOK, description: "MCP messages (JSON or server-sent events)"}
	var rs []route
	for _, m := range []string{"POST", "GET", "DELETE"} {
		rs = append(rs, route{method: m, pattern: "/mcp", handler: h.ServeHTTP,
			summary: "MCP server (" + m + ")", description: desc, responses: []response{mcpOK}})
	}
	return rs
}
