package client

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"strconv"

	"github.com/kern-dev/kern/run"
)

// Component is a workflow, an agent or a team of the server, by id: what its
// routes (/workflows/{id}/..., /agents/{id}/... or /teams/{id}/...) do. Get one
// with Client.Workflow, Client.Agent or Client.Team; it is a small value, safe for
// concurrent use.
type Component struct {
	c    *Client
	base string // "/workflows/{id}", "/agents/{id}" or "/teams/{id}", escaped
}

// Workflow returns the server's workflow with the given id. The server is not
// asked: an unknown id shows as an *Error with StatusCode 404 on first use.
func (c *Client) Workflow(id string) Component {
	return Component{c: c, base: "/workflows/" + url.PathEscape(id)}
}

// Agent returns the server's agent with the given id, as Workflow does.
func (c *Client) Agent(id string) Component {
	return Component{c: c, base: "/agents/" + url.PathEscape(id)}
}

// Team returns the server's team with the given id, as Workflow does.
func (c *Client) Team(id string) Component {
	return Component{c: c, base: "/teams/" + url.PathEscape(id)}
}

// RunRequest is what a run is started with, sent as a form as Agno's client sends
// it.
type RunRequest struct {
	Message   string
	SessionID string // the session the run belongs to; "" for a new session
	UserID    string
}

func (r RunRequest) form(stream, background bool) url.Values {
	f := url.Values{"message": {r.Message}, "stream": {strconv.FormatBool(stream)}}
	if background {
		f.Set("background", "true")
	}
	if r.SessionID != "" {
		f.Set("session_id", r.SessionID)
	}
	if r.UserID != "" {
		f.Set("user_id", r.UserID)
	}
	return f
}

// Stream starts a run (stream=true) and yields its events as the server sends
// them, the events of runs nested in it included, and ends after the run's
// terminal event. Each loop over the iterator starts a run.
//
// The error is not nil when the run could not start (an *Error), the stream broke,
// an event could not be read (ErrMalformed, ErrTooLarge), the stream ended before
// the run's terminal event (io.ErrUnexpectedEOF), or ctx was cancelled; the loop
// ends after it. Breaking out of the loop, or cancelling ctx, closes the stream at
// once; the server then cancels the run after its grace period unless the stream is
// resumed by then.
func (c Component) Stream(ctx context.Context, req RunRequest) iter.Seq2[*run.Event, error] {
	return c.c.events(ctx, http.MethodPost, c.base+"/runs", req.form(true, false), nil, "")
}

// Run starts a run and waits for its end (stream=false), returning its output.
func (c Component) Run(ctx context.Context, req RunRequest) (*Run, error) {
	var r Run
	if err := c.c.call(ctx, http.MethodPost, c.base+"/runs", req.form(false, false), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Accepted is a background run's answer: the run is queued.
type Accepted struct {
	RunID     string     `json:"run_id"`
	SessionID string     `json:"session_id"`
	Status    run.Status `json:"status"` // PENDING
}

// Start queues a background run (background=true) and returns once the server has
// kept it. Follow its events with Resume.
func (c Component) Start(ctx context.Context, req RunRequest) (*Accepted, error) {
	var a Accepted
	if err := c.c.call(ctx, http.MethodPost, c.base+"/runs", req.form(false, true), &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Resume yields the events of run runID after the event at index after (-1: from
// the first), through POST .../runs/{run_id}/resume with last_event_index, as
// Agno's client resumes: stored events first, then live ones until the run's
// terminal event. It behaves as Stream does; a run that had ended with the event
// at index after yields io.ErrUnexpectedEOF, since no terminal event follows.
func (c Component) Resume(ctx context.Context, runID string, after int) iter.Seq2[*run.Event, error] {
	form := url.Values{"last_event_index": {strconv.Itoa(after)}}
	return c.c.events(ctx, http.MethodPost, c.base+"/runs/"+url.PathEscape(runID)+"/resume", form, nil, runID)
}

// Reconnect is Resume as a browser's EventSource reconnects: GET
// .../runs/{run_id}/resume with the Last-Event-ID header set to lastEventID, the
// index of the last event received.
func (c Component) Reconnect(ctx context.Context, runID string, lastEventID int) iter.Seq2[*run.Event, error] {
	h := http.Header{"Last-Event-Id": {strconv.Itoa(lastEventID)}}
	return c.c.events(ctx, http.MethodGet, c.base+"/runs/"+url.PathEscape(runID)+"/resume", nil, h, runID)
}

// Cancel cancels a run of the component (POST .../runs/{run_id}/cancel), as
// Client.CancelRun does.
func (c Component) Cancel(ctx context.Context, runID string, wait bool) (*Cancelled, error) {
	return c.c.cancel(ctx, c.base+"/runs/"+url.PathEscape(runID)+"/cancel", wait)
}

// GetRun returns a run of the component (GET .../runs/{run_id}); a run of another
// component is an *Error with StatusCode 404.
func (c Component) GetRun(ctx context.Context, runID string) (*Run, error) {
	var r Run
	if err := c.c.call(ctx, http.MethodGet, c.base+"/runs/"+url.PathEscape(runID), nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Runs lists the component's runs, newest first, as q selects them (GET .../runs).
func (c Component) Runs(ctx context.Context, q RunQuery) ([]*Run, error) {
	var rs []*Run
	return rs, c.c.call(ctx, http.MethodGet, c.base+"/runs"+q.encode(), nil, &rs)
}
