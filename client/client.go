// Package client is a Go client for kern's HTTP API, the one `kern serve` answers
// and that is compatible with Agno's AgentOS: health, configuration, the workflows
// and agents a server offers, and their runs — started streamed, waited for or in
// the background, their events read as typed run.Event values, resumed from an
// event index, cancelled, read back and listed.
//
// A Client is safe for concurrent use. Errors the server answers (a status other
// than 2xx) are *Error values, carrying the status code and the server's detail.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kern-dev/kern/run"
)

// Client talks to one kern server.
type Client struct {
	base string // the server's URL, without a trailing slash
	key  string // the security key, sent as a Bearer token; "" for none
	http *http.Client
	// userAgent is every request's User-Agent; "" leaves Go's.
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// UserAgentCLI begins the User-Agent of kern's command line (see
// WithUserAgent): a server tells its cancels from other clients' by it.
const UserAgentCLI = "kern-cli"

// WithUserAgent sends ua as every request's User-Agent.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// WithSecurityKey sends key as a Bearer token with every request, as a server
// started with a security key requires on every route but /health.
func WithSecurityKey(key string) Option {
	return func(c *Client) { c.key = key }
}

// New returns a client of the kern server at baseURL (http:// or https://, maybe
// with a path prefix), sending its requests through hc; a nil hc means a client of
// its own on http.DefaultTransport. Cancel a request's context to stop it: the
// client sets no timeout of its own, since a run's stream lasts as long as the run.
func New(baseURL string, hc *http.Client, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: %q is not an http:// or https:// URL", baseURL)
	}
	if hc == nil {
		hc = &http.Client{}
	}
	c := &Client{base: strings.TrimSuffix(baseURL, "/"), http: hc}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// BaseURL returns the server's URL, without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// Error is an answer of the server with a status other than 2xx.
type Error struct {
	Method     string // the request's method
	Path       string // the request's path and query
	StatusCode int    // the answer's status code
	// Detail is the server's explanation: the "detail" of its JSON answer, else the
	// start of its body.
	Detail string
	// RetryAfter is how long the server asks the client to wait before it tries
	// again (its Retry-After header, in seconds or as a date), 0 when it does not
	// say: a busy server's 503 (kern serve --max-runs, --max-streams) and a full
	// background queue's 429 do.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("client: %s %s: %d %s: %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode), e.Detail)
	if e.RetryAfter > 0 {
		msg += " (retry after " + e.RetryAfter.String() + ")"
	}
	return msg
}

// retryAfter reads a Retry-After header (RFC 9110 section 10.2.3): a number of
// seconds or an HTTP date; 0 when it is absent, malformed or past.
func retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 || n > int64(math.MaxInt64/time.Second) {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// maxJSONBody bounds a JSON answer (a run listing of thousands of runs fits).
const maxJSONBody = 64 << 20

// newError reads an error answer into an *Error and closes its body.
func newError(resp *http.Response, method, path string) *Error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var ans struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(b, &ans) != nil || ans.Detail == "" {
		ans.Detail = strings.Join(strings.Fields(string(b)), " ")
		if r := []rune(ans.Detail); len(r) > 200 {
			ans.Detail = string(r[:200]) + "..."
		}
	}
	return &Error{Method: method, Path: path, StatusCode: resp.StatusCode, Detail: ans.Detail,
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
}

// send sends a request with a form body (none when form is nil) and returns the
// answer when its status is 2xx; otherwise an *Error. header adds headers.
func (c *Client) send(ctx context.Context, method, path string, form url.Values, header http.Header) (*http.Response, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		} else if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // its message repeats the method and the whole URL
		}
		return nil, fmt.Errorf("client: %s %s on %s: %w", method, path, c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, newError(resp, method, path)
	}
	return resp, nil
}

// call sends a request and decodes its JSON answer into v.
func (c *Client) call(ctx context.Context, method, path string, form url.Values, v any) error {
	resp, err := c.send(ctx, method, path, form, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJSONBody)).Decode(v); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("client: %s %s: malformed answer: %w", method, path, err)
	}
	return nil
}

// Health checks that the server answers (GET /health), without the security key.
func (c *Client) Health(ctx context.Context) error {
	var ans struct {
		Status string `json:"status"`
	}
	if err := c.call(ctx, http.MethodGet, "/health", nil, &ans); err != nil {
		return err
	}
	if ans.Status != "ok" {
		return fmt.Errorf("client: GET /health: status %q, want \"ok\"", ans.Status)
	}
	return nil
}

// Config is what a server offers (GET /config).
type Config struct {
	OSID string `json:"os_id"`
	// ReplicaID names the server among the replicas sharing its database (kern's
	// addition).
	ReplicaID  string            `json:"replica_id,omitempty"`
	Databases  []string          `json:"databases"`
	Agents     []Summary         `json:"agents"`
	Teams      []Summary         `json:"teams"`
	Workflows  []Summary         `json:"workflows"`
	Interfaces []json.RawMessage `json:"interfaces"`
}

// Summary is a workflow or an agent in a listing.
type Summary struct {
	ID          string `json:"id"`
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
}

// Config returns what the server offers.
func (c *Client) Config(ctx context.Context) (*Config, error) {
	var cfg Config
	if err := c.call(ctx, http.MethodGet, "/config", nil, &cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Workflows lists the server's workflows (GET /workflows).
func (c *Client) Workflows(ctx context.Context) ([]Summary, error) {
	var s []Summary
	return s, c.call(ctx, http.MethodGet, "/workflows", nil, &s)
}

// Agents lists the server's agents (GET /agents).
func (c *Client) Agents(ctx context.Context) ([]Summary, error) {
	var s []Summary
	return s, c.call(ctx, http.MethodGet, "/agents", nil, &s)
}

// Run is a run as the server answers it: its output so far (its status; for a
// cancelled run, what it had produced), and the replica that executes or executed
// it.
type Run struct {
	run.Output
	Replica string `json:"replica,omitempty"`
}

// UnmarshalJSON reads a run answer, whose content is a JSON value rather than a
// string for a structured output: Content is then its compact JSON.
func (r *Run) UnmarshalJSON(b []byte) error {
	type plain Run // without this method
	var w struct {
		*plain
		Content json.RawMessage `json:"content"`
	}
	w.plain = (*plain)(r)
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if len(w.Content) == 0 || w.Content[0] == '"' || string(w.Content) == "null" {
		r.Content = ""
		if len(w.Content) > 0 {
			return json.Unmarshal(w.Content, &r.Content)
		}
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, w.Content); err != nil {
		return err
	}
	r.Content = buf.String()
	if r.ContentType == "" {
		r.ContentType = run.ContentTypeJSON
	}
	return nil
}

// GetRun returns a run of any workflow or agent (GET /runs/{run_id}). A run the
// server does not know is an *Error with StatusCode 404.
func (c *Client) GetRun(ctx context.Context, runID string) (*Run, error) {
	var r Run
	if err := c.call(ctx, http.MethodGet, "/runs/"+url.PathEscape(runID), nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Cancelled is a cancel's answer: the run's status once the cancel was kept (and,
// when the cancel waited, once the run ended). A run the server does not know yet
// is PENDING: the cancel is kept for it, should it start.
type Cancelled struct {
	RunID  string     `json:"run_id"`
	Status run.Status `json:"status"`
	// Known is false when the server knew no run with this id: the cancel is kept
	// as an intent (Status PENDING) for a run that may still start.
	Known bool `json:"known"`
}

// CancelRun cancels a run of any workflow or agent (POST /runs/{run_id}/cancel).
// With wait, the answer comes once the run has ended, with its final status;
// without, once the cancel is kept.
func (c *Client) CancelRun(ctx context.Context, runID string, wait bool) (*Cancelled, error) {
	return c.cancel(ctx, "/runs/"+url.PathEscape(runID)+"/cancel", wait)
}

func (c *Client) cancel(ctx context.Context, path string, wait bool) (*Cancelled, error) {
	if !wait {
		path += "?wait=false"
	}
	var ans Cancelled
	if err := c.call(ctx, http.MethodPost, path, nil, &ans); err != nil {
		return nil, err
	}
	return &ans, nil
}

// RunQuery selects runs in a listing. Its zero value lists the server's default
// page (100 runs), newest first.
type RunQuery struct {
	SessionID string     // only the runs of this session (Runs and component listings)
	Status    run.Status // only the runs with this status
	Limit     int        // at most this many runs; 0: the server's default
	Offset    int        // skip this many runs
}

func (q RunQuery) encode() string {
	v := url.Values{}
	if q.SessionID != "" {
		v.Set("session_id", q.SessionID)
	}
	if q.Status != "" {
		v.Set("status", string(q.Status))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Offset > 0 {
		v.Set("offset", strconv.Itoa(q.Offset))
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// Runs lists the runs of every workflow, agent and team the server's database
// holds (GET /runs), newest first, filtered and paged on the server.
func (c *Client) Runs(ctx context.Context, q RunQuery) ([]*Run, error) {
	var rs []*Run
	return rs, c.call(ctx, http.MethodGet, "/runs"+q.encode(), nil, &rs)
}

// SessionRuns lists a session's runs, newest first (GET
// /sessions/{session_id}/runs); q.SessionID is ignored.
func (c *Client) SessionRuns(ctx context.Context, sessionID string, q RunQuery) ([]*Run, error) {
	q.SessionID = ""
	var rs []*Run
	return rs, c.call(ctx, http.MethodGet, "/sessions/"+url.PathEscape(sessionID)+"/runs"+q.encode(), nil, &rs)
}

// SessionRun returns a run of a session (GET /sessions/{session_id}/runs/{run_id}),
// as Agno's client reads runs back.
func (c *Client) SessionRun(ctx context.Context, sessionID, runID string) (*Run, error) {
	var r Run
	path := "/sessions/" + url.PathEscape(sessionID) + "/runs/" + url.PathEscape(runID)
	if err := c.call(ctx, http.MethodGet, path, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
