package openaitest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/kern-dev/kern/model/openai/openaitest"
)

// TestChecks posts bodies the API refuses, and bodies it takes, to the fake: a
// refused body gets a 400 naming the parameter and leaves the queued reply for the
// next request.
func TestChecks(t *testing.T) {
	t.Parallel()
	const (
		responses = "/responses"
		chat      = "/chat/completions"
		tools     = `"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{}},"strict":false}]`
		chatTools = `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{}},"strict":false}}]`
		closed    = `{"type":"object","properties":{"a":{"type":"string"}},"required":["a"],"additionalProperties":false}`
		open      = `{"type":"object","properties":{"a":{"type":"string"}}}`
		optional  = `{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"required":["a"],"additionalProperties":false}`
		nested    = `{"type":"object","properties":{"a":{"type":"object","properties":{"x":{"type":"integer"}},"required":["x"]}},"required":["a"],"additionalProperties":false}`
		user      = `{"role":"user","content":"hi"}`
		call      = `{"type":"function_call","call_id":"call_1","name":"f","arguments":"{}"}`
	)
	enc := openaitest.EncryptedContent("rs_1")
	cases := []struct {
		path, fields, param string // param "": accepted
	}{
		{responses, `"temperature":2`, ""},
		{responses, `"temperature":2.5`, "temperature"},
		{responses, `"temperature":"hot"`, "temperature"},
		{responses, `"top_p":1.5`, "top_p"},
		{responses, `"max_output_tokens":15`, "max_output_tokens"},
		{responses, `"max_output_tokens":16`, ""},
		{responses, `"stop":["x"]`, "stop"},
		{responses, `"seed":1`, "seed"},
		{responses, `"reasoning":{"effort":"extreme"}`, "reasoning.effort"},
		{responses, `"reasoning":{"effort":"high","summary":"auto"}`, ""},
		{responses, `"tool_choice":"required"`, "tool_choice"},
		{responses, `"tool_choice":"sometimes",` + tools, "tool_choice"},
		{responses, `"tool_choice":{"type":"function","name":"get_time"},` + tools, "tool_choice"},
		{responses, `"tool_choice":{"type":"function","name":"get_weather"},"parallel_tool_calls":false,` + tools, ""},
		{responses, `"text":{"format":{"type":"json_schema","name":"A","schema":` + closed + `,"strict":true}}`, ""},
		{responses, `"text":{"format":{"type":"json_schema","name":"A","schema":` + open + `,"strict":true}}`, "text.format.schema"},
		{responses, `"text":{"format":{"type":"json_schema","name":"A","schema":` + optional + `,"strict":true}}`, "text.format.schema"},
		{responses, `"text":{"format":{"type":"json_schema","name":"A","schema":` + nested + `,"strict":true}}`, "text.format.schema"},
		{responses, `"text":{"format":{"type":"json_schema","name":"A","schema":` + optional + `,"strict":false}}`, ""},
		{responses, `"text":{"format":{"type":"json_schema","name":"A b","schema":` + closed + `}}`, "text.format.name"},
		{responses, `"text":{"format":{"type":"json_schema","name":"A"}}`, "text.format.schema"},
		{responses, `"tools":[{"type":"function","name":"f","parameters":` + open + `,"strict":true}]`, "tools[0].parameters"},
		{chat, `"temperature":0,"top_p":0,"seed":7,"stop":["a","b","c","d"],"max_completion_tokens":1,"reasoning_effort":"minimal"`, ""},
		{chat, `"stop":["a","b","c","d","e"]`, "stop"},
		{chat, `"seed":1.5`, "seed"},
		{chat, `"max_completion_tokens":0`, "max_completion_tokens"},
		{chat, `"parallel_tool_calls":true`, "parallel_tool_calls"},
		{chat, `"parallel_tool_calls":true,` + chatTools, ""},
		{chat, `"tool_choice":{"type":"function","function":{"name":"nope"}},` + chatTools, "tool_choice"},
		{chat, `"response_format":{"type":"json_schema","json_schema":{"name":"A","schema":` + open + `,"strict":true}}`, "response_format.json_schema.schema"},
		{chat, `"response_format":{"type":"json_schema","json_schema":{"name":"A","schema":` + closed + `,"strict":true}}`, ""},
		{chat, `"response_format":{"type":"json_object"}`, ""},
		{responses, `"input":[{"role":"user","content":[{"type":"input_text","text":"hi"},{"type":"input_image","detail":"auto","image_url":"https://x.test/a.png"},{"type":"input_file","filename":"a.pdf","file_data":"data:application/pdf;base64,JVBE"}]}],"x":0`, ""},
		{responses, `"input":[{"role":"user","content":[{"type":"input_image","image_url":"https://x.test/a.png"}]}],"x":0`, "input[0].content[0].detail"},
		{responses, `"input":[{"role":"user","content":[{"type":"input_image","detail":"auto","image_url":"ftp://x.test/a.png"}]}],"x":0`, "input[0].content[0].image_url"},
		{responses, `"input":[{"role":"user","content":[{"type":"input_file","file_data":"data:application/pdf;base64,JVBE"}]}],"x":0`, "input[0].content[0].filename"},
		{responses, `"input":[{"role":"user","content":[{"type":"image","url":"https://x.test/a.png"}]}],"x":0`, "input[0].content[0].type"},
		{chat, `"messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}},{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBE"}}]}],"x":0`, ""},
		{chat, `"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:text/plain;base64,aGk="}}]}],"x":0`, "messages[0].content[0].image_url.url"},
		{chat, `"messages":[{"role":"user","content":[{"type":"file","file":{"file_url":"https://x.test/a.pdf"}}]}],"x":0`, "messages[0].content[0].file.file_data"},
		{responses, `"include":["reasoning.encrypted_content"]`, ""},
		{responses, `"include":["everything"]`, "include[0]"},
		{responses, `"store":false,"input":[` + user + `,{"type":"reasoning","id":"rs_1","summary":[]},` + call + `],"x":0`, "input"},
		{responses, `"store":true,"input":[` + user + `,{"type":"reasoning","id":"rs_1","summary":[]},` + call + `],"x":0`, ""},
		{responses, `"store":false,"input":[` + user + `,{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"forged"},` + call + `],"x":0`, "input[1].encrypted_content"},
		{responses, `"store":false,"input":[` + user + `,{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"` + enc + `"},` + call + `],"x":0`, ""},
		{responses, `"store":false,"input":[` + user + `,{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"` + enc + `"}],"x":0`, "input"},
	}
	for _, c := range cases {
		t.Run(c.path+" "+c.fields, func(t *testing.T) {
			t.Parallel()
			srv := openaitest.NewServer(t)
			srv.Enqueue(openaitest.ResponsesText("ok"))
			body := `{"model":"m","stream":true,` + c.fields
			if strings.Contains(c.fields, `"x":0`) { // the fields carry the conversation
				body += "}"
			} else if c.path == chat {
				body += `,"messages":[{"role":"user","content":"hi"}]}`
			} else {
				body += `,"input":"hi"}`
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+c.path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+openaitest.APIKey)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if c.param == "" {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("refused: %d %s", resp.StatusCode, b)
				}
				return
			}
			var e struct {
				Error struct{ Message, Type, Param, Code string }
			}
			if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(b, &e) != nil || e.Error.Param != c.param ||
				e.Error.Type != "invalid_request_error" || e.Error.Message == "" || e.Error.Code == "" {
				t.Fatalf("got %d %s, want 400 for %s", resp.StatusCode, b, c.param)
			}
		})
	}
}

// TestEncryptedContentOnlyWhenIncluded: a reasoning item's encrypted content is
// streamed only to a request whose include asks for it.
func TestEncryptedContentOnlyWhenIncluded(t *testing.T) {
	t.Parallel()
	for _, include := range []bool{true, false} {
		srv := openaitest.NewServer(t)
		srv.Enqueue(openaitest.NewResponsesStream().Reasoning("hmm").Text("hi").Reply())
		body := `{"model":"m","stream":true,"store":false,"input":"hi"}`
		if include {
			body = `{"model":"m","stream":true,"store":false,"input":"hi","include":["reasoning.encrypted_content"]}`
		}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/responses", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+openaitest.APIKey)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		enc := `"encrypted_content":"` + openaitest.EncryptedContent("rs_openaitest0") + `"`
		if got := strings.Contains(string(b), enc); got != include {
			t.Errorf("include %v: encrypted content sent: %v\n%s", include, got, b)
		}
	}
}
