package agentos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// rawRequest sends a request of its own on a new connection to e's server and
// returns the connection, for tests of the bytes of an answer.
func (e *env) rawRequest(method, path, body string, header ...string) net.Conn {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.ts.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n",
		method, path, e.ts.Listener.Addr(), formType, len(body))
	for i := 0; i+1 < len(header); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", header[i], header[i+1])
	}
	b.WriteString("\r\n" + body)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		e.t.Fatal(err)
	}
	return conn
}

// TestHijackedStreamWire: a stream over HTTP/1.1 is served from its connection
// taken over from net/http, as a chunked response that closes the connection,
// with the headers middleware set (CORS), that Go's HTTP client reads as any
// other: the run's events, framed as SSE, to its terminal event.
func TestHijackedStreamWire(t *testing.T) {
	const app = "https://app.example"
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, CORSOrigins: []string{app}})
	conn := e.rawRequest("POST", "/workflows/quick/runs", form("message", "go"), "Origin", app)
	raw, err := io.ReadAll(conn) // the server closes the connection at the stream's end
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	for _, want := range []string{"HTTP/1.1 200 OK\r\n", "Transfer-Encoding: chunked", "Connection: close", "Date: "} {
		if !bytes.Contains(head, []byte(want)) {
			t.Errorf("head lacks %q:\n%s", want, head)
		}
	}
	if !bytes.HasSuffix(raw, []byte("\r\n0\r\n\r\n")) {
		t.Errorf("the answer does not end with the last chunk: %q", raw[max(len(raw)-40, 0):])
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
		"X-Accel-Buffering": "no", "Access-Control-Allow-Origin": app} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if !resp.Close || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("close %v, transfer encoding %v: want a chunked answer closing the connection", resp.Close, resp.TransferEncoding)
	}
	s := &sseStream{t: t, resp: resp, r: bufio.NewReader(resp.Body), cancel: func() {}}
	fs := s.rest()
	checkRun(t, fs, 0, fs[0].ev.RunID, run.EventWorkflowCompleted)
}

// bigWorkflow's agent writes words of 64 KiB, n of them.
func bigWorkflow(name string, n int) *workflow.Workflow {
	word := strings.Repeat("x", 64<<10) + " "
	return &workflow.Workflow{Name: name, Steps: []workflow.Step{
		workflow.AgentStep("say", &agent.Agent{Name: name + " agent", Model: scripted.New(strings.Repeat(word, n))}, ""),
	}}
}

// TestStalledClientBlocksNoOther: a client that stops reading its stream blocks
// no other stream; once it leaves, its stream ends.
func TestStalledClientBlocksNoOther(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{bigWorkflow("Big", 160), quickWorkflow("Quick")}})
	stalled := e.rawRequest("POST", "/workflows/big/runs", form("message", "go"))
	// Read its head, to learn its run, and nothing more: 10 MiB of events are more
	// than the sockets hold.
	r := bufio.NewReaderSize(stalled, 64<<10)
	var runID string
	for runID == "" {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if _, after, ok := strings.Cut(line, `"run_id":"`); ok {
			runID, _, _ = strings.Cut(after, `"`)
		}
	}
	lr := e.srv.host.Lookup(runID)
	if out := lr.Exec().Wait(); out.Status != run.StatusCompleted {
		t.Fatalf("stalled client's run: %s", out.Status)
	}
	s := e.openStream("POST", "/workflows/quick/runs", formType, form("message", "go"))
	fs := s.rest()
	checkRun(t, fs, 0, fs[0].ev.RunID, run.EventWorkflowCompleted)
	e.srv.hijacked.mu.Lock()
	open := len(e.srv.hijacked.conns)
	e.srv.hijacked.mu.Unlock()
	if open == 0 {
		t.Fatal("the stalled stream ended: its client read it all?")
	}
	stalled.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e.srv.hijacked.close(ctx) // returns once the stalled stream ended
	if n := len(e.srv.hijacked.conns); n != 0 {
		t.Fatalf("%d streams open once their clients left", n)
	}
}

// TestShutdownWaitsForHijackedStream: Shutdown returns once the streams served
// from connections taken over have written their runs' terminal events, which
// their clients read after it returned.
func TestShutdownWaitsForHijackedStream(t *testing.T) {
	gate := make(chan struct{})
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{gatedWorkflow("Gated", gate)}})
	s := e.openStream("POST", "/workflows/gated/runs", formType, form("message", "go"))
	fs := s.until(run.EventRunContent)
	runID := fs[0].ev.RunID
	shut := make(chan error, 1)
	go func() { shut <- e.srv.Shutdown(context.Background()) }()
	close(gate)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if n := len(e.srv.hijacked.conns); n != 0 {
		t.Fatalf("Shutdown returned with %d streams open", n)
	}
	fs = append(fs, s.rest()...)
	checkRun(t, fs, 0, runID, run.EventWorkflowCompleted)
}

// TestStreamPaths: a stream is served from its connection over HTTP/1.1, by its
// handler over HTTP/2 or when taking connections over is off, and the same in
// all: resumed after a drop, from memory and from the store, and cancelled once
// its client left for longer than the grace period.
func TestStreamPaths(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   func(*testing.T, Config) *env
		proto int
		keep  bool
	}{
		{"HTTP/1.1 hijacked", newEnv, 1, false},
		{"HTTP/1.1 in handler", newEnv, 1, true},
		{"HTTP/2", newEnvH2, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gate := make(chan struct{})
			e := tc.env(t, Config{Workflows: []*workflow.Workflow{gatedWorkflow("Gated", gate)}, StreamGrace: time.Hour})
			e.srv.keepStreams = tc.keep
			s := e.openStream("POST", "/workflows/gated/runs", formType, form("message", "go"))
			if s.resp.ProtoMajor != tc.proto || s.resp.Close == (tc.proto == 2 || tc.keep) {
				t.Fatalf("answered over HTTP/%d, closing %v", s.resp.ProtoMajor, s.resp.Close)
			}
			seen := s.until(run.EventRunContent)
			runID := seen[0].ev.RunID
			s.close()
			s = e.openStream("GET", "/workflows/gated/runs/"+runID+"/resume", "", "", "Last-Event-ID", strconv.Itoa(seen[len(seen)-1].id))
			close(gate)
			seen = append(seen, s.rest()...)
			checkRun(t, seen, 0, runID, run.EventWorkflowCompleted)
			s = e.openStream("GET", "/workflows/gated/runs/"+runID+"/resume?last_event_index=2", "", "")
			checkRun(t, s.rest(), 3, runID, run.EventWorkflowCompleted)

			e = tc.env(t, Config{Workflows: []*workflow.Workflow{slowWorkflow("Story")}, StreamGrace: CancelAtOnce})
			e.srv.keepStreams = tc.keep
			s = e.openStream("POST", "/workflows/story/runs", formType, form("message", "go"))
			fs := s.until(run.EventRunContent)
			lr := e.srv.host.Lookup(fs[0].ev.RunID)
			s.close()
			if out := lr.Exec().Wait(); out.Status != run.StatusCancelled || out.Reason != ReasonClientDisconnected {
				t.Fatalf("run of a client gone: %s %q", out.Status, out.Reason)
			}
		})
	}
}

// TestShutdownCutEndsWaitingStreams: once Shutdown's time is up, it cuts the
// connections of the streams taken over and tells each stream, which may be
// waiting for its run or the store with nothing to write: closing a socket raises
// no event for the watcher of connections, so closing alone would leave Shutdown
// waiting for such a stream for ever.
func TestShutdownCutEndsWaitingStreams(t *testing.T) {
	var h hijacked
	if !h.begin() {
		t.Fatal("begin refused before Shutdown")
	}
	conn, peer := net.Pipe()
	defer peer.Close()
	told := make(chan struct{})
	h.set(conn, func() {
		close(told)
		go h.done(conn) // the stream ends once told
	})
	done, cancel := context.WithCancel(context.Background())
	cancel()
	h.close(done) // hangs unless the stream is told
	<-told
	if h.begin() {
		t.Error("a stream was taken over after Shutdown")
	}
}
