package agentos

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/kern-dev/kern/workflow"
)

// The fuzz targets of this file cover the request decoders FuzzParseRun (run
// bodies) and FuzzGuard (Host, Origin, path ids at the guard) leave out: the resume
// index, run ids through the routes that take them, the cancel request, and the
// query parameters of run and session listings. Each checks what a decoder
// promises, not only that it does not panic: a client's mistake is a 4xx with a
// JSON detail, never a 5xx, and what is accepted is what was sent.

// refusal checks that w holds a client error: a 4xx with a JSON detail.
func refusal(t *testing.T, w *httptest.ResponseRecorder, what string) {
	t.Helper()
	if w.Code < 400 || w.Code >= 500 {
		t.Fatalf("%s: answered %d, want a 4xx: %s", what, w.Code, w.Body)
	}
	var out map[string]any
	if json.Unmarshal(w.Body.Bytes(), &out) != nil {
		t.Fatalf("%s: refusal not JSON: %s", what, w.Body)
	}
	if d, _ := out["detail"].(string); d == "" {
		t.Fatalf("%s: refusal without a detail: %s", what, w.Body)
	}
}

// eventIndex reports the index an event index's text names, as the resume routes
// read it: a decimal integer from -1, under MaxInt32, spaces around ignored.
func eventIndex(v string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	return n, err == nil && n >= -1 && n < math.MaxInt32
}

// FuzzResumeFrom: the resume index comes from Last-Event-ID when it is not blank,
// else from last_event_index (the query on a GET, the form on a POST); a valid
// index i resumes at i+1, no index at 0, and anything else is a 400 with a detail.
func FuzzResumeFrom(f *testing.F) {
	for _, seed := range []struct {
		post                bool
		header, query, body string
	}{
		{false, "41", "", ""},
		{false, " 7 ", "3", ""},
		{false, "", "-1", ""},
		{false, "", "", ""},
		{false, "-2", "", ""},
		{false, "2147483647", "", ""},
		{false, "1e3", "", ""},
		{false, "", "%zz", ""},
		{true, "", "", "last_event_index=12"},
		{true, "", "5", "last_event_index="},
		{true, "", "", "last_event_index=x&session_id=s"},
		{true, "\t", "", "last_event_index=%00"},
		{true, "", "", "%"},
	} {
		f.Add(seed.post, seed.header, seed.query, seed.body)
	}
	s := &Server{cfg: Config{MaxBodyBytes: 1 << 16}, log: slog.New(&errorLog{})}
	f.Fuzz(func(t *testing.T, post bool, header, query, body string) {
		method := http.MethodGet
		if post {
			method = http.MethodPost
		}
		r := httptest.NewRequest(method, "/workflows/w/runs/r/resume", strings.NewReader(body))
		r.URL.RawQuery = "last_event_index=" + url.QueryEscape(query)
		if post {
			r.Header.Set("Content-Type", formType)
		}
		if !strings.ContainsAny(header, "\r\n\x00") {
			r.Header.Set("Last-Event-ID", header)
		}
		w := httptest.NewRecorder()
		from, err := s.resumeFrom(w, r)
		what := method + " Last-Event-ID " + strconv.Quote(r.Header.Get("Last-Event-ID")) + " query " + strconv.Quote(query) + " body " + strconv.Quote(body)
		if err != nil {
			s.answerError(w, err)
			refusal(t, w, what)
			return
		}
		v := strings.TrimSpace(r.Header.Get("Last-Event-ID"))
		if v == "" {
			v = query
			if post {
				v = r.Form.Get("last_event_index")
			}
		}
		want := 0
		if strings.TrimSpace(v) != "" {
			n, ok := eventIndex(v)
			if !ok {
				t.Fatalf("%s: accepted %q as index, resuming at %d", what, v, from)
			}
			want = n + 1
		}
		if from != want {
			t.Fatalf("%s: resumes at %d, want %d", what, from, want)
		}
	})
}

// fuzzServer is a server without a store serving one quick workflow, for targets
// that send whole requests through its handler.
func fuzzServer(f *testing.F) http.Handler {
	srv, err := New(Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, Logger: slog.New(&errorLog{})})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		srv.Shutdown(ctx)
	})
	return srv.Handler()
}

// serve sends a request through h and returns the answer.
func serve(h http.Handler, method, target, contentType, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// routable reports whether net/http's ServeMux routes a request for method and
// path to the route of the same shape with id as its run_id: it cleans the path
// first, so that some ids ("." and "..", "/", the empty one) are redirected or
// not found instead. Such ids are accepted in run requests (a session_id "/"
// is), but cannot be named in a path; see the fault-suite report.
func routable(method, path, id string) bool {
	mux := http.NewServeMux()
	got := "\x00none"
	read := func(_ http.ResponseWriter, r *http.Request) { got = r.PathValue("run_id") }
	for _, pattern := range []string{"POST /runs/{run_id}/cancel", "POST /workflows/{id}/runs/{run_id}/cancel",
		"GET /runs/{run_id}", "GET /workflows/{id}/runs/{run_id}"} {
		mux.HandleFunc(pattern, read)
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w.Code == http.StatusOK && got == id
}

// FuzzRunID: a run id, sent escaped in the path of every route that takes one,
// is read back as sent: a cancel of an unknown id answers 200 with that very id
// (the intent kept, PENDING, not known); a read answers 404 naming it. An id no
// store can keep (too long, not UTF-8, a NUL) is refused with 422 by every route;
// no id is a 5xx. The cancel's wait parameter is a boolean or a 422.
func FuzzRunID(f *testing.F) {
	for _, seed := range []struct{ id, wait string }{
		{"01a2343d-4405-7e88-ae6c-0f0081ba59d9", ""},
		{"r", "false"},
		{"r", "0"},
		{"r", "F"},
		{"r", "maybe"},
		{"a/b", "false"},
		{"a b?c#d%e", "false"},
		{"..", "false"},
		{".", "false"},
		{"", "false"},
		{"a\x00b", "false"},
		{"\xff", "false"},
		{"é✓", "false"},
		{strings.Repeat("x", MaxIDBytes), "false"},
		{strings.Repeat("x", MaxIDBytes+1), "false"},
	} {
		f.Add(seed.id, seed.wait)
	}
	h := fuzzServer(f)
	f.Fuzz(func(t *testing.T, id, wait string) {
		escaped := url.PathEscape(id)
		acceptable := checkID("run_id", id) == nil
		_, waitErr := strconv.ParseBool(wait)
		for _, path := range []string{"/runs/" + escaped + "/cancel", "/workflows/quick/runs/" + escaped + "/cancel"} {
			valid := acceptable && routable(http.MethodPost, path, id)
			// wait=true waits for the run to end: on an id no run has, the intent
			// is kept and the answer is at once, as with wait=false.
			w := serve(h, http.MethodPost, path+"?wait="+url.QueryEscape(wait), "", "")
			what := "POST " + path + "?wait=" + strconv.Quote(wait)
			switch {
			case w.Code >= 500:
				t.Fatalf("%s: %d: %s", what, w.Code, w.Body)
			case valid && wait != "" && waitErr != nil:
				if w.Code != http.StatusUnprocessableEntity {
					t.Fatalf("%s: %d, want 422 for wait: %s", what, w.Code, w.Body)
				}
				refusal(t, w, what)
			case valid:
				var ans struct {
					RunID  string `json:"run_id"`
					Status string `json:"status"`
					Known  *bool  `json:"known"`
				}
				if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &ans) != nil ||
					ans.RunID != id || ans.Status != "PENDING" || ans.Known == nil || *ans.Known {
					t.Fatalf("%s: %d %s, want 200 with run_id %q, PENDING, not known", what, w.Code, w.Body, id)
				}
			case w.Code != http.StatusTemporaryRedirect && w.Code != http.StatusPermanentRedirect:
				refusal(t, w, what)
			}
		}
		for _, path := range []string{"/runs/" + escaped, "/workflows/quick/runs/" + escaped} {
			valid := acceptable && routable(http.MethodGet, path, id)
			w := serve(h, http.MethodGet, path, "", "")
			switch {
			case w.Code >= 500:
				t.Fatalf("GET %s: %d: %s", path, w.Code, w.Body)
			case valid && w.Code != http.StatusNotFound:
				t.Fatalf("GET %s: %d, want 404 for an unknown run: %s", path, w.Code, w.Body)
			case valid:
				refusal(t, w, "GET "+path)
			case w.Code != http.StatusTemporaryRedirect && w.Code != http.StatusPermanentRedirect:
				refusal(t, w, "GET "+path)
			}
		}
	})
}

// FuzzRunQuery: a run listing's query is read as sent (status in any case, limit
// and offset non-negative integers, limit 0 meaning 100) or refused with 422.
func FuzzRunQuery(f *testing.F) {
	for _, seed := range []string{"", "status=cancelled", "status=RUNNING&limit=5&offset=10", "limit=-1", "offset=x",
		"status=done", "limit=99999999999999999999", "session_id=s&limit=0", "%zz", "limit=1&limit=x"} {
		f.Add(seed)
	}
	s := &Server{log: slog.New(&errorLog{})}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest(http.MethodGet, "/workflows/w/runs", nil)
		r.URL.RawQuery = raw
		q, err := runQuery(r)
		if err != nil {
			w := httptest.NewRecorder()
			s.answerError(w, err)
			refusal(t, w, "query "+strconv.Quote(raw))
			return
		}
		v := r.URL.Query()
		if string(q.Status) != strings.ToUpper(v.Get("status")) || q.SessionID != v.Get("session_id") {
			t.Fatalf("query %q: read %+v", raw, q)
		}
		if q.Limit <= 0 || q.Offset < 0 {
			t.Fatalf("query %q: limit %d, offset %d", raw, q.Limit, q.Offset)
		}
		if n, _ := strconv.Atoi(v.Get("limit")); n != 0 && q.Limit != n {
			t.Fatalf("query %q: limit %d", raw, q.Limit)
		}
	})
}

// FuzzSessionQuery: GET /sessions's query is read as sent (filters verbatim, a
// known order, limit and page within bounds, the offset of that page) or refused
// with 422; through the handler, no query is a 5xx, and one the decoder refuses is
// refused.
func FuzzSessionQuery(f *testing.F) {
	for _, seed := range []string{"", "user_id=u&type=workflow", "type=agent&sort_by=updated_at&sort_order=ASC",
		"type=team", "type=x", "sort_by=name", "sort_order=up", "limit=0", "limit=1000&page=10000000", "page=0",
		"page=-1", "limit=20&page=99999999999", "session_name=%25", "component_id=c&db_id=d&table=t", "%zz&limit=5"} {
		f.Add(seed)
	}
	s := &Server{log: slog.New(&errorLog{})}
	h := fuzzServer(f)
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest(http.MethodGet, "/sessions", nil)
		r.URL.RawQuery = raw
		what := "GET /sessions?" + raw
		q, page, _, err := sessionQuery(r)
		if err != nil {
			w := httptest.NewRecorder()
			s.answerError(w, err)
			refusal(t, w, what)
		} else {
			v := r.URL.Query()
			if q.UserID != v.Get("user_id") || q.ComponentID != v.Get("component_id") || q.Name != v.Get("session_name") {
				t.Fatalf("%s: filters read as %+v", what, q)
			}
			if q.Limit < 1 || q.Limit > maxSessionLimit || page < 1 || page > maxSessionPage || q.Offset != (page-1)*q.Limit {
				t.Fatalf("%s: limit %d, page %d, offset %d", what, q.Limit, page, q.Offset)
			}
		}
		r = httptest.NewRequest(http.MethodGet, "/sessions", nil)
		r.URL.RawQuery = raw
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		// The guard refuses some queries first (a *_id that no store can keep).
		switch {
		case w.Code >= 300:
			refusal(t, w, what+" through the handler")
		case err != nil:
			t.Fatalf("%s through the handler: %d, though the decoder refused it: %v", what, w.Code, err)
		}
	})
}
