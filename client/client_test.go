package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kern-dev/kern/client"
	"github.com/kern-dev/kern/run"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hang bounds a wait for something that must happen; only a broken client hits it.
const hang = 30 * time.Second

// request is what a fake server received.
type request struct {
	Method, Path, Query string
	Form                url.Values
	Header              http.Header
}

// fake is an httptest server that records requests and answers each with answer.
type fake struct {
	*httptest.Server
	mu       sync.Mutex // guards received
	received []request
}

func newFake(t *testing.T, answer http.HandlerFunc) *fake {
	t.Helper()
	f := &fake{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rq := request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Header: r.Header.Clone()}
		if r.Method == http.MethodPost {
			r.ParseForm()
			rq.Form = r.PostForm
		}
		f.mu.Lock()
		f.received = append(f.received, rq)
		f.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fake) last(t *testing.T) request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.received) == 0 {
		t.Fatal("no request received")
	}
	return f.received[len(f.received)-1]
}

func (f *fake) client(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(f.URL+"/", f.Client(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func answerJSON(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "ftp://example.com", "127.0.0.1:7777", "http://", "://x"} {
		if _, err := client.New(u, nil); err == nil || !strings.Contains(err.Error(), "is not an http:// or https:// URL") {
			t.Errorf("New(%q): %v, want an error saying it is not an http URL", u, err)
		}
	}
}

// TestRequests checks what each call sends: method, path, query, form, headers.
func TestRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		answer string
		call   func(ctx context.Context, c *client.Client) error
		method string
		path   string
		query  string
		form   url.Values
	}{
		{name: "config", answer: `{"os_id":"kern","replica_id":"A","databases":[],"agents":[{"id":"a1"}],"teams":[],"workflows":[{"id":"w1","name":"W"}],"interfaces":[]}`,
			call: func(ctx context.Context, c *client.Client) error {
				cfg, err := c.Config(ctx)
				if err == nil && (cfg.OSID != "kern" || cfg.ReplicaID != "A" || len(cfg.Workflows) != 1 || cfg.Workflows[0].Name != "W" || cfg.Agents[0].ID != "a1") {
					err = fmt.Errorf("config %+v", cfg)
				}
				return err
			}, method: "GET", path: "/config"},
		{name: "workflows", answer: `[{"id":"w1"},{"id":"w 2"}]`,
			call: func(ctx context.Context, c *client.Client) error {
				ws, err := c.Workflows(ctx)
				if err == nil && (len(ws) != 2 || ws[1].ID != "w 2") {
					err = fmt.Errorf("workflows %+v", ws)
				}
				return err
			}, method: "GET", path: "/workflows"},
		{name: "agents", answer: `[]`,
			call:   func(ctx context.Context, c *client.Client) error { _, err := c.Agents(ctx); return err },
			method: "GET", path: "/agents"},
		{name: "get run", answer: `{"run_id":"r/1","status":"CANCELLED","content":"partial","replica":"B","workflow_id":"w"}`,
			call: func(ctx context.Context, c *client.Client) error {
				r, err := c.GetRun(ctx, "r/1")
				if err == nil && (r.RunID != "r/1" || r.Status != run.StatusCancelled || r.Content != "partial" || r.Replica != "B") {
					err = fmt.Errorf("run %+v", r)
				}
				return err
			}, method: "GET", path: "/runs/r%2F1"},
		{name: "cancel waits", answer: `{"run_id":"r1","status":"CANCELLED"}`,
			call: func(ctx context.Context, c *client.Client) error {
				ans, err := c.CancelRun(ctx, "r1", true)
				if err == nil && (ans.RunID != "r1" || ans.Status != run.StatusCancelled) {
					err = fmt.Errorf("answer %+v", ans)
				}
				return err
			}, method: "POST", path: "/runs/r1/cancel"},
		{name: "cancel without waiting", answer: `{"run_id":"r1","status":"RUNNING"}`,
			call:   func(ctx context.Context, c *client.Client) error { _, err := c.CancelRun(ctx, "r1", false); return err },
			method: "POST", path: "/runs/r1/cancel", query: "wait=false"},
		{name: "component cancel", answer: `{"run_id":"r1","status":"PENDING"}`,
			call: func(ctx context.Context, c *client.Client) error {
				_, err := c.Agent("a1").Cancel(ctx, "r1", false)
				return err
			},
			method: "POST", path: "/agents/a1/runs/r1/cancel", query: "wait=false"},
		{name: "run and wait", answer: `{"run_id":"r1","status":"COMPLETED","content":"done"}`,
			call: func(ctx context.Context, c *client.Client) error {
				r, err := c.Workflow("w1").Run(ctx, client.RunRequest{Message: "hi", UserID: "u1"})
				if err == nil && r.Content != "done" {
					err = fmt.Errorf("run %+v", r)
				}
				return err
			}, method: "POST", path: "/workflows/w1/runs", form: url.Values{"message": {"hi"}, "stream": {"false"}, "user_id": {"u1"}}},
		{name: "background", answer: `{"run_id":"r1","session_id":"s1","status":"PENDING"}`,
			call: func(ctx context.Context, c *client.Client) error {
				a, err := c.Workflow("w1").Start(ctx, client.RunRequest{Message: "hi", SessionID: "s1"})
				if err == nil && (a.RunID != "r1" || a.SessionID != "s1" || a.Status != run.StatusPending) {
					err = fmt.Errorf("accepted %+v", a)
				}
				return err
			}, method: "POST", path: "/workflows/w1/runs",
			form: url.Values{"message": {"hi"}, "stream": {"false"}, "background": {"true"}, "session_id": {"s1"}}},
		{name: "component runs", answer: `[{"run_id":"r1","status":"ERROR"}]`,
			call: func(ctx context.Context, c *client.Client) error {
				rs, err := c.Workflow("w1").Runs(ctx, client.RunQuery{SessionID: "s1", Status: run.StatusError, Limit: 5, Offset: 10})
				if err == nil && (len(rs) != 1 || rs[0].Status != run.StatusError) {
					err = fmt.Errorf("runs %+v", rs)
				}
				return err
			}, method: "GET", path: "/workflows/w1/runs", query: "limit=5&offset=10&session_id=s1&status=ERROR"},
		{name: "component runs, default page", answer: `[]`,
			call: func(ctx context.Context, c *client.Client) error {
				_, err := c.Agent("a1").Runs(ctx, client.RunQuery{})
				return err
			},
			method: "GET", path: "/agents/a1/runs"},
		{name: "component run", answer: `{"run_id":"r1","status":"RUNNING"}`,
			call: func(ctx context.Context, c *client.Client) error {
				_, err := c.Workflow("w1").GetRun(ctx, "r1")
				return err
			},
			method: "GET", path: "/workflows/w1/runs/r1"},
		{name: "every run", answer: `[]`,
			call: func(ctx context.Context, c *client.Client) error {
				_, err := c.Runs(ctx, client.RunQuery{SessionID: "s1", Status: run.StatusPaused, Limit: 3})
				return err
			}, method: "GET", path: "/runs", query: "limit=3&session_id=s1&status=PAUSED"},
		{name: "session runs", answer: `[]`,
			call: func(ctx context.Context, c *client.Client) error {
				_, err := c.SessionRuns(ctx, "s1", client.RunQuery{SessionID: "ignored", Limit: 3})
				return err
			}, method: "GET", path: "/sessions/s1/runs", query: "limit=3"},
		{name: "session run", answer: `{"run_id":"r1","status":"COMPLETED"}`,
			call:   func(ctx context.Context, c *client.Client) error { _, err := c.SessionRun(ctx, "s1", "r1"); return err },
			method: "GET", path: "/sessions/s1/runs/r1"},
		{name: "health", answer: `{"status":"ok"}`,
			call:   func(ctx context.Context, c *client.Client) error { return c.Health(ctx) },
			method: "GET", path: "/health"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, answerJSON(tt.answer))
			c := f.client(t, client.WithSecurityKey("s3cret"))
			if err := tt.call(t.Context(), c); err != nil {
				t.Fatal(err)
			}
			got := f.last(t)
			if got.Method != tt.method || got.Path != tt.path || got.Query != tt.query {
				t.Errorf("sent %s %s?%s, want %s %s?%s", got.Method, got.Path, got.Query, tt.method, tt.path, tt.query)
			}
			if auth := got.Header.Get("Authorization"); auth != "Bearer s3cret" {
				t.Errorf("Authorization %q, want the Bearer key", auth)
			}
			if tt.form != nil {
				if ct := got.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
					t.Errorf("Content-Type %q, want a form", ct)
				}
				if got.Form.Encode() != tt.form.Encode() {
					t.Errorf("form %q, want %q", got.Form.Encode(), tt.form.Encode())
				}
			}
		})
	}
}

func TestNoKeyNoAuthorization(t *testing.T) {
	t.Parallel()
	f := newFake(t, answerJSON(`{"status":"ok"}`))
	if err := f.client(t).Health(t.Context()); err != nil {
		t.Fatal(err)
	}
	if auth := f.last(t).Header.Get("Authorization"); auth != "" {
		t.Errorf("Authorization %q sent without a key", auth)
	}
}

// TestErrors checks that answers other than 2xx become *client.Error, and that other
// failures do not.
func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		code       int
		body       string
		detail     string
		retryAfter string // the Retry-After header
		wait       time.Duration
	}{
		{"JSON detail", http.StatusNotFound, `{"detail":"run \"x\" not found"}`, `run "x" not found`, "", 0},
		{"unprocessable", http.StatusUnprocessableEntity, `{"detail":"unknown status \"DONE\""}`, `unknown status "DONE"`, "", 0},
		{"plain text", http.StatusBadGateway, "upstream\n  down\n", "upstream down", "", 0},
		{"empty", http.StatusServiceUnavailable, "", "", "", 0},
		{"busy", http.StatusServiceUnavailable, `{"detail":"server is busy"}`, "server is busy", "2", 2 * time.Second},
		{"queue full", http.StatusTooManyRequests, `{"detail":"queue full"}`, "queue full", " 30 ", 30 * time.Second},
		{"retry at a past date", http.StatusServiceUnavailable, `{"detail":"busy"}`, "busy", "Wed, 21 Oct 2015 07:28:00 GMT", 0},
		{"malformed Retry-After", http.StatusServiceUnavailable, `{"detail":"busy"}`, "busy", "soon", 0},
		{"negative Retry-After", http.StatusServiceUnavailable, `{"detail":"busy"}`, "busy", "-5", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.code)
				io.WriteString(w, tt.body)
			})
			_, err := f.client(t).GetRun(t.Context(), "x")
			ce, ok := errors.AsType[*client.Error](err)
			if !ok || ce.StatusCode != tt.code || ce.Detail != tt.detail || ce.Method != "GET" || ce.Path != "/runs/x" ||
				ce.RetryAfter != tt.wait {
				t.Fatalf("error %#v (%v), want *client.Error %d %q, retry after %v", ce, err, tt.code, tt.detail, tt.wait)
			}
			if tt.wait > 0 && !strings.Contains(err.Error(), "retry after "+tt.wait.String()) {
				t.Errorf("message %q lacks when to retry", err)
			}
			if !strings.Contains(err.Error(), tt.detail) || !strings.Contains(err.Error(), fmt.Sprint(tt.code)) {
				t.Errorf("message %q lacks the status or the detail", err)
			}
			// A stream's failure to start is the same error.
			for _, err := range f.client(t).Workflow("w").Stream(t.Context(), client.RunRequest{Message: "hi"}) {
				if ce, ok := errors.AsType[*client.Error](err); !ok || ce.StatusCode != tt.code {
					t.Errorf("stream: %v, want *client.Error %d", err, tt.code)
				}
			}
		})
	}

	t.Run("malformed answer", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, answerJSON(`{"run_id":`))
		_, err := f.client(t).GetRun(t.Context(), "x")
		if err == nil || !strings.Contains(err.Error(), "malformed answer") {
			t.Errorf("error %v, want a malformed answer", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, answerJSON(`{}`))
		c := f.client(t)
		f.Close()
		_, err := c.CancelRun(t.Context(), "x", true)
		if _, ok := errors.AsType[*client.Error](err); ok || err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("error %v, want a connection error, not *client.Error", err)
		}
	})
}

// sseServer answers every request with body as an event stream.
func sseServer(t *testing.T, body string) *fake {
	return newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, body)
	})
}

// frame is one event as kern sends it.
func frame(name string, id int, data string) string {
	return fmt.Sprintf("event: %s\nid: %d\ndata: %s\n\n", name, id, data)
}

// collect ranges over a stream and returns its events and its error.
func collect(seq func(func(*run.Event, error) bool)) ([]*run.Event, error) {
	var evs []*run.Event
	for ev, err := range seq {
		if err != nil {
			return evs, err
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// brief lists events as "index:type:run".
func brief(evs []*run.Event) []string {
	var s []string
	for _, ev := range evs {
		s = append(s, fmt.Sprintf("%d:%s:%s", ev.EventIndex, ev.Event, ev.RunID))
	}
	return s
}

// TestStreamFraming reads streams framed in the ways the SSE format allows, and
// malformed ones.
func TestStreamFraming(t *testing.T) {
	t.Parallel()
	started := frame("WorkflowStarted", 0, `{"event":"WorkflowStarted","run_id":"w1","created_at":1,"event_index":0,"workflow_id":"wf"}`)
	nestedEnd := frame("RunCompleted", 1, `{"event":"RunCompleted","run_id":"a1","created_at":1,"event_index":1,"workflow_run_id":"w1"}`)
	end := frame("WorkflowCompleted", 2, `{"event":"WorkflowCompleted","run_id":"w1","created_at":1,"event_index":2}`)
	tests := []struct {
		name    string
		body    string
		want    []string
		wantErr error  // errors.Is
		errText string // and in its message
	}{
		{name: "whole run", body: started + nestedEnd + end,
			want: []string{"0:WorkflowStarted:w1", "1:RunCompleted:a1", "2:WorkflowCompleted:w1"}},
		{name: "heartbeats and unknown fields skipped", body: ": ping\n\n" + started + ": ping\n\nretry: 10\n\n" + end,
			want: []string{"0:WorkflowStarted:w1", "2:WorkflowCompleted:w1"}},
		{name: "CRLF line ends", body: strings.ReplaceAll(started+end, "\n", "\r\n"),
			want: []string{"0:WorkflowStarted:w1", "2:WorkflowCompleted:w1"}},
		{name: "id gives the index", body: "event: WorkflowStarted\nid: 7\ndata: {\"event\":\"WorkflowStarted\",\"run_id\":\"w1\"}\n\n" + end,
			want: []string{"7:WorkflowStarted:w1", "2:WorkflowCompleted:w1"}},
		{name: "no id, no event line", body: "data: {\"event\":\"WorkflowStarted\",\"run_id\":\"w1\",\"event_index\":0}\n\n" + end,
			want: []string{"0:WorkflowStarted:w1", "2:WorkflowCompleted:w1"}},
		{name: "data over several lines", body: "event: WorkflowStarted\nid: 0\ndata: {\"event\":\"WorkflowStarted\",\ndata: \"run_id\":\"w1\"}\n\n" + end,
			want: []string{"0:WorkflowStarted:w1", "2:WorkflowCompleted:w1"}},
		{name: "an event without data is none", body: "event: RunContent\nid: 5\n\n" + started + end,
			want: []string{"0:WorkflowStarted:w1", "2:WorkflowCompleted:w1"}},
		{name: "ends at the run's terminal event", body: started + end + frame("WorkflowStarted", 3, `{"event":"WorkflowStarted","run_id":"w2"}`),
			want: []string{"0:WorkflowStarted:w1", "2:WorkflowCompleted:w1"}},
		{name: "ends before the terminal event", body: started + nestedEnd,
			want: []string{"0:WorkflowStarted:w1", "1:RunCompleted:a1"}, wantErr: io.ErrUnexpectedEOF, errText: "ended before"},
		{name: "cut inside an event", body: started + "event: RunContent\nid: 1\n",
			want: []string{"0:WorkflowStarted:w1"}, wantErr: io.ErrUnexpectedEOF},
		{name: "cut inside a line", body: started + "data: {\"event\"",
			want: []string{"0:WorkflowStarted:w1"}, wantErr: io.ErrUnexpectedEOF},
		{name: "empty stream", body: "", wantErr: io.ErrUnexpectedEOF},
		{name: "data not JSON", body: started + frame("RunContent", 1, `{"event":"RunContent",`),
			want: []string{"0:WorkflowStarted:w1"}, wantErr: client.ErrMalformed, errText: "#1 (RunContent)"},
		{name: "id not an index", body: "event: WorkflowStarted\nid: x1\ndata: {\"event\":\"WorkflowStarted\",\"run_id\":\"w1\"}\n\n",
			wantErr: client.ErrMalformed, errText: `id "x1"`},
		{name: "id and event_index disagree", body: "event: WorkflowStarted\nid: 4\ndata: {\"event\":\"WorkflowStarted\",\"run_id\":\"w1\",\"event_index\":3}\n\n",
			wantErr: client.ErrMalformed, errText: "event_index 3"},
		{name: "event line and data disagree", body: frame("RunContent", 0, `{"event":"WorkflowStarted","run_id":"w1"}`),
			wantErr: client.ErrMalformed, errText: "RunContent"},
		{name: "no event type", body: "data: {\"run_id\":\"w1\"}\n\n", wantErr: client.ErrMalformed},
		{name: "line over the limit", body: started + "data: " + strings.Repeat("x", client.MaxEventSize+10) + "\n\n",
			want: []string{"0:WorkflowStarted:w1"}, wantErr: client.ErrTooLarge},
		{name: "event over the limit", body: started + strings.Repeat("data: "+strings.Repeat("x", 1<<20)+"\n", 17) + "\n",
			want: []string{"0:WorkflowStarted:w1"}, wantErr: client.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := sseServer(t, tt.body)
			evs, err := collect(f.client(t).Workflow("wf").Stream(t.Context(), client.RunRequest{Message: "hi"}))
			if got := brief(evs); !slices.Equal(got, tt.want) {
				t.Errorf("events %q, want %q", got, tt.want)
			}
			if (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("error %q does not say %q", err, tt.errText)
			}
		})
	}
}

func TestStreamNotAnEventStream(t *testing.T) {
	t.Parallel()
	f := newFake(t, answerJSON(`{"run_id":"r1"}`))
	_, err := collect(f.client(t).Workflow("wf").Stream(t.Context(), client.RunRequest{Message: "hi"}))
	if err == nil || !strings.Contains(err.Error(), "not an event stream") {
		t.Errorf("error %v, want one saying the answer is not an event stream", err)
	}
}

// TestStreamRequests checks what a stream, a resume and a reconnect send.
func TestStreamRequests(t *testing.T) {
	t.Parallel()
	body := frame("WorkflowCompleted", 4, `{"event":"WorkflowCompleted","run_id":"r1","event_index":4}`)
	f := sseServer(t, body)
	c := f.client(t, client.WithSecurityKey("k"))
	wf := c.Workflow("w1")
	tests := []struct {
		name                string
		seq                 func(func(*run.Event, error) bool)
		method, path        string
		form                url.Values
		lastEventID, accept string
	}{
		{"stream", wf.Stream(t.Context(), client.RunRequest{Message: "hi", SessionID: "s1", UserID: "u1"}), "POST", "/workflows/w1/runs",
			url.Values{"message": {"hi"}, "stream": {"true"}, "session_id": {"s1"}, "user_id": {"u1"}}, "", "text/event-stream"},
		{"resume", wf.Resume(t.Context(), "r1", -1), "POST", "/workflows/w1/runs/r1/resume",
			url.Values{"last_event_index": {"-1"}}, "", "text/event-stream"},
		{"reconnect", c.Agent("a1").Reconnect(t.Context(), "r1", 3), "GET", "/agents/a1/runs/r1/resume", nil, "3", "text/event-stream"},
	}
	for _, tt := range tests {
		evs, err := collect(tt.seq)
		if err != nil || len(evs) != 1 {
			t.Fatalf("%s: %v, %d events", tt.name, err, len(evs))
		}
		got := f.last(t)
		if got.Method != tt.method || got.Path != tt.path || got.Form.Encode() != tt.form.Encode() ||
			got.Header.Get("Last-Event-ID") != tt.lastEventID || got.Header.Get("Accept") != tt.accept ||
			got.Header.Get("Authorization") != "Bearer k" {
			t.Errorf("%s: sent %+v", tt.name, got)
		}
	}
}

// blockingServer sends one event, then holds the stream open until the client
// goes; gone is closed then.
func blockingServer(t *testing.T) (f *fake, gone chan struct{}) {
	gone = make(chan struct{})
	var once sync.Once
	f = newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, frame("WorkflowStarted", 0, `{"event":"WorkflowStarted","run_id":"w1"}`))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		once.Do(func() { close(gone) })
	})
	return f, gone
}

func waitClosed(t *testing.T, gone <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-gone:
	case <-time.After(hang):
		t.Fatalf("the server did not see the client go after %s", what)
	}
}

// TestBreakClosesTheStream: breaking out of the loop closes the connection at once.
func TestBreakClosesTheStream(t *testing.T) {
	t.Parallel()
	f, gone := blockingServer(t)
	n := 0
	for _, err := range f.client(t).Workflow("wf").Stream(t.Context(), client.RunRequest{Message: "hi"}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		break
	}
	if n != 1 {
		t.Fatalf("%d events before the break", n)
	}
	waitClosed(t, gone, "a break")
}

// TestCancelClosesTheStream: cancelling ctx while the stream waits for an event
// ends the loop with the context's error and closes the connection.
func TestCancelClosesTheStream(t *testing.T) {
	t.Parallel()
	f, gone := blockingServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var evs []*run.Event
	var err error
	for ev, e := range f.client(t).Workflow("wf").Stream(ctx, client.RunRequest{Message: "hi"}) {
		if e != nil {
			err = e
			continue
		}
		evs = append(evs, ev)
		cancel() // the next read blocks until the cancel ends it
	}
	if len(evs) != 1 || !errors.Is(err, context.Canceled) {
		t.Fatalf("%d events, error %v; want 1 and context.Canceled", len(evs), err)
	}
	waitClosed(t, gone, "a cancel")
}

// TestRetryAfterDate: a Retry-After given as a date in the future is the time
// left until it.
func TestRetryAfterDate(t *testing.T) {
	t.Parallel()
	at := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", at)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	_, err := f.client(t).GetRun(t.Context(), "x")
	ce, ok := errors.AsType[*client.Error](err)
	if !ok || ce.RetryAfter <= 58*time.Minute || ce.RetryAfter > time.Hour {
		t.Fatalf("error %v, want RetryAfter about an hour", err)
	}
}
