package agentos

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kern-dev/kern/workflow"
)

// samplePath fills a pattern's wildcards with sample values.
func samplePath(pattern string) string {
	return pathParam.ReplaceAllStringFunc(pattern, func(m string) string {
		if strings.Contains(m, "workflow_id") {
			return "story"
		}
		return "x1"
	})
}

func TestOpenAPI(t *testing.T) {
	for _, key := range []string{"", "sekret"} {
		t.Run("key="+key, func(t *testing.T) {
			e := newEnv(t, Config{Workflows: []*workflow.Workflow{slowWorkflow("Story")}, SecurityKey: key})
			auth := []string{"Authorization", "Bearer " + key}
			code, doc := e.do("GET", "/openapi.json", "", "", auth...)
			if code != http.StatusOK || doc["openapi"] != "3.1.0" {
				t.Fatalf("GET /openapi.json: %d, openapi %v", code, doc["openapi"])
			}
			paths, _ := doc["paths"].(map[string]any)
			ops := 0
			for _, item := range paths {
				ops += len(item.(map[string]any))
			}
			if ops != len(e.srv.table) {
				t.Errorf("%d operations in the document, %d routes in the table", ops, len(e.srv.table))
			}
			ids := map[string]bool{}
			for _, rt := range e.srv.table {
				// The mux serves the route...
				req := httptest.NewRequest(rt.method, samplePath(rt.pattern), nil)
				if _, p := e.srv.mux.Handler(req); p != rt.method+" "+rt.pattern {
					t.Errorf("%s %s: the mux matched %q", rt.method, rt.pattern, p)
				}
				// ...and the document describes it, with its answers.
				op, _ := paths[rt.pattern].(map[string]any)[strings.ToLower(rt.method)].(map[string]any)
				if op == nil {
					t.Errorf("%s %s missing from the document", rt.method, rt.pattern)
					continue
				}
				id, _ := op["operationId"].(string)
				if id == "" || ids[id] {
					t.Errorf("%s %s: operationId %q empty or not unique", rt.method, rt.pattern, id)
				}
				ids[id] = true
				resps, _ := op["responses"].(map[string]any)
				if len(resps) == 0 {
					t.Errorf("%s %s: no responses", rt.method, rt.pattern)
				}
				_, has401 := resps["401"]
				if key != "" && has401 == rt.public {
					t.Errorf("%s %s: 401 listed %v, public %v", rt.method, rt.pattern, has401, rt.public)
				}
				if n := strings.Count(rt.pattern, "{"); n > 0 {
					if params, _ := op["parameters"].([]any); len(params) < n {
						t.Errorf("%s %s: %d parameters", rt.method, rt.pattern, len(params))
					}
				}
			}
			b, _ := json.Marshal(doc)
			s := string(b)
			for _, want := range []string{`"text/event-stream"`, `"multipart/form-data"`, `"application/x-www-form-urlencoded"`,
				`"#/components/schemas/Error"`, `"detail"`, `"Retry-After"`} {
				if !strings.Contains(s, want) {
					t.Errorf("document lacks %s", want)
				}
			}
			if _, secured := doc["security"]; secured != (key != "") || strings.Contains(s, `"securitySchemes"`) != (key != "") {
				t.Errorf("key %q: security %v", key, secured)
			}
			// The schemas every response names are defined.
			schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
			for _, rt := range e.srv.table {
				for _, r := range rt.responses {
					if _, ok := schemas[r.schema]; r.schema != "" && !ok {
						t.Errorf("%s %s: schema %q undefined", rt.method, rt.pattern, r.schema)
					}
				}
			}
		})
	}
}

func TestDocsPage(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{slowWorkflow("Story")}, SecurityKey: "k"})
	for _, path := range []string{"/docs", "/openapi.json"} {
		if code, _ := e.do("GET", path, "", ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the key: %d, want 401", path, code)
		}
	}
	req, _ := http.NewRequest("GET", e.url("/docs"), nil)
	req.Header.Set("Authorization", "Bearer k")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	page := html.UnescapeString(string(b))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, rt := range e.srv.table {
		if !strings.Contains(page, `id="`+operationID(rt)+`"`) || !strings.Contains(page, "<code>"+rt.pattern+"</code>") {
			t.Errorf("docs page lacks %s %s", rt.method, rt.pattern)
		}
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("docs page loads something from outside")
	}
}
