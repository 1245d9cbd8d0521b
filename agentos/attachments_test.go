package agentos

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/openai"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/workflow"
)

// describer answers with what the request's user message carried: one line per
// attachment, "kind type name url bytes".
func describer() *scripted.Model {
	return &scripted.Model{ChunkSize: 1 << 20, Respond: func(req *model.Request) scripted.Turn {
		var b strings.Builder
		for _, m := range req.Messages {
			for _, a := range m.Attachments {
				fmt.Fprintf(&b, "%s %s %s %s %d\n", a.Kind, a.MIMEType, a.Filename, a.URL, len(a.Data))
			}
		}
		return scripted.Turn{Text: b.String() + "."}
	}}
}

var png = append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 24)...)

// multipartBody returns a multipart body with fields and files (name → content,
// with their content types).
func multipartBody(t *testing.T, fields map[string]string, files ...[3]string) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	for _, f := range files { // filename, content type, content
		h := make(textproto.MIMEHeader)
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="files"; filename=%q`, f[0]))
		if f[1] != "" {
			h.Set("Content-Type", f[1])
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(f[2]))
	}
	mw.Close()
	return mw.FormDataContentType(), &buf
}

func TestRunAttachments(t *testing.T) {
	t.Parallel()
	a := &agent.Agent{Name: "Looker", Model: describer()}
	w := &workflow.Workflow{Name: "Look", Steps: []workflow.Step{
		workflow.AgentStep("first", &agent.Agent{Name: "first", Model: describer()}, ""),
		workflow.AgentStep("second", &agent.Agent{Name: "second", Model: describer()}, ""),
	}}
	base, _ := serveConfig(t, Config{Agents: []*agent.Agent{a}, Workflows: []*workflow.Workflow{w}})
	b64 := base64.StdEncoding.EncodeToString
	formType := "application/x-www-form-urlencoded"

	ct, upload := multipartBody(t, map[string]string{"message": "look", "stream": "false"},
		[3]string{"cat.png", "application/octet-stream", string(png)}, [3]string{"notes.txt", "text/plain; charset=utf-8", "hello"})
	tests := []struct {
		name, path, ct, body string
		bodyBuf              *bytes.Buffer
		want                 string
	}{
		{"uploads", "/agents/looker/runs", ct, "", upload,
			"image image/png  " + " 32\nfile text/plain notes.txt  5\n."},
		{"form fields as Agno's client sends them", "/agents/looker/runs", formType, url.Values{"message": {"look"}, "stream": {"false"},
			"images":      {`[{"url": "https://example.com/cat.png", "id": "x", "detail": "low"}]`},
			"input_files": {`[{"content": "` + b64([]byte("%PDF-1.4 x")) + `", "mime_type": "application/pdf", "filename": "a.pdf"}]`}}.Encode(), nil,
			"image   https://example.com/cat.png 0\nfile application/pdf a.pdf  10\n."},
		{"JSON lists", "/agents/looker/runs", "application/json", `{"message": "look", "stream": false,
			"images": [{"content": "` + b64(png) + `", "format": "png"}], "files": [{"url": "https://example.com/a.pdf"}]}`, nil,
			"image image/png  " + " 32\nfile   https://example.com/a.pdf 0\n."},
		{"a workflow's first step", "/workflows/look/runs", formType, url.Values{"message": {"look"}, "stream": {"false"},
			"images": {`[{"url": "https://example.com/cat.png"}]`}}.Encode(), nil,
			"."}, // the second step's answer: it saw none
	}
	for _, tt := range tests {
		body := tt.bodyBuf
		if body == nil {
			body = bytes.NewBufferString(tt.body)
		}
		var got struct {
			Content     string `json:"content"`
			Status      string `json:"status"`
			StepResults []struct {
				Content string `json:"content"`
			} `json:"step_results"`
		}
		if code := call(t, "POST", base+tt.path, tt.ct, body, &got); code != http.StatusOK || got.Status != "COMPLETED" {
			t.Fatalf("%s: %d %+v", tt.name, code, got)
		}
		if got.Content != tt.want {
			t.Errorf("%s: the model saw\n%q\nwant\n%q", tt.name, got.Content, tt.want)
		}
		if len(got.StepResults) > 0 && got.StepResults[0].Content != "image   https://example.com/cat.png 0\n." {
			t.Errorf("%s: the first step saw %q", tt.name, got.StepResults[0].Content)
		}
	}
}

func TestRunAttachmentsRefused(t *testing.T) {
	t.Parallel()
	a := &agent.Agent{Name: "Looker", Model: describer()}
	base, _ := serveConfig(t, Config{Agents: []*agent.Agent{a}, MaxAttachments: 2, MaxAttachmentBytes: 16})
	img := func(s string) string {
		return url.Values{"message": {"look"}, "stream": {"false"}, "images": {s}}.Encode()
	}
	b64 := base64.StdEncoding.EncodeToString
	formType := "application/x-www-form-urlencoded"
	tooBig := b64(make([]byte, 17))
	ctBig, bigUpload := multipartBody(t, map[string]string{"message": "look"}, [3]string{"big.png", "image/png", string(png)})
	tests := []struct {
		name, ct string
		body     *bytes.Buffer
		code     int
		detail   string
	}{
		{"too many", formType, bytes.NewBufferString(img(`[{"url":"https://a.example/1"},{"url":"https://a.example/2"},{"url":"https://a.example/3"}]`)), 422, "more than 2 images and files"},
		{"too large", formType, bytes.NewBufferString(img(`[{"content":"` + tooBig + `","mime_type":"image/png"}]`)), 413, "images[0]: content larger than 16 bytes"},
		{"upload too large", ctBig, bigUpload, 413, `file "big.png" is larger than 16 bytes`},
		{"not base64", formType, bytes.NewBufferString(img(`[{"content":"%%%","mime_type":"image/png"}]`)), 422, "not base64"},
		{"filepath", formType, bytes.NewBufferString(img(`[{"filepath":"/etc/passwd"}]`)), 422, "not read by the server"},
		{"not a list", formType, bytes.NewBufferString(img(`{"url":"https://a.example/1"}`)), 422, "images must be a JSON list"},
		{"ftp URL", formType, bytes.NewBufferString(img(`[{"url":"ftp://a.example/1"}]`)), 422, "not an http or https URL"},
		{"neither url nor content", formType, bytes.NewBufferString(img(`[{"id":"x"}]`)), 422, "needs a URL or data"},
		{"image of a text type", "application/json", bytes.NewBufferString(`{"message":"x","images":[{"content":"` + b64([]byte("hi")) + `","mime_type":"text/plain"}]}`), 422, "an image of MIME type"},
		{"background", formType, bytes.NewBufferString(url.Values{"message": {"look"}, "background": {"true"}, "images": {`[{"url":"https://a.example/1"}]`}}.Encode()), 422, "background run takes no images"},
	}
	for _, tt := range tests {
		var got struct {
			Detail string `json:"detail"`
		}
		code := call(t, "POST", base+"/agents/looker/runs", tt.ct, tt.body, &got)
		if code != tt.code || !strings.Contains(got.Detail, tt.detail) {
			t.Errorf("%s: %d %q, want %d with %q", tt.name, code, got.Detail, tt.code, tt.detail)
		}
	}
}

// TestRunAttachmentsProviderRefuses checks that what the agent's provider cannot
// send (a file by URL on Chat Completions) is refused before the run starts.
func TestRunAttachmentsProviderRefuses(t *testing.T) {
	t.Parallel()
	a := &agent.Agent{Name: "Chatty", Model: openai.NewChat("gpt-4.1-mini", openai.WithAPIKey("sk-test"), openai.WithBaseURL("http://127.0.0.1:1"))}
	base, _ := serveConfig(t, Config{Agents: []*agent.Agent{a}})
	body := url.Values{"message": {"read"}, "stream": {"false"}, "input_files": {`[{"url": "https://example.com/a.pdf"}]`}}.Encode()
	var got struct {
		Detail string `json:"detail"`
	}
	code := call(t, "POST", base+"/agents/chatty/runs", "application/x-www-form-urlencoded", strings.NewReader(body), &got)
	if code != http.StatusUnprocessableEntity || !strings.Contains(got.Detail, "takes files as data, not by URL") {
		t.Errorf("%d %q, want 422 with the provider's reason", code, got.Detail)
	}
}
