package main

import (
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
