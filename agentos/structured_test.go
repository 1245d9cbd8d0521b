package agentos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
)

// serveAgents serves agents over a SQLite store, with a recorder, and returns the
// server's URL and its store.
func serveAgents(t *testing.T, agents ...*agent.Agent) (string, store.Store) {
	t.Helper()
	return serveConfig(t, Config{Agents: agents})
}

// serveConfig serves cfg over a SQLite store, with a recorder, and returns the
// server's URL and its store.
func serveConfig(t *testing.T, cfg Config) (string, store.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	rec := store.NewRecorder(st, store.RecorderOptions{})
	cfg.Store, cfg.Recorder = st, rec
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		ts.Close()
		rec.Close()
		st.Close()
	})
	return ts.URL, st
}

// call sends a request and decodes its JSON answer into v.
func call(t *testing.T, method, u, contentType string, body io.Reader, v any) int {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %d, body not JSON: %q", method, u, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

// TestStructuredContentAnswered checks that a structured run's content is the JSON
// object itself in every run answer: the run's own, a stored run's, a listing's and
// a session's.
func TestStructuredContentAnswered(t *testing.T) {
	a := &agent.Agent{Name: "Extractor", Model: scripted.New(`{"city": "Paris", "days": 3}`),
		Output: agent.OutputJSON("Trip", []byte(`{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city","days"]}`))}
	plain := &agent.Agent{Name: "Plain", Model: scripted.New(`{"not": "structured"}`)}
	base, st := serveAgents(t, a, plain)

	type answer struct {
		RunID       string          `json:"run_id"`
		SessionID   string          `json:"session_id"`
		Status      string          `json:"status"`
		Content     json.RawMessage `json:"content"`
		ContentType string          `json:"content_type"`
	}
	var ran answer
	body := url.Values{"message": {"plan a trip"}, "stream": {"false"}}.Encode()
	if code := call(t, "POST", base+"/agents/extractor/runs", "application/x-www-form-urlencoded", strings.NewReader(body), &ran); code != 200 {
		t.Fatalf("run: %d", code)
	}
	want := `{"city":"Paris","days":3}`
	check := func(where string, got answer) {
		t.Helper()
		if string(got.Content) != want || got.ContentType != "Trip" || got.Status != "COMPLETED" {
			t.Errorf("%s: content %s (type %q, status %s), want the object %s of type Trip", where, got.Content, got.ContentType, got.Status, want)
		}
	}
	check("run answer", ran)

	// The stored run keeps the content's type (the store may be written a moment
	// after the answer).
	eventually.Succeeds(t, 10*time.Second, func() error {
		rec, err := st.GetRun(context.Background(), ran.RunID)
		switch {
		case err != nil:
			return err
		case rec.Status != run.StatusCompleted:
			return fmt.Errorf("stored status %s", rec.Status)
		case rec.Output.Content != want || rec.Output.ContentType != "Trip":
			return fmt.Errorf("stored output: content %q, type %q", rec.Output.Content, rec.Output.ContentType)
		}
		return nil
	})
	var stored answer
	call(t, "GET", base+"/runs/"+ran.RunID, "", nil, &stored)
	check("GET /runs/{id}", stored)

	var listed []answer
	call(t, "GET", base+"/agents/extractor/runs", "", nil, &listed)
	if len(listed) != 1 {
		t.Fatalf("listing: %d runs, want 1", len(listed))
	}
	check("listing", listed[0])

	var inSession answer
	call(t, "GET", base+"/sessions/"+ran.SessionID+"/runs/"+ran.RunID, "", nil, &inSession)
	check("session run", inSession)

	// A text answer stays a JSON string, even when it reads as JSON.
	var text answer
	call(t, "POST", base+"/agents/plain/runs", "application/x-www-form-urlencoded", strings.NewReader(body), &text)
	var s string
	if err := json.Unmarshal(text.Content, &s); err != nil || s != `{"not": "structured"}` {
		t.Errorf("text run: content %s, want the JSON string of the text", text.Content)
	}
}
