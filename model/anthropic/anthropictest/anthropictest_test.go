package anthropictest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/kern-dev/kern/model/anthropic/anthropictest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestValidation checks that the fake refuses what the API refuses, with the API's
// status, error envelope and request-id header, without using a scripted reply.
func TestValidation(t *testing.T) {
	t.Parallel()
	valid := `{"model":"m","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`
	auth := map[string]string{"x-api-key": "k", "anthropic-version": "2023-06-01"}
	tests := []struct {
		name    string
		method  string
		path    string
		header  map[string]string
		body    string
		status  int
		errType string
	}{
		{"valid", "POST", "/v1/messages", auth, valid, 200, ""},
		{"bearer", "POST", "/v1/messages", map[string]string{"Authorization": "Bearer k", "anthropic-version": "2026-10-21"}, valid, 200, ""},
		{"string system and blocks", "POST", "/v1/messages", auth, `{"model":"m","max_tokens":10,"stream":true,"system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`, 200, ""},
		{"wrong path", "POST", "/v1/complete", auth, valid, 404, "not_found_error"},
		{"no key", "POST", "/v1/messages", map[string]string{"anthropic-version": "2023-06-01"}, valid, 401, "authentication_error"},
		{"wrong key", "POST", "/v1/messages", map[string]string{"x-api-key": "bad", "anthropic-version": "2023-06-01"}, valid, 401, "authentication_error"},
		{"no version", "POST", "/v1/messages", map[string]string{"x-api-key": "k"}, valid, 400, "invalid_request_error"},
		{"no max_tokens", "POST", "/v1/messages", auth, `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request_error"},
		{"not JSON", "POST", "/v1/messages", auth, `{"model":`, 400, "invalid_request_error"},
		{"temperature on 2026-10-21", "POST", "/v1/messages", map[string]string{"x-api-key": "k", "anthropic-version": "2026-10-21"},
			`{"model":"m","max_tokens":10,"stream":true,"temperature":0.5,"messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request_error"},
		{"tool input not an object", "POST", "/v1/messages", auth,
			`{"model":"m","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":"x"}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"r"}]}]}`, 400, "invalid_request_error"},
		{"tool_use without result", "POST", "/v1/messages", auth,
			`{"model":"m","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]},{"role":"user","content":"no result"}]}`, 400, "invalid_request_error"},
		{"tool_result not first", "POST", "/v1/messages", auth,
			`{"model":"m","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]},{"role":"user","content":[{"type":"text","text":"x"},{"type":"tool_result","tool_use_id":"t"}]}]}`, 400, "invalid_request_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := anthropictest.NewServer(anthropictest.Text("ok"))
			srv.APIKey = "k"
			defer srv.Close()
			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if resp.Header.Get("request-id") == "" {
				t.Error("no request-id header")
			}
			if tt.status == 200 {
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
					t.Errorf("Content-Type %q", ct)
				}
				if string(body) != anthropictest.Text("ok").Body {
					t.Errorf("body %q", body)
				}
				return
			}
			var e struct {
				Type  string `json:"type"`
				Error struct {
					Type    string `json:"type"`
					Message string `json:"message"`
				} `json:"error"`
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Type != "error" || e.Error.Type != tt.errType || e.Error.Message == "" || e.RequestID != resp.Header.Get("request-id") {
				t.Errorf("error body %s (%v), want an %s envelope with the request id", body, err, tt.errType)
			}
			if n := len(srv.Requests()); n != 1 {
				t.Errorf("%d requests recorded", n)
			}
		})
	}
}

func TestScriptExhausted(t *testing.T) {
	t.Parallel()
	srv := anthropictest.NewServer()
	defer srv.Close()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/v1/messages",
		strings.NewReader(`{"model":"m","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("x-api-key", "k")
	req.Header.Set("anthropic-version", "2023-06-01")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Errorf("status %d, want 500", resp.StatusCode)
	}
	srv.Enqueue(anthropictest.Text("late"))
	req, _ = http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/v1/messages",
		strings.NewReader(`{"model":"m","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("x-api-key", "k")
	req.Header.Set("anthropic-version", "2023-06-01")
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || !strings.Contains(string(b), `"late"`) {
		t.Errorf("status %d body %s", resp.StatusCode, b)
	}
}
