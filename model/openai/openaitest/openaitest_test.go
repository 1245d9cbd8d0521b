package openaitest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/kern-dev/kern/model/openai/openaitest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestFixtures checks the fixtures against the framing of PROTOCOLS.md §1.4 and §2.2:
// Responses events have an event line equal to their JSON type and sequence numbers
// from 0 and no [DONE]; Chat events are data lines only and end with [DONE] (except
// the stream cut by an error).
func TestFixtures(t *testing.T) {
	t.Parallel()
	names := openaitest.Fixtures()
	if len(names) < 9 {
		t.Fatalf("fixtures %v", names)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			text := string(openaitest.FixtureBytes(name))
			if !strings.HasSuffix(text, "\n\n") {
				t.Fatal("the last event does not end with a blank line")
			}
			events := strings.Split(strings.TrimSuffix(text, "\n\n"), "\n\n")
			for i, ev := range events {
				lines := strings.Split(ev, "\n")
				data := strings.TrimPrefix(lines[len(lines)-1], "data: ")
				if strings.HasPrefix(name, "chat_") {
					if len(lines) != 1 || !strings.HasPrefix(ev, "data: ") {
						t.Fatalf("event %d: %q", i, ev)
					}
					if data == "[DONE]" {
						if i != len(events)-1 {
							t.Fatalf("[DONE] is event %d of %d", i, len(events))
						}
						continue
					}
					if !json.Valid([]byte(data)) {
						t.Fatalf("event %d: invalid JSON %s", i, data)
					}
					continue
				}
				var v struct {
					Type string `json:"type"`
					Seq  *int   `json:"sequence_number"`
				}
				if len(lines) != 2 || json.Unmarshal([]byte(data), &v) != nil {
					t.Fatalf("event %d: %q", i, ev)
				}
				if lines[0] != "event: "+v.Type || v.Seq == nil || *v.Seq != i {
					t.Fatalf("event %d: event line %q, type %q, sequence number %v", i, lines[0], v.Type, v.Seq)
				}
			}
		})
	}
}

func post(t *testing.T, srv *openaitest.Server, path, key, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestServer(t *testing.T) {
	t.Parallel()
	const body = `{"model":"gpt-5.2","input":"hi","stream":true}`
	tests := []struct {
		name        string
		replies     []openaitest.Reply
		path, key   string
		body        string
		status      int
		contentType string
		contains    string
	}{
		{"stream", []openaitest.Reply{openaitest.Fixture("responses_text.sse")}, "/responses", openaitest.APIKey, body, 200, "text/event-stream; charset=utf-8", "event: response.completed\n"},
		{"no key", nil, "/responses", "", body, 401, "application/json; charset=utf-8", "You didn't provide an API key"},
		{"wrong key", nil, "/chat/completions", "sk-wrong", body, 401, "application/json; charset=utf-8", `"code":"invalid_api_key"`},
		{"not JSON", nil, "/responses", openaitest.APIKey, "{", 400, "application/json; charset=utf-8", "could not parse the JSON body"},
		{"unknown path", nil, "/embeddings", openaitest.APIKey, body, 404, "application/json; charset=utf-8", "Invalid URL (POST /v1/embeddings)"},
		{"nothing queued", nil, "/responses", openaitest.APIKey, body, 400, "application/json; charset=utf-8", "no reply queued"},
		{"rate limited", []openaitest.Reply{openaitest.RateLimited(1500 * 1e6)}, "/responses", openaitest.APIKey, body, 429, "application/json; charset=utf-8", "rate_limit_exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := openaitest.NewServer(t)
			srv.Enqueue(tt.replies...)
			resp, got := post(t, srv, tt.path, tt.key, tt.body)
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != tt.contentType || !strings.Contains(got, tt.contains) {
				t.Fatalf("HTTP %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), got)
			}
			if resp.Header.Get("x-request-id") == "" {
				t.Error("no x-request-id")
			}
			if tt.name == "rate limited" && (resp.Header.Get("retry-after-ms") != "1500" || resp.Header.Get("Retry-After") != "2") {
				t.Errorf("headers %v", resp.Header)
			}
			if tt.name == "stream" && got != string(openaitest.FixtureBytes("responses_text.sse")) {
				t.Error("the stream differs from its fixture")
			}
			reqs := srv.Requests()
			if len(reqs) != 1 || reqs[0].Raw == nil {
				t.Fatalf("requests %+v", reqs)
			}
			if tt.body == body && reqs[0].Body["model"] != "gpt-5.2" {
				t.Errorf("body %+v", reqs[0].Body)
			}
		})
	}
}

func TestCutAfter(t *testing.T) {
	t.Parallel()
	srv := openaitest.NewServer(t)
	srv.Enqueue(openaitest.Fixture("chat_text.sse").CutAfter(2))
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/chat/completions", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+openaitest.APIKey)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil || strings.Count(string(b), "\n\n") != 2 {
		t.Fatalf("read %s, error %v; want 2 events and an error", strconv.Quote(string(b)), err)
	}
}
