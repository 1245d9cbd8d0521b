// Package anthropictest is a fake Anthropic Messages API for tests: an httptest
// server that checks requests as the API does, answers them with scripted replies
// (event streams byte for byte, error responses with the API's JSON bodies and
// headers, dropped connections, streams that hang until the client goes away), and
// records them for assertions.
//
// Sampling and tool settings are checked as the API checks them: temperature and
// top_p from 0 to 1, no seed, a tool_choice naming a tool offered, tool input
// schemas of type object, and extended thinking's rules (a budget of at least 1024
// below max_tokens; no temperature other than 1, no top_p under 0.95, no top_k, no
// tool_choice forcing a tool; the last assistant message with tool calls starting
// with its signed thinking block).
//
// The fake is faithful where clients can tell: POST /v1/messages only; an API key in
// x-api-key or "Authorization: Bearer" (both accepted, whatever the
// anthropic-version); errors as {"type":"error","error":{"type","message"},
// "request_id"} with a request-id header; event streams with an "event:" line before
// every "data:" line, flushed event by event. It serves streaming requests only
// ("stream": true).
package anthropictest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Reply is one scripted answer of the fake server.
type Reply struct {
	// Status is the HTTP status; 0 means 200.
	Status int
	// Header holds response headers to add, such as retry-after.
	Header http.Header
	// Body is the response body: for status 200, the event stream, sent one event
	// (up to a blank line) at a time and flushed after each; otherwise the error body.
	Body string
	// Cut, if true, makes the server drop the connection (without ending the
	// response) after sending the first CutAfter events of Body.
	Cut      bool
	CutAfter int
	// Hang, if true, makes the server keep the response open after sending Body,
	// until the client goes away (or the server closes).
	Hang bool
}

// SSE returns a Reply that streams body, a text/event-stream, as it is.
func SSE(body string) Reply {
	return Reply{Body: body}
}

// ReadFile returns a Reply that streams the contents of a .sse file as they are.
func ReadFile(path string) (Reply, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Reply{}, fmt.Errorf("anthropictest: %w", err)
	}
	return SSE(string(b)), nil
}

// Dropped returns a Reply that sends the first n events of the stream body, then
// drops the connection.
func Dropped(body string, n int) Reply {
	return Reply{Body: body, Cut: true, CutAfter: n}
}

// Hanging returns a Reply that sends the events of body, then keeps the stream open
// without sending anything until the client goes away.
func Hanging(body string) Reply {
	return Reply{Body: body, Hang: true}
}

// Error returns a Reply with an error status and the API's error body for it.
func Error(status int, errType, message string) Reply {
	return Reply{Status: status, Body: errorBody(errType, message, "")}
}

// Unauthorized is the API's answer to a wrong API key: 401 authentication_error.
func Unauthorized() Reply {
	return Error(http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
}

// RateLimited is the API's 429 rate_limit_error, asking the client to retry after
// the given number of seconds (sent in retry-after, as the API sends it).
func RateLimited(retryAfterSeconds int) Reply {
	r := Error(http.StatusTooManyRequests, "rate_limit_error",
		"This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.")
	return r.WithHeader("retry-after", strconv.Itoa(retryAfterSeconds))
}

// InternalError is the API's 500 api_error.
func InternalError() Reply {
	return Error(http.StatusInternalServerError, "api_error", "Internal server error")
}

// Overloaded is the API's 529 overloaded_error.
func Overloaded() Reply {
	return Error(529, "overloaded_error", "Overloaded")
}

// WithHeader returns r with a response header added.
func (r Reply) WithHeader(key, value string) Reply {
	h := r.Header.Clone()
	if h == nil {
		h = make(http.Header)
	}
	h.Add(key, value)
	r.Header = h
	return r
}

// errorBody returns the API's error body; the request id is left out if empty.
func errorBody(errType, message, requestID string) string {
	body := `{"type":"error","error":{"type":` + quote(errType) + `,"message":` + quote(message) + `}`
	if requestID != "" {
		body += `,"request_id":` + quote(requestID)
	}
	return body + "}"
}

// Request is a request the server received.
type Request struct {
	Method string
	Path   string
	Header http.Header
	// Body is the request body as sent.
	Body []byte
	// Params is the body decoded; it is zero if the body is not a JSON object.
	Params Params
	// RequestID is the request-id the server answered with.
	RequestID string
}

// Params is the body of a Messages request, with the fields kern and the SDKs send.
type Params struct {
	Model     string `json:"model"`
	MaxTokens int    `json:"max_tokens"`
	Stream    bool   `json:"stream"`
	// System is the system prompt; System.Text() is its text.
	System      Content        `json:"system"`
	Messages    []Message      `json:"messages"`
	Tools       []Tool         `json:"tools"`
	Temperature *float64       `json:"temperature"`
	TopP        *float64       `json:"top_p"`
	TopK        *int           `json:"top_k"`
	ToolChoice  map[string]any `json:"tool_choice"`
	// StopSequences and Thinking ({"type":"enabled","budget_tokens":N}) as sent.
	StopSequences []string `json:"stop_sequences"`
	Thinking      *struct {
		Type         string `json:"type"`
		BudgetTokens int    `json:"budget_tokens"`
	} `json:"thinking"`
}

// Message is a message of a request. Content given as a string is read as one text
// block.
type Message struct {
	Role    string  `json:"role"`
	Content Content `json:"content"`
}

// Content is the content of a message or a tool result: blocks, or a string read as
// one text block.
type Content []Block

// UnmarshalJSON reads a string or an array of blocks.
func (c *Content) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*c = Content{{Type: "text", Text: s}}
		return nil
	}
	var blocks []Block
	if err := json.Unmarshal(b, &blocks); err != nil {
		return err
	}
	*c = blocks
	return nil
}

// Text returns the text of c's text blocks, joined.
func (c Content) Text() string {
	var sb strings.Builder
	for _, b := range c {
		sb.WriteString(b.Text)
	}
	return sb.String()
}

// Block is a content block of a request: text, tool_use or tool_result (or another
// type, with only Type set).
type Block struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   Content         `json:"content,omitempty"`
	IsError   *bool           `json:"is_error,omitempty"`
	// Thinking and Signature are a thinking block's, Data a redacted_thinking
	// block's.
	Thinking  string `json:"thinking,omitempty"`
	Signature string `json:"signature,omitempty"`
	Data      string `json:"data,omitempty"`
	// Source is an image's or a document's.
	Source *Source `json:"source,omitempty"`
}

// Source is where an image or a document comes from.
type Source struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

// Tool is a tool a request offers.
type Tool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

// Server is a fake Anthropic API. Its methods are safe for concurrent use.
type Server struct {
	// URL is the server's base URL, such as "http://127.0.0.1:1234", for a client's
	// base URL option; requests go to URL + "/v1/messages".
	URL string
	// APIKey, if set before the first request, is the only key the server accepts;
	// otherwise any non-empty key is.
	APIKey string

	srv  *httptest.Server
	done chan struct{} // closed by Close, to end hanging replies

	mu        sync.Mutex
	replies   []Reply    // scripted replies not yet sent
	requests  []*Request // every request received
	cancelled chan struct{}
	sawCancel bool // cancelled is closed
}

// NewServer starts a fake server that answers valid requests with replies, in
// order. A request past the end of the script gets a 500 api_error. Close it when
// done.
func NewServer(replies ...Reply) *Server {
	s := &Server{done: make(chan struct{}), replies: replies, cancelled: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Client returns an HTTP client for the server. Close closes its idle connections.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Close ends hanging replies, shuts the server down and closes the idle connections
// of its Client.
func (s *Server) Close() {
	close(s.done)
	s.srv.Close()
}

// Enqueue adds replies to the end of the script.
func (s *Server) Enqueue(replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replies = append(s.replies, replies...)
}

// Requests returns the requests received so far, in order.
func (s *Server) Requests() []*Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Request(nil), s.requests...)
}

// Cancelled returns a channel that is closed once the server has seen the context of
// a request it was streaming cancelled: the client went away before the reply
// ended.
func (s *Server) Cancelled() <-chan struct{} { return s.cancelled }

// markCancelled records that a request's context was cancelled mid-reply.
func (s *Server) markCancelled() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sawCancel {
		s.sawCancel = true
		close(s.cancelled)
	}
}

// serve checks a request, records it, and answers it with the next reply.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	// Read the whole body first: on HTTP/1 the server notices a client that goes
	// away only once the body has been read.
	body, err := io.ReadAll(r.Body)
	req := &Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	req.RequestID = fmt.Sprintf("req_011anthropictest%06d", len(s.requests))
	s.mu.Unlock()
	w.Header().Set("request-id", req.RequestID)
	if err != nil {
		writeError(w, req, http.StatusBadRequest, "invalid_request_error", "could not read the request body")
		return
	}
	if status, errType, msg := s.check(r, req); status != 0 {
		writeError(w, req, status, errType, msg)
		return
	}
	rep, ok := s.next()
	if !ok {
		writeError(w, req, http.StatusInternalServerError, "api_error", "anthropictest: no reply scripted for this request")
		return
	}
	for k, v := range rep.Header {
		w.Header()[http.CanonicalHeaderKey(k)] = v
	}
	if rep.Status != 0 && rep.Status != http.StatusOK {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.Status)
		io.WriteString(w, withRequestID(rep.Body, req.RequestID))
		return
	}
	s.stream(w, r, rep)
}

// next takes the next scripted reply.
func (s *Server) next() (Reply, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.replies) == 0 {
		return Reply{}, false
	}
	rep := s.replies[0]
	s.replies = s.replies[1:]
	return rep, true
}

// stream sends a 200 event stream, event by event.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, rep Reply) {
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a stream outlives any write timeout
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	for i, ev := range splitEvents(rep.Body) {
		if rep.Cut && i == rep.CutAfter {
			break
		}
		if _, err := io.WriteString(w, ev); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		if r.Context().Err() != nil {
			s.markCancelled()
			return
		}
	}
	switch {
	case rep.Cut:
		if conn, _, err := rc.Hijack(); err == nil {
			conn.Close()
		}
	case rep.Hang:
		select {
		case <-r.Context().Done():
			s.markCancelled()
		case <-s.done:
		}
	}
}

// splitEvents splits an event stream after each blank line; the pieces keep their
// bytes.
func splitEvents(body string) []string {
	var events []string
	for body != "" {
		i := strings.Index(body, "\n\n")
		if i < 0 {
			events = append(events, body)
			break
		}
		events = append(events, body[:i+2])
		body = body[i+2:]
	}
	return events
}

// withRequestID adds the request id to an API error body that has none.
func withRequestID(body, id string) string {
	var e map[string]json.RawMessage
	if json.Unmarshal([]byte(body), &e) != nil || e["request_id"] != nil || e["type"] == nil {
		return body
	}
	return strings.TrimSuffix(strings.TrimSpace(body), "}") + `,"request_id":` + quote(id) + "}"
}

func writeError(w http.ResponseWriter, req *Request, status int, errType, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, errorBody(errType, msg, req.RequestID))
}

// check validates a request as the API does, returning the status, error type and
// message of the error to answer, or status 0 for a valid request. It also decodes
// the body into req.Params.
func (s *Server) check(r *http.Request, req *Request) (int, string, string) {
	if r.URL.Path != "/v1/messages" {
		return http.StatusNotFound, "not_found_error", "Not Found"
	}
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "invalid_request_error", "Method Not Allowed"
	}
	key := r.Header.Get("X-Api-Key")
	if auth := r.Header.Get("Authorization"); key == "" && strings.HasPrefix(auth, "Bearer ") {
		key = strings.TrimPrefix(auth, "Bearer ")
	}
	switch {
	case key == "":
		return http.StatusUnauthorized, "authentication_error", "x-api-key header is required"
	case s.APIKey != "" && key != s.APIKey:
		return http.StatusUnauthorized, "authentication_error", "invalid x-api-key"
	}
	version := r.Header.Get("Anthropic-Version")
	if version == "" {
		return http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required"
	}
	if !json.Valid(req.Body) || json.Unmarshal(req.Body, &req.Params) != nil {
		return http.StatusBadRequest, "invalid_request_error", "The request body is not valid JSON"
	}
	if msg := checkParams(&req.Params, req.Body, version); msg != "" {
		return http.StatusBadRequest, "invalid_request_error", msg
	}
	return 0, "", ""
}

// checkParams returns the API's complaint about a request body, or "".
func checkParams(p *Params, body []byte, version string) string {
	var fields map[string]json.RawMessage
	json.Unmarshal(body, &fields)
	switch {
	case fields["model"] == nil:
		return "model: Field required"
	case fields["max_tokens"] == nil:
		return "max_tokens: Field required"
	case fields["messages"] == nil:
		return "messages: Field required"
	case len(p.Messages) == 0:
		return "messages: at least one message is required"
	case !p.Stream:
		return "anthropictest: only streaming requests (\"stream\": true) are supported"
	}
	if version >= "2026-10-21" {
		for _, f := range []string{"temperature", "top_p", "top_k"} {
			if fields[f] != nil {
				return f + ": Extra inputs are not permitted for anthropic-version " + version
			}
		}
	}
	if msg := checkSettings(p, fields); msg != "" {
		return msg
	}
	return checkMessages(p.Messages)
}

// checkMessages checks the content blocks: non-empty text, object tool inputs, and
// every tool_use answered by a tool_result in the next message, which must come
// first in it.
func checkMessages(msgs []Message) string {
	for i, m := range msgs {
		if m.Role != "user" && m.Role != "assistant" {
			return fmt.Sprintf("messages.%d.role: Input should be 'user' or 'assistant'", i)
		}
		for j, b := range m.Content {
			switch b.Type {
			case "text":
				if b.Text == "" {
					return fmt.Sprintf("messages.%d.content.%d.text: text content blocks must be non-empty", i, j)
				}
			case "tool_use":
				if t := bytes.TrimSpace(b.Input); len(t) == 0 || t[0] != '{' {
					return fmt.Sprintf("messages.%d.content.%d.tool_use.input: Input should be a valid dictionary", i, j)
				}
			case "image", "document":
				if msg := checkSource(b, fmt.Sprintf("messages.%d.content.%d.%s.source", i, j, b.Type)); msg != "" {
					return msg
				}
			}
		}
		if msg := checkToolResults(msgs, i); msg != "" {
			return msg
		}
	}
	return ""
}

// checkToolResults checks that the tool_use blocks of message i are answered by the
// tool_result blocks at the start of message i+1, and the tool_results of message i
// answer tool_use blocks of message i-1.
func checkToolResults(msgs []Message, i int) string {
	uses := func(k int) map[string]bool {
		ids := map[string]bool{}
		if k >= 0 && msgs[k].Role == "assistant" {
			for _, b := range msgs[k].Content {
				if b.Type == "tool_use" {
					ids[b.ID] = true
				}
			}
		}
		return ids
	}
	prev := uses(i - 1)
	leading := true
	for j, b := range msgs[i].Content {
		if b.Type != "tool_result" {
			leading = false
			continue
		}
		if !leading {
			return fmt.Sprintf("messages.%d: tool_result blocks must come first in the message content", i)
		}
		if !prev[b.ToolUseID] {
			return fmt.Sprintf("messages.%d.content.%d: unexpected `tool_use_id` found in `tool_result` blocks: %s. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.", i, j, b.ToolUseID)
		}
		delete(prev, b.ToolUseID)
	}
	if len(prev) > 0 && msgs[i].Role == "user" {
		for id := range prev {
			return fmt.Sprintf("messages.%d: `tool_use` ids were found without `tool_result` blocks immediately after: %s. Each `tool_use` block must have a corresponding `tool_result` block in the next message.", i-1, id)
		}
	}
	return ""
}
