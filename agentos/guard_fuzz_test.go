package agentos

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// guardUnderFuzz is the guard around a mux whose routes only say they were
// reached, on a loopback listener with one allowed origin and one allowed host.
func guardUnderFuzz(t testing.TB) http.Handler {
	s := &Server{cfg: Config{BodyTimeout: -1, CORSOrigins: []string{"https://app.example"},
		AllowedHosts: []string{"kern.internal"}}}
	s.mux = http.NewServeMux()
	reached := func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"reached": true})
	}
	for _, p := range []string{"GET /runs/{run_id}", "POST /runs/{run_id}/cancel", "GET /sessions",
		"DELETE /sessions/{session_id}", "POST /workflows/{workflow_id}/runs"} {
		s.mux.HandleFunc(p, reached)
	}
	h, err := s.guard(jsonFallback(s.mux))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// FuzzGuard: whatever the method, path, query, Host, Origin and Sec-Fetch-Site of
// a request, the guard never panics, answers every refusal in JSON, and lets no
// request reach a route with an id out of bounds, a Host that is not loopback's
// or allowed, or a state-changing cross-site browser request.
func FuzzGuard(f *testing.F) {
	for _, seed := range []struct{ method, target, host, origin, site string }{
		{"POST", "/workflows/w/runs", "127.0.0.1:7777", "", ""},
		{"POST", "/workflows/w/runs", "localhost:7777", "http://localhost:7777", "same-origin"},
		{"POST", "/workflows/w/runs", "127.0.0.1:7777", "http://evil.example", ""},
		{"POST", "/workflows/w/runs", "127.0.0.1:7777", "", "cross-site"},
		{"POST", "/workflows/w/runs", "127.0.0.1:7777", "https://app.example", "cross-site"},
		{"OPTIONS", "/workflows/w/runs", "127.0.0.1:7777", "https://app.example", ""},
		{"DELETE", "/sessions/s", "evil.example", "", ""},
		{"GET", "/runs/r", "[::1]:7777", "null", "cross-site"},
		{"GET", "/runs/" + strings.Repeat("x", MaxIDBytes+1), "127.0.0.1", "", ""},
		{"POST", "/runs/a%00b/cancel", "kern.internal", "", ""},
		{"GET", "/sessions?user_id=%ff", "127.0.0.1", "", ""},
		{"GET", "//runs/r", "127.0.0.1", "", ""},
		{"PUT", "/runs/r", "LOCALHOST.", "http://LOCALHOST.", "same-site"},
	} {
		f.Add(seed.method, seed.target, seed.host, seed.origin, seed.site)
	}
	h := guardUnderFuzz(f)
	loopback := withListener(context.Background(), fakeListener{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7777}})
	f.Fuzz(func(t *testing.T, method, target, host, origin, site string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || method == "" {
			return
		}
		req := (&http.Request{Method: method, URL: u, Host: host, Header: http.Header{}}).WithContext(loopback)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		if method == http.MethodOptions && origin != "" {
			req.Header.Set("Access-Control-Request-Method", "POST")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); rec.Code != http.StatusNoContent && err != nil {
			t.Fatalf("%d: body %q not JSON", rec.Code, rec.Body)
		}
		if rec.Code >= 300 && v["detail"] == nil {
			t.Fatalf("%d without a detail: %q", rec.Code, rec.Body)
		}
		if v["reached"] != true {
			return
		}
		if !loopbackHost(host, map[string]bool{"kern.internal": true}) {
			t.Fatalf("Host %q reached a route", host)
		}
		for _, seg := range strings.Split(u.Path, "/") {
			if err := checkID("segment", seg); err != nil {
				t.Fatalf("path %q reached a route: %v", u.Path, err)
			}
		}
		for name, vs := range u.Query() {
			for _, val := range vs {
				if err := checkID(name, val); strings.HasSuffix(name, "_id") && err != nil {
					t.Fatalf("query %q reached a route: %v", u.RawQuery, err)
				}
			}
		}
		unsafe := method != "GET" && method != "HEAD" && method != "OPTIONS"
		crossSite := site == "cross-site" || (site == "" && origin == "http://evil.example")
		if unsafe && crossSite && origin != "https://app.example" {
			t.Fatalf("%s from %q (Sec-Fetch-Site %q) reached a route", method, origin, site)
		}
	})
}

// FuzzBearerToken: an Authorization header yields a token only under the Bearer
// scheme, in any case, and the token is what follows the spaces after it.
func FuzzBearerToken(f *testing.F) {
	for _, seed := range []string{"Bearer k", "bearer k", "BEARER  k", "Basic k", "Bearer", "Bearerk", "", " Bearer k", "Bearer \x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		token, ok := bearerToken(header)
		if !ok {
			if token != "" {
				t.Fatalf("%q: no scheme, token %q", header, token)
			}
			return
		}
		if len(header) < 7 || !strings.EqualFold(header[:6], "Bearer") || header[6] != ' ' ||
			strings.HasPrefix(token, " ") || !strings.HasSuffix(header, token) {
			t.Fatalf("%q: token %q", header, token)
		}
	})
}
