// Package openaitest is a fake OpenAI API server for tests: it answers
// POST /v1/responses and POST /v1/chat/completions with scripted replies, framed and
// flushed event by event as the real API streams them, and records what it was sent.
//
// A test queues replies, points a client at URL, and reads the recorded requests:
//
//	srv := openaitest.NewServer(t)
//	srv.Enqueue(openaitest.Fixture("responses_tool_call.sse"), openaitest.Fixture("responses_text.sse"))
//	m := openai.NewResponses("gpt-5.2", openai.WithBaseURL(srv.URL), openai.WithAPIKey(openaitest.APIKey),
//		openai.WithHTTPClient(srv.Client()))
//	... // run the model; then srv.Requests()[1].Body["input"]
//
// Requests are checked as the API checks them where kern and the SDKs send fields
// with rules: ranges (temperature, top_p, max_output_tokens), enumerations
// (reasoning effort, tool_choice), parameters one API has and the other not (stop
// and seed on Responses), a tool_choice that names no tool offered, and the rules of
// strict JSON schemas (every object closed with additionalProperties false and all
// its properties required), and reasoning items in the input (with "store": false
// they must bring back the encrypted content the server gave them, which it streams
// only when include asks for "reasoning.encrypted_content"). A refused request gets
// the API's 400, naming the parameter, and leaves the queue of replies as it was.
//
// The fixtures (see Fixtures) are streams written from the recorded streams in kern's
// PROTOCOLS.md: a text answer, a function call, an error event, response.failed,
// response.incomplete, and Chat Completions text, tool-call deltas, an in-stream error
// and a local server's quirks. Replies can also fail: error statuses with OpenAI's
// JSON bodies and headers, a connection dropped mid-stream, and a stream that hangs
// until the client goes away.
package openaitest

import (
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// APIKey is the key the server accepts, unless Server.APIKey says otherwise.
const APIKey = "sk-openaitest"

//go:embed testdata/*.sse
var fixtures embed.FS

// Fixtures returns the names of the fixture streams.
func Fixtures() []string {
	names, _ := fs.Glob(fixtures, "testdata/*.sse")
	for i, n := range names {
		names[i] = strings.TrimPrefix(n, "testdata/")
	}
	return names
}

// FixtureBytes returns the exact bytes of the fixture stream name, such as
// "responses_text.sse". It panics if there is no such fixture.
func FixtureBytes(name string) []byte {
	b, err := fixtures.ReadFile("testdata/" + name)
	if err != nil {
		panic("openaitest: no fixture " + strconv.Quote(name))
	}
	return b
}

// Request is a request the server received.
type Request struct {
	Method string
	Path   string
	Header http.Header
	// Body is the JSON body decoded into maps, slices, strings, float64s and bools;
	// nil if it was not JSON.
	Body map[string]any
	// Raw is the body as sent.
	Raw []byte
}

// Server is a fake OpenAI API. Its methods are safe for concurrent use.
type Server struct {
	// URL is the API's base URL, ending in "/v1", for openai.WithBaseURL or the
	// official SDKs' option.WithBaseURL.
	URL string

	srv *httptest.Server

	mu       sync.Mutex // guards the fields below
	apiKey   string
	replies  []Reply
	requests []Request
	gone     chan struct{} // closed when a hanging reply saw its client go away
	goneOnce sync.Once
}

// New starts a Server. Close it when done; NewServer does that for a test.
func New() *Server {
	s := &Server{apiKey: APIKey, gone: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/responses", s.serve)
	mux.HandleFunc("POST /v1/chat/completions", s.serve)
	mux.HandleFunc("/", s.notFound)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL + "/v1"
	return s
}

// NewServer starts a Server that is closed when tb's test ends.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	s := New()
	tb.Cleanup(s.Close)
	return s
}

// Close shuts the server down, waiting for the requests in flight, and closes the idle
// connections of Client.
func (s *Server) Close() { s.srv.Close() }

// Client returns an HTTP client for the server, whose idle connections Close closes.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// SetAPIKey sets the key the server requires as "Authorization: Bearer <key>"; the
// empty key accepts any request, with or without a key, as local servers do.
func (s *Server) SetAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiKey = key
}

// Enqueue adds replies to the queue: each request is answered with the next one. A
// request that finds the queue empty is answered with HTTP 400 and a message saying
// so.
func (s *Server) Enqueue(replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replies = append(s.replies, replies...)
}

// Requests returns the requests received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ClientGone is closed once a reply made with Hang has seen its client go away (the
// request's context cancelled), which is how a test knows that a cancelled stream
// really closed its connection.
func (s *Server) ClientGone() <-chan struct{} { return s.gone }

// Reply is how the server answers one request. Build it with Fixture, Stream, Error
// and the other constructors, then adjust it with its methods.
type Reply struct {
	status      int
	header      http.Header
	contentType string
	body        string   // the body of a reply that is not a stream
	events      []string // the events of a stream, each with its blank line
	cut         int      // events sent before the connection is dropped; -1: none
	hang        bool     // after the events, wait for the client to go away
}

// Fixture replies with the fixture stream name (see Fixtures). It panics if there is
// no such fixture.
func Fixture(name string) Reply { return Stream(string(FixtureBytes(name))) }

// Stream replies with the Server-Sent Events in text, sent as written and flushed one
// event at a time (events end at a blank line, "\n\n").
func Stream(text string) Reply {
	var events []string
	for text != "" {
		i := strings.Index(text, "\n\n")
		if i < 0 {
			events = append(events, text)
			break
		}
		events, text = append(events, text[:i+2]), text[i+2:]
	}
	return Reply{status: http.StatusOK, contentType: "text/event-stream; charset=utf-8", events: events, cut: -1}
}

// Body replies with status and a body of any content type, such as a proxy's HTML
// page.
func Body(status int, contentType, body string) Reply {
	return Reply{status: status, contentType: contentType, body: body, cut: -1}
}

// Error replies with status and OpenAI's error body
// {"error":{"message","type","param","code"}}; an empty code is sent as null.
func Error(status int, typ, code, message string) Reply {
	e := map[string]any{"message": message, "type": typ, "param": nil, "code": nil}
	if code != "" {
		e["code"] = code
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	return Body(status, "application/json; charset=utf-8", string(b)+"\n")
}

// Unauthorized is OpenAI's 401 for a wrong API key.
func Unauthorized() Reply {
	return Error(http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
		"Incorrect API key provided: sk-wrong. You can find your API key at https://platform.openai.com/account/api-keys.")
}

// RateLimited is OpenAI's 429 for a rate limit, asking the client to wait: the
// retry-after-ms header carries wait, and Retry-After the same in whole seconds
// (rounded up), with the x-ratelimit headers.
func RateLimited(wait time.Duration) Reply {
	r := Error(http.StatusTooManyRequests, "tokens", "rate_limit_exceeded",
		"Rate limit reached for gpt-5.2 in organization org-kern on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000. Please try again in 2s. Visit https://platform.openai.com/account/rate-limits to learn more.")
	secs := (wait + time.Second - 1) / time.Second
	return r.WithHeader("retry-after-ms", strconv.FormatInt(wait.Milliseconds(), 10)).
		WithHeader("Retry-After", strconv.FormatInt(int64(secs), 10)).
		WithHeader("x-ratelimit-limit-tokens", "30000").
		WithHeader("x-ratelimit-remaining-tokens", "0").
		WithHeader("x-ratelimit-reset-tokens", wait.String())
}

// QuotaExceeded is OpenAI's 429 for a spent quota, which is not worth retrying.
func QuotaExceeded() Reply {
	return Error(http.StatusTooManyRequests, "insufficient_quota", "insufficient_quota",
		"You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.")
}

// ServerError is OpenAI's 500.
func ServerError() Reply {
	return Error(http.StatusInternalServerError, "server_error", "",
		"The server had an error while processing your request. Sorry about that!")
}

// Overloaded is a 503 with the envelope of OpenAI's errors.
func Overloaded() Reply {
	return Error(http.StatusServiceUnavailable, "server_error", "",
		"The engine is currently overloaded, please try again later")
}

// BadRequest is OpenAI's 400 with message, as for an invalid parameter.
func BadRequest(message string) Reply {
	return Error(http.StatusBadRequest, "invalid_request_error", "", message)
}

// WithHeader returns r with a response header set.
func (r Reply) WithHeader(key, value string) Reply {
	h := r.header.Clone()
	if h == nil {
		h = make(http.Header)
	}
	h.Set(key, value)
	r.header = h
	return r
}

// CutAfter returns r that sends only its first n events, then drops the connection,
// as when a network or proxy fails mid-stream.
func (r Reply) CutAfter(n int) Reply {
	r.cut = n
	return r
}

// Hang returns r that sends its first n events, then sends nothing more and holds the
// connection until the client goes away; then ClientGone is closed.
func (r Reply) Hang(n int) Reply {
	r.cut, r.hang = n, true
	return r
}

// serve answers an API request with the next reply.
func (s *Server) serve(w http.ResponseWriter, req *http.Request) {
	rec, readErr := s.record(w, req)
	s.mu.Lock()
	key := s.apiKey
	s.mu.Unlock()
	var r Reply
	switch auth := req.Header.Get("Authorization"); {
	case key != "" && auth == "":
		r = Error(http.StatusUnauthorized, "invalid_request_error", "",
			"You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.")
	case key != "" && auth != "Bearer "+key:
		r = Unauthorized()
	case readErr != nil || rec.Body == nil:
		r = BadRequest("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)")
	default:
		if e := check(req.URL.Path, rec.Body); e != nil {
			r = e.reply() // refused as the API refuses it; no queued reply is used
		} else {
			r = s.next(req).forRequest(rec.Body)
		}
	}
	s.reply(w, req, r)
}

// record reads the whole request and records it, and sets the headers every response
// has. Reading the body first matters: an HTTP/1 server notices a client that went
// away only once it has.
func (s *Server) record(w http.ResponseWriter, req *http.Request) (Request, error) {
	raw, err := io.ReadAll(req.Body)
	rec := Request{Method: req.Method, Path: req.URL.Path, Header: req.Header.Clone(), Raw: raw}
	if json.Unmarshal(raw, &rec.Body) != nil {
		rec.Body = nil
	}
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	h := w.Header()
	h.Set("x-request-id", "req_"+strconv.FormatInt(time.Now().UnixNano(), 16))
	h.Set("openai-processing-ms", "12")
	h.Set("openai-version", "2020-10-01")
	return rec, err
}

// next takes the next reply from the queue.
func (s *Server) next(req *http.Request) Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.replies) == 0 {
		return BadRequest(fmt.Sprintf("openaitest: no reply queued for %s %s", req.Method, req.URL.Path))
	}
	r := s.replies[0]
	s.replies = s.replies[1:]
	return r
}

// encryptedField is the encrypted content of a reasoning item the server streams.
var encryptedField = regexp.MustCompile(`"encrypted_content":"` + encryptedPrefix + `[^"]*"`)

// forRequest returns r as it answers a request with body: without
// "reasoning.encrypted_content" in the request's include, reasoning items carry no
// encrypted content.
func (r Reply) forRequest(body map[string]any) Reply {
	if r.events == nil || includes(body, includeEncrypted) {
		return r
	}
	events := make([]string, len(r.events))
	for i, ev := range r.events {
		events[i] = encryptedField.ReplaceAllString(ev, `"encrypted_content":null`)
	}
	r.events = events
	return r
}

// includes reports whether a request's include lists value.
func includes(body map[string]any, value string) bool {
	list, _ := body["include"].([]any)
	return slices.Contains(list, any(value))
}

// notFound answers a path the API does not have, as OpenAI does.
func (s *Server) notFound(w http.ResponseWriter, req *http.Request) {
	s.record(w, req)
	s.reply(w, req, Error(http.StatusNotFound, "invalid_request_error", "",
		fmt.Sprintf("Invalid URL (%s %s)", req.Method, req.URL.Path)))
}

// reply writes r.
func (s *Server) reply(w http.ResponseWriter, req *http.Request, r Reply) {
	h := w.Header()
	for k, v := range r.header {
		h[k] = v
	}
	h.Set("Content-Type", r.contentType)
	if r.events == nil {
		w.WriteHeader(r.status)
		io.WriteString(w, r.body)
		return
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a stream outlives any write timeout
	w.WriteHeader(r.status)
	rc.Flush()
	for i, ev := range r.events {
		if i == r.cut {
			break
		}
		if _, err := io.WriteString(w, ev); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
	}
	switch {
	case r.hang:
		<-req.Context().Done()
		s.goneOnce.Do(func() { close(s.gone) })
	case r.cut >= 0:
		drop(rc)
	}
}

// drop closes the connection under a response, so that the client sees the body cut
// rather than ended.
func drop(rc *http.ResponseController) {
	conn, _, err := rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // HTTP/2: abort the stream
	}
	conn.Close()
}
