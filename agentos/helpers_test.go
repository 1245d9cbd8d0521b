package agentos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/client"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/workflow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a server under test on a loopback port, with a SQLite store.
type env struct {
	t      *testing.T
	srv    *Server
	ts     *httptest.Server
	store  store.Store
	client *http.Client
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// newEnv starts a server for cfg; a nil Store gets a SQLite one with a recorder.
func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	return startEnv(t, cfg, (*httptest.Server).Start)
}

// newEnvH2 is newEnv over HTTP/2 (TLS): no connection can be taken over there,
// and streams are served by their handlers.
func newEnvH2(t *testing.T, cfg Config) *env {
	t.Helper()
	return startEnv(t, cfg, func(ts *httptest.Server) {
		ts.EnableHTTP2 = true
		ts.StartTLS()
	})
}

// startEnv is newEnv, its test server started by start.
func startEnv(t *testing.T, cfg Config, start func(*httptest.Server)) *env {
	t.Helper()
	e := &env{t: t}
	var rec *store.Recorder
	if cfg.Store == nil {
		e.store = openStore(t)
		rec = store.NewRecorder(e.store, store.RecorderOptions{})
		cfg.Store, cfg.Recorder = e.store, rec
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.ts = httptest.NewUnstartedServer(srv.Handler())
	start(e.ts)
	e.client = e.ts.Client()
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // cancel what still runs at once
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		e.client.CloseIdleConnections()
		e.ts.Close()
		if rec != nil {
			rec.Close()
		}
		if e.store != nil {
			e.store.Close()
		}
	})
	return e
}

func (e *env) url(path string) string { return e.ts.URL + path }

// do sends a request and returns the status and the decoded JSON body.
func (e *env) do(method, path, contentType, body string, header ...string) (int, map[string]any) {
	e.t.Helper()
	code, v, err := e.try(method, path, contentType, body, header...)
	if err != nil {
		e.t.Fatal(err)
	}
	return code, v
}

// try is do with its failure returned, for a goroutine other than the test's,
// which must not call t.Fatal.
func (e *env) try(method, path, contentType, body string, header ...string) (int, map[string]any, error) {
	req, err := http.NewRequest(method, e.url(path), strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(b, &v); err != nil {
			var list []any
			if json.Unmarshal(b, &list) == nil {
				return resp.StatusCode, map[string]any{"list": list}, nil
			}
			return 0, nil, fmt.Errorf("%s %s: %d, body not JSON: %q", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, v, nil
}

func form(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode()
}

const formType = "application/x-www-form-urlencoded"

// frame is one SSE event as read off the wire.
type frame struct {
	event string
	id    int
	data  string
	ev    run.Event
}

// sseStream reads an SSE response, checking each frame's exact framing; or, made
// by clientStream, a run's events as the client package reads them.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
	pull   func() (*run.Event, error, bool) // the client's events, instead of r
	stop   func()                           // stops pull
}

// openStream sends a request whose answer is an SSE stream.
func (e *env) openStream(method, path, contentType, body string, header ...string) *sseStream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, method, e.url(path), strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		e.t.Fatalf("%s %s: %d %s: %s", method, path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	s := &sseStream{t: e.t, resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}
	e.t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() {
	s.cancel()
	if s.pull != nil {
		s.stop()
		return
	}
	s.resp.Body.Close()
}

// clientStream reads the events open yields through the client package, as a
// program would, for tests of what a stream carries rather than of its wire
// format (openStream checks that): its frames have no data, and it ends at the
// run's terminal event.
func clientStream(t *testing.T, open func(context.Context) iter.Seq2[*run.Event, error]) *sseStream {
	ctx, cancel := context.WithCancel(context.Background())
	pull, stop := iter.Pull2(open(ctx))
	s := &sseStream{t: t, cancel: cancel, pull: pull, stop: stop}
	t.Cleanup(s.close)
	return s
}

// kernClient returns a client of e's server.
func (e *env) kernClient() *client.Client {
	e.t.Helper()
	c, err := client.New(e.ts.URL, e.client)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// resumeWorkflow reads a workflow run's whole stream, from its first event,
// through the client package (see clientStream).
func (e *env) resumeWorkflow(workflowID, runID string) *sseStream {
	e.t.Helper()
	wf := e.kernClient().Workflow(workflowID)
	return clientStream(e.t, func(ctx context.Context) iter.Seq2[*run.Event, error] {
		return wf.Resume(ctx, runID, -1)
	})
}

// next returns the next event, or ok false at the end of the stream.
func (s *sseStream) next() (f frame, ok bool) {
	s.t.Helper()
	if s.pull != nil {
		ev, err, ok := s.pull()
		if !ok {
			return f, false
		}
		if err != nil {
			s.t.Fatalf("read stream: %v", err)
		}
		return frame{event: string(ev.Event), id: ev.EventIndex, ev: *ev}, true
	}
	var lines []string
	for {
		line, err := s.r.ReadString('\n')
		if err == io.EOF && line == "" && len(lines) == 0 {
			return f, false
		}
		if err != nil {
			s.t.Fatalf("read stream: %v (after %q)", err, lines)
		}
		if line == "\n" {
			if len(lines) == 0 {
				continue
			}
			break
		}
		if strings.HasPrefix(line, ":") {
			continue // a comment: the heartbeat
		}
		lines = append(lines, strings.TrimSuffix(line, "\n"))
	}
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "event: ") || !strings.HasPrefix(lines[1], "id: ") ||
		!strings.HasPrefix(lines[2], "data: ") {
		s.t.Fatalf("frame not event/id/data: %q", lines)
	}
	f.event = strings.TrimPrefix(lines[0], "event: ")
	id, err := strconv.Atoi(strings.TrimPrefix(lines[1], "id: "))
	if err != nil {
		s.t.Fatalf("id line %q", lines[1])
	}
	f.id, f.data = id, strings.TrimPrefix(lines[2], "data: ")
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(f.data)); err != nil || compact.String() != f.data {
		s.t.Fatalf("data not compact JSON: %q (%v)", f.data, err)
	}
	if err := json.Unmarshal([]byte(f.data), &f.ev); err != nil {
		s.t.Fatal(err)
	}
	if string(f.ev.Event) != f.event || f.ev.EventIndex != f.id {
		s.t.Fatalf("frame event %q id %d, data event %q index %d", f.event, f.id, f.ev.Event, f.ev.EventIndex)
	}
	return f, true
}

// until reads events up to and including the first of type t.
func (s *sseStream) until(t run.EventType) []frame {
	s.t.Helper()
	var fs []frame
	for {
		f, ok := s.next()
		if !ok {
			s.t.Fatalf("stream ended before %s; read %v", t, events(fs))
		}
		fs = append(fs, f)
		if f.ev.Event == t {
			return fs
		}
	}
}

// rest reads the stream to its end.
func (s *sseStream) rest() []frame {
	s.t.Helper()
	var fs []frame
	for {
		f, ok := s.next()
		if !ok {
			return fs
		}
		fs = append(fs, f)
	}
}

func events(fs []frame) []string {
	var names []string
	for _, f := range fs {
		names = append(names, fmt.Sprintf("%d:%s", f.id, f.event))
	}
	return names
}

// checkRun checks a whole stream: indexes contiguous from first, one top-level
// terminal event, last.
func checkRun(t *testing.T, fs []frame, first int, runID string, terminal run.EventType) {
	t.Helper()
	terminals := 0
	for i, f := range fs {
		if f.id != first+i {
			t.Fatalf("event %d has id %d: %v", first+i, f.id, events(fs))
		}
		if f.ev.RunID == runID && f.ev.Event.Terminal() {
			terminals++
		}
	}
	if terminals != 1 || len(fs) == 0 || fs[len(fs)-1].ev.Event != terminal {
		t.Fatalf("want one terminal %s last, got %v", terminal, events(fs))
	}
}

// slowWorkflow's agent pauses for ever after its first word, until cancelled.
func slowWorkflow(name string) *workflow.Workflow {
	writer := &agent.Agent{Name: name + " writer", Model: &scripted.Model{
		Turns: []scripted.Turn{{Text: "Once upon a time there was a dragon"}},
		Delay: time.Hour,
	}}
	return &workflow.Workflow{Name: name, Description: "a story that never ends",
		Steps: []workflow.Step{workflow.AgentStep("write", writer, "write the story")}}
}

// gatedWorkflow drafts, waits for gate (or its cancel), then writes.
func gatedWorkflow(name string, gate <-chan struct{}) *workflow.Workflow {
	return &workflow.Workflow{Name: name, Steps: []workflow.Step{
		workflow.AgentStep("draft", &agent.Agent{Name: "Drafter", Model: scripted.New("a b c d e f")}, ""),
		workflow.FuncStep("gate", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			select {
			case <-gate:
				return workflow.StepOutput{Content: in.Previous}, nil
			case <-ctx.Done():
				return workflow.StepOutput{}, context.Cause(ctx)
			}
		}),
		workflow.AgentStep("final", &agent.Agent{Name: "Finisher", Model: scripted.New("g h i j k")}, ""),
	}}
}

func quickWorkflow(name string) *workflow.Workflow {
	return &workflow.Workflow{Name: name, Steps: []workflow.Step{
		workflow.AgentStep("say", &agent.Agent{Name: name + " agent", Model: scripted.New("hello world")}, ""),
	}}
}

// terminalOf reports whether an event of type t ends a run of kind k (nested agent
// runs' terminal events do not end a workflow's stream).
func terminalOf(k run.Kind, t run.EventType) bool {
	if k == run.KindWorkflow {
		return t == run.EventWorkflowCompleted || t == run.EventWorkflowCancelled || t == run.EventWorkflowError
	}
	return t == run.EventRunCompleted || t == run.EventRunCancelled || t == run.EventRunError
}
