package anthropictest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/kern-dev/kern/model/anthropic/anthropictest"
)

// TestSettingsChecks posts bodies with sampling, tool and thinking fields: the fake
// refuses, with a 400 invalid_request_error whose message starts with the field, what
// the API refuses, and takes the rest.
func TestSettingsChecks(t *testing.T) {
	t.Parallel()
	const (
		msgs     = `"messages":[{"role":"user","content":"hi"}]`
		tools    = `"tools":[{"name":"get_weather","input_schema":{"type":"object","properties":{}}}]`
		thinking = `"thinking":{"type":"enabled","budget_tokens":1024}`
		// a conversation whose last assistant message made a tool call
		toolTurn = `"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[%s{"type":"tool_use","id":"t1","name":"get_weather","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"sunny"}]}]`
	)
	withBlock := func(block string) string { return strings.Replace(toolTurn, "%s", block, 1) }
	cases := []struct {
		fields string
		want   string // the start of the error message; "" accepted
	}{
		{`"temperature":1,"top_p":0,"top_k":5,"stop_sequences":["END"],` + msgs, ""},
		{`"temperature":1.2,` + msgs, "temperature"},
		{`"top_p":-1,` + msgs, "top_p"},
		{`"seed":3,` + msgs, "seed"},
		{`"tool_choice":{"type":"any"},` + msgs, "tool_choice"},
		{`"tool_choice":{"type":"tool","name":"get_time"},` + tools + `,` + msgs, "tool_choice.tool.name"},
		{`"tool_choice":{"type":"tool","name":"get_weather","disable_parallel_tool_use":true},` + tools + `,` + msgs, ""},
		{`"tool_choice":{"type":"sometimes"},` + tools + `,` + msgs, "tool_choice.type"},
		{`"tools":[{"name":"f","input_schema":{"type":"array"}}],` + msgs, "tools.0"},
		{thinking + `,` + msgs, ""},
		{`"thinking":{"type":"enabled","budget_tokens":512},` + msgs, "thinking.enabled.budget_tokens"},
		{`"thinking":{"type":"enabled","budget_tokens":4096},` + msgs, "`max_tokens`"},
		{thinking + `,"temperature":0.5,` + msgs, "`temperature`"},
		{thinking + `,"top_p":0.5,` + msgs, "`top_p`"},
		{thinking + `,"top_k":5,` + msgs, "`top_k`"},
		{thinking + `,"tool_choice":{"type":"any"},` + tools + `,` + msgs, "Thinking may not be enabled"},
		{thinking + `,` + tools + `,` + withBlock(""), "messages.1.content.0.type"},
		{thinking + `,` + tools + `,` + withBlock(`{"type":"thinking","thinking":"hmm"},`), "messages.1.content.0.thinking.signature"},
		{thinking + `,` + tools + `,` + withBlock(`{"type":"thinking","thinking":"hmm","signature":"s"},`), ""},
		{thinking + `,` + tools + `,` + withBlock(`{"type":"redacted_thinking","data":"xyz"},`), ""},
		{`"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},{"type":"document","source":{"type":"text","media_type":"text/plain","data":"hi"}},{"type":"document","source":{"type":"url","url":"https://x.test/a.pdf"}}]}]`, ""},
		{`"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/bmp","data":"Qk0="}}]}]`, "messages.0.content.0.image.source.base64.media_type"},
		{`"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"not base64!"}}]}]`, "messages.0.content.0.image.source.base64.data"},
		{`"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"text/plain","data":"aGk="}}]}]`, "messages.0.content.0.document.source.base64.media_type"},
		{`"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"file:///a.png"}}]}]`, "messages.0.content.0.image.source.url"},
		{`"messages":[{"role":"user","content":[{"type":"image"}]}]`, "messages.0.content.0.image.source"},
	}
	for _, c := range cases {
		t.Run(c.fields, func(t *testing.T) {
			t.Parallel()
			srv := anthropictest.NewServer(anthropictest.Text("ok"))
			defer srv.Close()
			body := `{"model":"m","max_tokens":2048,"stream":true,` + c.fields + `}`
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/messages", strings.NewReader(body))
			req.Header.Set("x-api-key", "k")
			req.Header.Set("anthropic-version", "2023-06-01")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if c.want == "" {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("refused: %d %s", resp.StatusCode, b)
				}
				return
			}
			var e struct {
				Type  string
				Error struct{ Type, Message string }
			}
			if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(b, &e) != nil || e.Type != "error" ||
				e.Error.Type != "invalid_request_error" || !strings.HasPrefix(e.Error.Message, c.want) {
				t.Fatalf("got %d %s, want 400 starting %q", resp.StatusCode, b, c.want)
			}
		})
	}
}
