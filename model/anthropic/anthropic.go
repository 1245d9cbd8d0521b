// Package anthropic is a model.Model for Anthropic's Messages API (POST /v1/messages),
// streamed over Server-Sent Events.
//
// It is a thin client on net/http and encoding/json, not the official SDK: it sends
// the conversation, the instructions and the tools of a model.Request, and turns the
// response's events into model.Chunks (text deltas as they arrive; complete tool calls,
// the token usage and the finish reason in the last chunk). Requests that fail before
// any of the response is read (429, 5xx, 529 overloaded, a broken connection) are
// retried as the model.RetryPolicy says; a stream is never retried once it has started.
//
// Two API versions are live. The default, "2023-06-01", authenticates with the
// x-api-key header. WithAPIVersion("2026-10-21") selects the newer one, which
// authenticates with "Authorization: Bearer <key>" and refuses sampling parameters.
//
// Package anthropictest is a fake Anthropic server for tests.
package anthropic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/internal/apicall"
)

// Provider is the provider name a Model reports.
const Provider = "anthropic"

// API versions, sent in the anthropic-version header.
const (
	// APIVersion20230601 is the default version: x-api-key authentication, and
	// sampling parameters (temperature) allowed.
	APIVersion20230601 = "2023-06-01"
	// APIVersion20261021 is the newer version: bearer authentication, and no
	// temperature, top_p or top_k.
	APIVersion20261021 = "2026-10-21"
)

// Defaults of a Model's options.
const (
	// DefaultBaseURL is the API's address when neither WithBaseURL nor the
	// ANTHROPIC_BASE_URL environment variable sets one.
	DefaultBaseURL = "https://api.anthropic.com"
	// DefaultMaxTokens is the max_tokens a request asks for unless WithMaxTokens
	// says otherwise; the API requires the field.
	DefaultMaxTokens = 4096
)

// ErrNoAPIKey is returned by Stream, before any request is sent, when a Model has no
// API key: neither WithAPIKey nor the ANTHROPIC_API_KEY environment variable set one.
var ErrNoAPIKey = errors.New("anthropic: no API key: set ANTHROPIC_API_KEY or use WithAPIKey")

// ErrNotEventStream is returned by Stream when the API answers a request with a
// success status but a body that is not text/event-stream, as a misconfigured proxy
// or a server that ignores "stream": true would.
var ErrNotEventStream = errors.New("anthropic: response is not an event stream")

// defaultClient is the HTTP client of Models built without WithHTTPClient. It has no
// overall timeout, which would cut long streams, but bounds each phase before the
// response starts. Models share it, and so share its pool of connections.
var defaultClient = apicall.StreamingClient(5 * time.Minute)

// Model streams responses of one Anthropic model. Build it with New; it is safe for
// concurrent use.
type Model struct {
	model       string
	baseURL     string
	apiKey      string
	version     string
	maxTokens   int
	temperature *float64
	client      *http.Client
	retry       model.RetryPolicy
	header      http.Header
}

// Option configures a Model.
type Option func(*Model)

// WithBaseURL sets the API's address, such as "http://127.0.0.1:8080" for a local
// fake; requests go to its /v1/messages. The default is the ANTHROPIC_BASE_URL
// environment variable, or DefaultBaseURL.
func WithBaseURL(url string) Option {
	return func(m *Model) { m.baseURL = strings.TrimRight(url, "/") }
}

// WithAPIKey sets the API key. The default is the ANTHROPIC_API_KEY environment
// variable.
func WithAPIKey(key string) Option {
	return func(m *Model) { m.apiKey = key }
}

// WithAPIVersion sets the anthropic-version header: APIVersion20230601 (the default)
// or APIVersion20261021. From 2026-10-21 on, the key is sent as a bearer token instead
// of in x-api-key, and the temperature is not sent, since that version refuses it.
func WithAPIVersion(version string) Option {
	return func(m *Model) { m.version = version }
}

// WithHTTPClient sets the HTTP client. It should have no Timeout, which would cut
// long streams; bound the time to the response headers in its Transport instead. The
// default client does that.
func WithHTTPClient(c *http.Client) Option {
	return func(m *Model) { m.client = c }
}

// WithRetry sets how a request is retried before its response has started.
func WithRetry(p model.RetryPolicy) Option {
	return func(m *Model) { m.retry = p }
}

// WithMaxTokens sets the most tokens the model may generate in one response
// (DefaultMaxTokens unless set).
func WithMaxTokens(n int) Option {
	return func(m *Model) { m.maxTokens = n }
}

// WithTemperature sets the sampling temperature. API versions from 2026-10-21 on
// refuse the field, so it is not sent to them.
func WithTemperature(t float64) Option {
	return func(m *Model) { m.temperature = &t }
}

// WithHeader adds a header to every request, such as anthropic-beta. It cannot
// replace the authentication, version or content headers.
func WithHeader(key, value string) Option {
	return func(m *Model) { m.header.Add(key, value) }
}

// New returns a Model for the model id (such as "claude-sonnet-4-5").
func New(modelID string, opts ...Option) *Model {
	m := &Model{
		model:     modelID,
		baseURL:   strings.TrimRight(os.Getenv("ANTHROPIC_BASE_URL"), "/"),
		apiKey:    os.Getenv("ANTHROPIC_API_KEY"),
		version:   APIVersion20230601,
		maxTokens: DefaultMaxTokens,
		client:    defaultClient,
		header:    make(http.Header),
	}
	if m.baseURL == "" {
		m.baseURL = DefaultBaseURL
	}
	for _, o := range opts {
		o(m)
	}
	if m.client == nil {
		m.client = defaultClient
	}
	return m
}

// Provider returns "anthropic".
func (m *Model) Provider() string { return Provider }

// ModelID returns the model id given to New.
func (m *Model) ModelID() string { return m.model }

// bearer reports whether the API version authenticates with a bearer token, and
// refuses sampling parameters: every version from 2026-10-21 on. (Versions are dates,
// so they compare as strings.)
func (m *Model) bearer() bool {
	return m.version >= APIVersion20261021
}

// Stream sends req and streams the response: a chunk per text delta, then a last
// chunk with the tool calls the model asked for, the usage and the finish reason.
//
// The conversation is sent as the API's alternating user and assistant messages:
// tool messages become tool_result blocks of a user message, several in a row are
// grouped into one, and a tool call whose Arguments are not a JSON object is sent
// with the input {} (the API would refuse the request). In the response, a tool
// call's Arguments are the input as the model streamed it ({} if it streamed none),
// passed on even when it is not valid JSON, so that the tool can report the problem
// to the model. Usage.InputTokens counts the prompt-cache tokens as well. Stop
// reasons map onto model.FinishStop (end_turn, stop_sequence), FinishToolCalls
// (tool_use) and FinishLength (max_tokens, model_context_window_exceeded); others,
// such as refusal, are passed on as they are.
//
// Errors wrap model.ErrAuth, model.ErrRateLimited, model.ErrBadRequest or
// model.ErrServer (also for an error event inside the stream, such as
// overloaded_error), and model.ErrStreamCut when the stream ends before its
// message_stop event; errors.As finds the *model.APIError. Text yielded before an
// error stays yielded, and the request is not retried once the response has begun.
// When ctx is cancelled, Stream closes the connection and yields ctx's error.
// After message_stop, Stream reads the end of the response (the API ends it there)
// so that the connection can be reused.
func (m *Model) Stream(ctx context.Context, req *model.Request) iter.Seq2[model.Chunk, error] {
	return func(yield func(model.Chunk, error) bool) {
		if err := m.Check(req); err != nil {
			yield(model.Chunk{}, err)
			return
		}
		resp, err := m.send(ctx, req)
		if err != nil {
			yield(model.Chunk{}, err)
			return
		}
		defer resp.Body.Close()
		s := newStream(ctx, resp)
		if req != nil && req.Output != nil {
			s.output = req.Output.Name
		}
		s.run(yield)
	}
}

// send sends req and returns the response once it is known to be an event stream.
func (m *Model) send(ctx context.Context, req *model.Request) (*http.Response, error) {
	if m.apiKey == "" {
		return nil, ErrNoAPIKey
	}
	if req == nil {
		req = &model.Request{}
	}
	body, err := m.encode(req)
	if err != nil {
		return nil, fmt.Errorf("anthropic: encode request: %w", err)
	}
	url := m.baseURL + "/v1/messages"
	newReq := func(ctx context.Context) (*http.Request, error) {
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		m.setHeaders(r.Header)
		return r, nil
	}
	resp, err := apicall.Do(ctx, m.client, newReq, m.retry)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("anthropic: %w", err)
	}
	if err := checkEventStream(resp); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// setHeaders sets a request's headers: the extra ones first, so that they cannot
// replace the authentication, version and content headers.
func (m *Model) setHeaders(h http.Header) {
	for k, v := range m.header {
		h[k] = v
	}
	if m.bearer() {
		h.Set("Authorization", "Bearer "+m.apiKey)
		h.Del("X-Api-Key")
	} else {
		h.Set("X-Api-Key", m.apiKey)
		h.Del("Authorization")
	}
	h.Set("Anthropic-Version", m.version)
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "text/event-stream")
}

// checkEventStream returns ErrNotEventStream, with the start of the body, if resp is
// not text/event-stream.
func checkEventStream(resp *http.Response) error {
	ct := resp.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "text/event-stream" {
		return nil
	}
	start, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	return fmt.Errorf("%w: HTTP %d, Content-Type %q, body %q", ErrNotEventStream, resp.StatusCode, ct, start)
}
