package agentos

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// serveListener serves cfg through ServeListener on a loopback port until the test
// ends, and returns an env whose requests go there.
func serveListener(t *testing.T, cfg Config) *env {
	t.Helper()
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = time.Nanosecond // cancel what still runs at the test's end
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeListener(ctx, ln) }()
	e := &env{t: t, srv: srv, ts: &httptest.Server{URL: "http://" + ln.Addr().String()},
		client: &http.Client{Transport: &http.Transport{}}}
	t.Cleanup(func() {
		e.client.CloseIdleConnections()
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	return e
}

// rawRequest writes a request's head and the start of its body on a new
// connection to addr; the rest of the body never comes, or comes a byte at a time
// while trickle is set, until the connection fails or the test ends.
func rawRequest(t *testing.T, addr, head, start string, trickle bool) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	// Not an assertion on speed: it turns a server that never cuts the body off
	// into a failure instead of a hung test.
	conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(conn, head+start); err != nil {
		t.Fatal(err)
	}
	stop, trickled := make(chan struct{}), sync.WaitGroup{}
	if trickle {
		trickled.Go(func() {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := conn.Write([]byte("x")); err != nil {
						return
					}
				}
			}
		})
	}
	t.Cleanup(func() {
		close(stop)
		conn.Close()
		trickled.Wait()
	})
	return conn, bufio.NewReader(conn)
}

// TestSlowBodyIsCutOff: a request whose body does not arrive within BodyTimeout
// is answered 408 (or, on a route that answers without reading it, with its own
// answer) and its connection is closed, on a keyed server too.
func TestSlowBodyIsCutOff(t *testing.T) {
	e := serveListener(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, BodyTimeout: 200 * time.Millisecond})
	keyed := serveListener(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, BodyTimeout: 200 * time.Millisecond,
		SecurityKey: "k"})
	for _, c := range []struct {
		name, path, contentType string
		keyed, trickle          bool
		want                    int
	}{
		{"stalled form", "/workflows/quick/runs", formType, false, false, http.StatusRequestTimeout},
		{"trickled form", "/workflows/quick/runs", formType, false, true, http.StatusRequestTimeout},
		{"trickled JSON", "/workflows/quick/runs", "application/json", false, true, http.StatusRequestTimeout},
		{"trickled multipart", "/workflows/quick/runs", "multipart/form-data; boundary=XX", false, true, http.StatusRequestTimeout},
		{"trickled resume form", "/workflows/quick/runs/r1/resume", formType, false, true, http.StatusRequestTimeout},
		{"unauthenticated", "/workflows/quick/runs", formType, true, true, http.StatusUnauthorized},
		{"unknown route", "/nowhere", formType, false, true, http.StatusNotFound},
		{"a body the route does not read", "/runs/r1/cancel?wait=false", formType, false, true, http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := strings.TrimPrefix(e.url(""), "http://")
			if c.keyed {
				addr = strings.TrimPrefix(keyed.url(""), "http://")
			}
			head := "POST " + c.path + " HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: " + c.contentType +
				"\r\nContent-Length: 100000\r\n\r\n"
			start := map[string]string{formType: "message=", "application/json": `{"message": "`}[c.contentType]
			if strings.HasPrefix(c.contentType, "multipart") {
				start = "--XX\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\n"
			}
			_, r := rawRequest(t, addr, head, start, c.trickle)
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			var v map[string]any
			if err != nil || json.Unmarshal(b, &v) != nil {
				t.Fatalf("%d: body %q not JSON (%v)", resp.StatusCode, b, err)
			}
			if resp.StatusCode != c.want || (c.want != http.StatusOK && v["detail"] == nil) {
				t.Fatalf("%d %v, want %d with a detail", resp.StatusCode, v, c.want)
			}
			if _, err := r.ReadByte(); err == nil {
				t.Fatal("connection still open after the answer")
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("connection still open a minute after the answer: %v", err)
			}
		})
	}
}

// TestStreamOutlivesBodyTimeout: once its body is read, a streamed run's
// connection is not cut by the body's deadline, however long the run lasts.
func TestStreamOutlivesBodyTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	for _, c := range []struct{ name, contentType, body string }{
		{"form", formType, form("message", "hi")},
		{"JSON", "application/json", `{"message": "hi"}`},
		{"multipart", "multipart/form-data; boundary=XX",
			"--XX\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nhi\r\n--XX--\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			gate := make(chan struct{})
			e := serveListener(t, Config{Workflows: []*workflow.Workflow{gatedWorkflow("Gated", gate)},
				BodyTimeout: timeout, StreamGrace: CancelAtOnce})
			s := e.openStream("POST", "/workflows/gated/runs", c.contentType, c.body)
			fs := s.until(run.EventStepStarted)
			fs = append(fs, s.until(run.EventStepStarted)...) // the gate's step: the run waits
			// What is checked is that nothing happens when the deadline passes: let it
			// pass, several times over. A deadline left on the connection would cancel
			// the run (no grace), as if its client had gone.
			<-time.After(4 * timeout)
			close(gate)
			fs = append(fs, s.rest()...)
			checkRun(t, fs, 0, fs[0].ev.RunID, run.EventWorkflowCompleted)
		})
	}
}

// TestHostCheckOnLoopback: a server listening on a loopback address answers only
// to requests naming localhost, a loopback address or an allowed host in Host;
// others (a rebound name) get 421 with a detail.
func TestHostCheckOnLoopback(t *testing.T) {
	e := serveListener(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, AllowedHosts: []string{"Kern.Internal"}})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(e.url(""), "http://"))
	for _, c := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:" + port, 200},
		{"127.0.0.1", 200},
		{"127.8.9.10:" + port, 200},
		{"localhost:" + port, 200},
		{"LOCALHOST.", 200},
		{"app.localhost:" + port, 200},
		{"[::1]:" + port, 200},
		{"[::ffff:127.0.0.1]:" + port, 200},
		{"kern.internal:" + port, 200},
		{"KERN.INTERNAL", 200},
		{"evil.example", 421},
		{"evil.example:" + port, 421},
		{"127.0.0.1.evil.example:" + port, 421},
		{"localhost.evil.example", 421},
		{"10.0.0.1:" + port, 421},
		{"[::2]:" + port, 421},
	} {
		req, _ := http.NewRequest("GET", e.url("/health"), nil)
		req.Host = c.host
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if resp.StatusCode != c.want || err != nil || (c.want != 200 && v["detail"] == nil) {
			t.Errorf("Host %q: %d %v (%v), want %d", c.host, resp.StatusCode, v, err, c.want)
		}
	}
}

// TestHostNotCheckedOffLoopback: a server listening on every interface answers
// to any Host (it is meant to be reached by name).
func TestHostNotCheckedOffLoopback(t *testing.T) {
	srv, err := New(Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	ln := fakeListener{&net.TCPAddr{IP: net.IPv4zero, Port: 7777}}
	rec := httptest.NewRecorder()
	req := httptest.NewRequestWithContext(withListener(context.Background(), ln), "GET", "http://evil.example/health", nil)
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("on 0.0.0.0, Host evil.example: %d %s", rec.Code, rec.Body)
	}
}

// fakeListener is a listener that only has an address.
type fakeListener struct{ addr net.Addr }

func (l fakeListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (l fakeListener) Close() error              { return nil }
func (l fakeListener) Addr() net.Addr            { return l.addr }

// TestCrossOrigin: a browser's state-changing request from another origin than
// the server's is refused 403 unless its origin is allowed; programs (no Origin)
// and same-origin pages pass; allowed origins get CORS answers and preflights.
func TestCrossOrigin(t *testing.T) {
	const app = "https://app.example"
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, CORSOrigins: []string{app + "/"}})
	keyed := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, SecurityKey: "k", CORSOrigins: []string{app}})
	self := e.url("")
	run := form("message", "hi", "stream", "false")
	for _, c := range []struct {
		name, method, path, ct, body string
		hdr                          []string
		keyed                        bool
		want                         int
		allowOrigin                  string // Access-Control-Allow-Origin wanted
	}{
		{"a program (no Origin)", "POST", "/workflows/quick/runs", formType, run, nil, false, 200, ""},
		{"same origin", "POST", "/workflows/quick/runs", formType, run, []string{"Origin", self}, false, 200, ""},
		{"same origin (Sec-Fetch-Site)", "POST", "/workflows/quick/runs", formType, run,
			[]string{"Origin", self, "Sec-Fetch-Site", "same-origin"}, false, 200, ""},
		{"allowed origin", "POST", "/workflows/quick/runs", formType, run, []string{"Origin", app}, false, 200, app},
		{"allowed origin (cross-site)", "POST", "/workflows/quick/runs", formType, run,
			[]string{"Origin", app, "Sec-Fetch-Site", "cross-site"}, false, 200, app},
		{"another site", "POST", "/workflows/quick/runs", formType, run, []string{"Origin", "http://evil.example"}, false, 403, ""},
		{"another site, keyed server", "POST", "/workflows/quick/runs", formType, run,
			[]string{"Origin", "http://evil.example"}, true, 403, ""},
		{"another port of the same host", "POST", "/workflows/quick/runs", formType, run,
			[]string{"Origin", "http://127.0.0.1:1"}, false, 403, ""},
		{"opaque origin", "POST", "/workflows/quick/runs", formType, run, []string{"Origin", "null"}, false, 403, ""},
		{"cross-site without Origin", "POST", "/workflows/quick/runs", formType, run,
			[]string{"Sec-Fetch-Site", "cross-site"}, false, 403, ""},
		{"same-site, another origin", "POST", "/workflows/quick/runs", formType, run,
			[]string{"Origin", "http://localhost:3000", "Sec-Fetch-Site", "same-site"}, false, 403, ""},
		{"cancel from another site", "POST", "/runs/r1/cancel?wait=false", "", "", []string{"Origin", "http://evil.example"}, false, 403, ""},
		{"delete from another site", "DELETE", "/sessions/s1", "", "", []string{"Origin", "http://evil.example"}, false, 403, ""},
		{"read from another site", "GET", "/workflows", "", "", []string{"Origin", "http://evil.example"}, false, 200, ""},
		{"read from an allowed origin", "GET", "/workflows", "", "", []string{"Origin", app}, false, 200, app},
		{"preflight of an allowed origin", "OPTIONS", "/workflows/quick/runs", "", "",
			[]string{"Origin", app, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization"},
			false, 204, app},
		{"preflight of an allowed origin, keyed server", "OPTIONS", "/workflows/quick/runs", "", "",
			[]string{"Origin", app, "Access-Control-Request-Method", "POST"}, true, 204, app},
		{"preflight of another site, keyed server", "OPTIONS", "/workflows/quick/runs", "", "",
			[]string{"Origin", "http://evil.example", "Access-Control-Request-Method", "POST"}, true, 403, ""},
		{"allowed origin without the key", "POST", "/workflows/quick/runs", formType, run,
			[]string{"Origin", app}, true, 401, app},
		{"preflight of another site", "OPTIONS", "/workflows/quick/runs", "", "",
			[]string{"Origin", "http://evil.example", "Access-Control-Request-Method", "POST"}, false, 403, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := e
			if c.keyed {
				srv = keyed
			}
			req, _ := http.NewRequest(c.method, srv.url(c.path), strings.NewReader(c.body))
			if c.ct != "" {
				req.Header.Set("Content-Type", c.ct)
			}
			for i := 0; i+1 < len(c.hdr); i += 2 {
				req.Header.Set(c.hdr[i], c.hdr[i+1])
			}
			resp, err := srv.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.want {
				t.Fatalf("%d %s, want %d", resp.StatusCode, b, c.want)
			}
			var v map[string]any
			if c.want >= 400 && (json.Unmarshal(b, &v) != nil || v["detail"] == nil) {
				t.Fatalf("%d: body %q, want a JSON detail", resp.StatusCode, b)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != c.allowOrigin {
				t.Fatalf("Access-Control-Allow-Origin %q, want %q", got, c.allowOrigin)
			}
			if c.want == 204 {
				for _, h := range []string{"Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age"} {
					if resp.Header.Get(h) == "" {
						t.Errorf("preflight answer without %s", h)
					}
				}
			}
		})
	}
}

func TestNewRejectsBadCORSOrigins(t *testing.T) {
	for _, origin := range []string{"app.example", "https://app.example/path", "https://app.example?x", "*"} {
		srv, err := New(Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, CORSOrigins: []string{origin}})
		if err == nil {
			srv.Shutdown(context.Background())
			t.Errorf("CORS origin %q accepted", origin)
		}
	}
}

// TestIDBounds: an id in a path or query longer than MaxIDBytes, or not valid
// UTF-8, or holding NUL, is refused 422 naming it, before any work: a cancel of a
// 900 KB id keeps no intent.
func TestIDBounds(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	long, huge := strings.Repeat("x", MaxIDBytes+1), strings.Repeat("y", 900<<10)
	for _, c := range []struct {
		method, path string
		want         int
		name         string // the id the detail names
	}{
		{"POST", "/runs/" + huge + "/cancel?wait=false", 422, "run_id"},
		{"POST", "/runs/" + long + "/cancel?wait=false", 422, "run_id"},
		{"POST", "/workflows/quick/runs/" + long + "/cancel?wait=false", 422, "run_id"},
		{"GET", "/runs/" + long, 422, "run_id"},
		{"GET", "/workflows/" + long, 422, "workflow_id"},
		{"GET", "/agents/" + long + "/runs", 422, "agent_id"},
		{"GET", "/sessions/" + long, 422, "session_id"},
		{"DELETE", "/sessions/" + long, 422, "session_id"},
		{"GET", "/sessions/s1/runs/" + long, 422, "run_id"},
		{"GET", "/sessions?user_id=" + long, 422, "user_id"},
		{"GET", "/workflows/quick/runs?session_id=" + long, 422, "session_id"},
		{"GET", "/runs/a%00b", 422, "run_id"},
		{"GET", "/runs/%ff%fe", 422, "run_id"},
		{"GET", "/sessions?user_id=%ff", 422, "user_id"},
		{"GET", "/" + long, 422, "path segment"},
		{"GET", "/runs/" + strings.Repeat("x", MaxIDBytes), 404, ""},
		{"POST", "/runs/" + strings.Repeat("x", MaxIDBytes) + "/cancel?wait=false", 200, ""},
		{"GET", "/sessions?user_id=" + strings.Repeat("x", MaxIDBytes), 200, ""},
	} {
		code, body := e.do(c.method, c.path, "", "")
		d, _ := body["detail"].(string)
		if code != c.want || (c.name != "" && !strings.HasPrefix(d, c.name+" ")) {
			t.Errorf("%s %.60s: %d %.200v, want %d naming %q", c.method, c.path, code, body, c.want, c.name)
		}
	}
}

// TestBodyIDBounds: the ids a run request carries in its body are bounded as path
// ids are, in a form and in JSON, before the run starts.
func TestBodyIDBounds(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	long := strings.Repeat("x", MaxIDBytes+1)
	const form, js = "application/x-www-form-urlencoded", "application/json"
	for _, c := range []struct {
		contentType, body string
		want              int
		name              string
	}{
		{form, "stream=false&message=hi&session_id=" + long, 422, "session_id"},
		{form, "stream=false&message=hi&user_id=" + long, 422, "user_id"},
		{form, "stream=false&message=hi&session_id=a%00b", 422, "session_id"},
		{js, `{"message":"hi","stream":false,"user_id":"` + long + `"}`, 422, "user_id"},
		{js, `{"message":"hi","stream":false,"session_id":"\u0000"}`, 422, "session_id"},
		{form, "stream=false&message=hi&session_id=" + strings.Repeat("s", MaxIDBytes), 200, ""},
	} {
		code, body := e.do("POST", "/workflows/quick/runs", c.contentType, c.body)
		d, _ := body["detail"].(string)
		if code != c.want || (c.name != "" && !strings.HasPrefix(d, c.name+" ")) {
			t.Errorf("%.80s: %d %.200v, want %d naming %q", c.body, code, body, c.want, c.name)
		}
	}
}

// TestAuthSchemeCaseInsensitive: the Bearer scheme is matched in any case (RFC
// 6750), the token exactly.
func TestAuthSchemeCaseInsensitive(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, SecurityKey: "s3cret"})
	for _, c := range []struct {
		auth string
		want int
	}{
		{"Bearer s3cret", 200},
		{"bearer s3cret", 200},
		{"BEARER s3cret", 200},
		{"Bearer  s3cret", 200},
		{"Bearer S3CRET", 401},
		{"Bearer s3cret x", 401},
		{"Bearer s3cre", 401},
		{"Basic s3cret", 401},
		{"Bearers3cret", 401},
		{"Bearer", 401},
		{"s3cret", 401},
	} {
		code, body := e.do("GET", "/workflows", "", "", "Authorization", c.auth)
		if code != c.want || (code != 200 && body["detail"] == nil) {
			t.Errorf("Authorization %q: %d %v, want %d", c.auth, code, body, c.want)
		}
	}
}

// TestRedirectsInJSON: ServeMux's redirects to a cleaned path keep their status
// and Location, with a JSON detail in place of HTML.
func TestRedirectsInJSON(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	noFollow := &http.Client{Transport: e.client.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct{ method, path, location string }{
		{"GET", "//workflows", "/workflows"},
		{"GET", "/workflows/../workflows?x=1", "/workflows?x=1"},
		{"POST", "//workflows/quick/runs", "/workflows/quick/runs"},
		{"GET", "//nowhere", "/nowhere"},
		{"HEAD", "//health", "/health"},
	} {
		req, err := http.NewRequest(c.method, e.url(c.path), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var v map[string]any
		jsonOK := json.Unmarshal(b, &v) == nil && v["detail"] != nil
		if c.method == "HEAD" {
			jsonOK = len(b) == 0
		}
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != c.location || !jsonOK {
			t.Errorf("%s %s: %d Location %q body %q; want 307 to %s with a JSON detail", c.method, c.path,
				resp.StatusCode, resp.Header.Get("Location"), b, c.location)
		}
	}
}

// TestOpenAPIListsGuardAnswers: the document lists the guard's refusals beside
// each route's own answers.
func TestOpenAPIListsGuardAnswers(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	code, doc := e.do("GET", "/openapi.json", "", "")
	if code != http.StatusOK {
		t.Fatal(code, doc)
	}
	paths := doc["paths"].(map[string]any)
	for _, c := range []struct {
		method, path string
		codes        []string
	}{
		{"post", "/runs/{run_id}/cancel", []string{"200", "403", "422"}},
		{"post", "/workflows/{workflow_id}/runs", []string{"200", "403", "408", "422"}},
		{"get", "/sessions/{session_id}", []string{"200", "422"}},
		{"delete", "/sessions/{session_id}", []string{"204", "403", "422"}},
	} {
		resps := paths[c.path].(map[string]any)[c.method].(map[string]any)["responses"].(map[string]any)
		for _, code := range c.codes {
			if r, ok := resps[code].(map[string]any); !ok || r["description"] == "" {
				t.Errorf("%s %s: no %s answer in %v", c.method, c.path, code, resps)
			}
		}
		if d := resps["422"].(map[string]any)["description"].(string); !strings.Contains(d, "id in the path") {
			t.Errorf("%s %s: 422 %q does not tell of ids", c.method, c.path, d)
		}
	}
}
