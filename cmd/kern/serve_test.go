package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestServeGuardsBrowsers: kern serve on loopback refuses a cross-site POST and a
// rebound Host, answers an allowed origin's preflight, and serves a program (no
// Origin) as before.
func TestServeGuardsBrowsers(t *testing.T) {
	t.Parallel()
	_, url := startServe(t, sqliteDB(t), "--cors-origins", "https://app.example", "--body-timeout", "5s")
	for _, c := range []struct {
		name, method, path string
		hdr                []string
		host               string
		want               int
	}{
		{"program", "GET", "/workflows", nil, "", 200},
		{"cross-site POST", "POST", "/workflows/article-creation-workflow/runs",
			[]string{"Origin", "http://evil.example"}, "", 403},
		{"rebound Host", "GET", "/workflows", nil, "evil.example", 421},
		{"allowed preflight", "OPTIONS", "/workflows/article-creation-workflow/runs",
			[]string{"Origin", "https://app.example", "Access-Control-Request-Method", "POST"}, "", 204},
	} {
		req, err := http.NewRequest(c.method, url+c.path, strings.NewReader("message=hi&stream=false"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(c.hdr); i += 2 {
			req.Header.Set(c.hdr[i], c.hdr[i+1])
		}
		if c.host != "" {
			req.Host = c.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}
}

// TestServeAdmission: --max-streams and --max-runs reach the server: beyond them
// a run is answered 503 with Retry-After, and a cancel still gets through.
func TestServeAdmission(t *testing.T) {
	t.Parallel()
	_, url := startServe(t, sqliteDB(t), "--max-runs", "1", "--max-streams", "1", "--scripted-pace", "1h")
	runs := url + "/workflows/article-creation-workflow/runs"
	post := func(body string) *http.Response {
		t.Helper()
		resp, err := http.Post(runs, "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	stream := post("message=hi")
	defer stream.Body.Close()
	if stream.StatusCode != http.StatusOK {
		t.Fatalf("first stream: %d", stream.StatusCode)
	}
	id := firstRunID(t, bufio.NewReader(stream.Body))
	for _, c := range []struct{ body, limit string }{
		{"message=hi", "max streams"},
		{"message=hi&stream=false", "max runs"},
	} {
		resp := post(c.body)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
			!strings.Contains(string(b), c.limit) {
			t.Errorf("%s beyond the limits: %d Retry-After %q %s, want 503 naming %q",
				c.body, resp.StatusCode, resp.Header.Get("Retry-After"), b, c.limit)
		}
	}
	resp, err := http.Post(url+"/runs/"+id+"/cancel", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"CANCELLED"`) {
		t.Fatalf("cancel while saturated: %d %s", resp.StatusCode, b)
	}
}

// firstRunID reads an SSE stream up to its first event and returns its run_id.
func firstRunID(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read stream: %v", err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var ev struct {
				RunID string `json:"run_id"`
			}
			if err := json.Unmarshal([]byte(data), &ev); err != nil || ev.RunID == "" {
				t.Fatalf("first event %q: %v", data, err)
			}
			return ev.RunID
		}
	}
}
