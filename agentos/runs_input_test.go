package agentos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/workflow"
)

// multipartForm is a complete multipart body (boundary XX) of the fields, in order.
func multipartForm(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, "--XX\r\nContent-Disposition: form-data; name=%q\r\n\r\n%s\r\n", kv[i], kv[i+1])
	}
	b.WriteString("--XX--\r\n")
	return b.String()
}

const multipartType = "multipart/form-data; boundary=XX"

// refusedRuns are run requests refused before any work, with the status each gets.
var refusedRuns = []struct {
	name, query, ct, body string
	want                  int
}{
	{"trailing junk after JSON", "", "application/json", `{"message":"hi"} junk`, 400},
	{"second JSON object", "", "application/json", `{"message":"hi"}{"message":"again"}`, 400},
	{"JSON not UTF-8", "", "application/json", "{\"message\":\"h\xffi\"}", 422},
	{"empty message (JSON)", "", "application/json", `{"message":""}`, 422},
	{"empty message (form)", "", formType, "message=", 422},
	{"empty message (multipart)", "", multipartType, multipartForm("message", ""), 422},
	{"NUL in message (JSON)", "", "application/json", `{"message":"a\u0000b"}`, 422},
	{"NUL in message (form)", "", formType, "message=a%00b", 422},
	{"NUL in message (multipart)", "", multipartType, multipartForm("message", "a\x00b"), 422},
	{"message not UTF-8 (form)", "", formType, "message=a%FFb", 422},
	{"message not UTF-8 (multipart)", "", multipartType, multipartForm("message", "a\xffb"), 422},
	{"NUL in session_id (JSON)", "", "application/json", `{"message":"hi","session_id":"s\u0000"}`, 422},
	{"NUL in user_id (form)", "", formType, "message=hi&user_id=u%00", 422},
	{"session_id not UTF-8 (form)", "", formType, "message=hi&session_id=%C3", 422},
	{"user_id not UTF-8 (multipart)", "", multipartType, multipartForm("message", "hi", "user_id", "\xc3"), 422},
	{"stream in the query", "?stream=false", formType, "message=hi", 422},
	{"background in the query", "?background=true", "application/json", `{"message":"hi"}`, 422},
	{"background in the query, no body", "?background=true&message=hi", "", "", 422},
}

// TestRunInputRefused: malformed, empty or unstorable run requests are answered 4xx
// with a detail, and start no run; each also as a background run, which before
// reached the store (a 503 on PostgreSQL for a NUL).
func TestRunInputRefused(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	checkRefused(t, e)
}

// TestRunInputRefusedPostgres: the same answers on PostgreSQL, whose text columns
// cannot hold NUL nor invalid UTF-8.
func TestRunInputRefusedPostgres(t *testing.T) {
	pgtest.Need(t)
	e := replica(t, pgtest.URL(), pgtest.Schema(t), quickWorkflow("Quick"))
	checkRefused(t, e)
}

func checkRefused(t *testing.T, e *env) {
	t.Helper()
	for _, c := range refusedRuns {
		for _, background := range []bool{false, true} {
			body := c.body
			if background {
				body = withBackground(t, c.ct, body)
			}
			code, out := e.do("POST", "/workflows/quick/runs"+c.query, c.ct, body)
			if d, _ := out["detail"].(string); code != c.want || d == "" {
				t.Errorf("%s (background %v): %d %v, want %d with a detail", c.name, background, code, out, c.want)
			}
		}
	}
	if code, out := e.do("GET", "/workflows/quick/runs", "", ""); code != http.StatusOK || len(out["list"].([]any)) != 0 {
		t.Errorf("runs after refusals: %d %v, want none", code, out)
	}
	// And what is right still runs.
	code, out := e.do("POST", "/workflows/quick/runs", "application/json", "\n{\"message\":\"hi\",\"stream\":false}\r\n\t ")
	if code != http.StatusOK || out["content"] != "hello world" {
		t.Errorf("a JSON body ending in white space: %d %v", code, out)
	}
}

// withBackground adds background=true to a body of content type ct.
func withBackground(t *testing.T, ct, body string) string {
	t.Helper()
	switch ct {
	case "application/json":
		if strings.HasPrefix(body, "{") {
			return `{"background":true,` + body[1:]
		}
		return body
	case formType, "":
		return "background=true&" + body
	case multipartType:
		return strings.TrimSuffix(multipartForm("background", "true"), "--XX--\r\n") + body
	}
	t.Fatalf("no background for %q", ct)
	return ""
}

// errorLog counts the ERROR records logged through it.
type errorLog struct {
	mu     sync.Mutex
	errors []string
}

func (l *errorLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *errorLog) WithGroup(string) slog.Handler            { return l }
func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.errors = append(l.errors, r.Message)
	}
	return nil
}

func (l *errorLog) logged() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errors...)
}

// TestShortBodyHalfClosed: a complete JSON object or multipart form followed by
// less than its Content-Length announced, the client then half-closing, is a 400
// with a detail and no ERROR in the log (it was a 500 "internal error").
func TestShortBodyHalfClosed(t *testing.T) {
	log := &errorLog{}
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, Logger: slog.New(log)})
	for _, c := range []struct{ name, ct, body string }{
		{"JSON", "application/json", `{"message":"hi","stream":false}`},
		{"JSON and white space", "application/json", "{\"message\":\"hi\"}\n"},
		{"multipart", multipartType, multipartForm("message", "hi", "stream", "false")},
		{"multipart, half a part", multipartType, multipartForm("message", "hi") + "--XX\r\nContent-Disp"},
		{"form", formType, "message=hi&stream=false"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", e.ts.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "POST /workflows/quick/runs HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
				e.ts.Listener.Addr(), c.ct, len(c.body)+100, c.body)
			if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatalf("%d, body not JSON: %v", resp.StatusCode, err)
			}
			if d, _ := out["detail"].(string); resp.StatusCode != http.StatusBadRequest || d == "" {
				t.Errorf("%d %v, want 400 with a detail", resp.StatusCode, out)
			}
		})
	}
	if errs := log.logged(); len(errs) > 0 {
		t.Errorf("ERROR logged for a client's mistake: %q", errs)
	}
	if code, out := e.do("GET", "/workflows/quick/runs", "", ""); code != http.StatusOK || len(out["list"].([]any)) != 0 {
		t.Errorf("runs after short bodies: %d %v, want none", code, out)
	}
}

// shortReader is a body that ends, after its bytes, with io.ErrUnexpectedEOF: a
// client that sent less than its Content-Length and left.
type shortReader struct{ r io.Reader }

func (s shortReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// FuzzParseRun: whatever the content type, query and body of a run request (cut
// short or not), parseRun never panics nor answers 5xx, and what it accepts has a
// message and ids that every store keeps.
func FuzzParseRun(f *testing.F) {
	for _, c := range refusedRuns {
		f.Add(c.ct, c.query, []byte(c.body), false)
	}
	for _, seed := range []struct {
		ct, query, body string
		short           bool
	}{
		{formType, "", "message=hi&stream=false&session_id=s&user_id=u", false},
		{formType, "", "message=hi&stream=false", true},
		{formType, "", "message=%zz", false},
		{"", "", "message=hi&background=1", false},
		{"application/json", "", `{"message":"hi","stream":true,"session_id":"s"}`, false},
		{"application/json", "", `{"message":"hi"}`, true},
		{"application/json", "", `{"message":`, false},
		{"application/json", "", `null`, false},
		{"application/json", "", `["message"]`, false},
		{"application/json", "", `{"message":"hi","images":[{"url":"https://x/y.png"}]}`, false},
		{"application/json; charset=utf-8", "", ` {"message":"hi"} `, false},
		{multipartType, "", multipartForm("message", "hi", "stream", "false"), false},
		{multipartType, "", multipartForm("message", "hi"), true},
		{multipartType, "", multipartForm("message", "hi") + "epilogue", false},
		{multipartType, "", "garbage", false},
		{"multipart/form-data", "", multipartForm("message", "hi"), false},
		{"text/plain", "", "hi", false},
		{"application/json;;", "", "{}", false},
	} {
		f.Add(seed.ct, seed.query, []byte(seed.body), seed.short)
	}
	s := &Server{cfg: Config{MaxBodyBytes: 1 << 16, MaxAttachments: DefaultMaxAttachments, MaxAttachmentBytes: 1 << 16},
		log: slog.New(&errorLog{})}
	f.Fuzz(func(t *testing.T, ct, query string, body []byte, short bool) {
		var rd io.Reader = strings.NewReader(string(body))
		if short {
			rd = shortReader{rd}
		}
		r := httptest.NewRequest("POST", "/workflows/quick/runs", rd)
		if q, ok := strings.CutPrefix(query, "?"); ok {
			r.URL.RawQuery = q
		}
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		w := httptest.NewRecorder()
		req, err := s.parseRun(w, r)
		if err != nil {
			s.answerError(w, err)
			if w.Code >= 500 || w.Code < 400 {
				t.Fatalf("%q %q %q (short %v): answered %d: %s", ct, query, body, short, w.Code, w.Body)
			}
			var out map[string]any
			if json.Unmarshal(w.Body.Bytes(), &out) != nil {
				t.Fatalf("refusal not JSON: %s", w.Body)
			}
			if d, _ := out["detail"].(string); d == "" {
				t.Fatalf("refusal not JSON with a detail: %s", w.Body)
			}
			return
		}
		if short {
			t.Fatalf("%q %q %q: a body cut short was accepted", ct, query, body)
		}
		if req.Message == nil || checkMessage(*req.Message) != nil {
			t.Fatalf("%q %q %q: accepted a message every store cannot keep: %+v", ct, query, body, req.Message)
		}
		if checkID("session_id", req.SessionID) != nil || checkID("user_id", req.UserID) != nil {
			t.Fatalf("%q %q %q: accepted ids %q %q", ct, query, body, req.SessionID, req.UserID)
		}
	})
}
