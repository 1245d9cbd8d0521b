// Package openai is a thin, dependency-free client for OpenAI's streaming APIs and the
// servers that copy them, as a kern model.Model.
//
// Responses (NewResponses) speaks the Responses API, POST {base}/responses, which is
// OpenAI's current API and is also served by Ollama, llama.cpp's llama-server and LM
// Studio. Chat (NewChat) speaks Chat Completions, POST {base}/chat/completions, which
// every OpenAI-compatible server implements: OpenAI, Ollama, vLLM, llama.cpp, LM Studio
// and others. Both stream their answers over Server-Sent Events and turn them into
// model.Chunks: text deltas as they arrive, complete tool calls, then the usage and the
// finish reason.
//
// Requests are retried (rate limits, server errors, dropped connections) only until a
// response starts streaming; errors are classified with model.ErrAuth,
// model.ErrRateLimited, model.ErrBadRequest, model.ErrServer and model.ErrStreamCut.
//
// Package openaitest is a fake OpenAI server for tests.
package openai

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/internal/apicall"
)

// Provider is the provider name both models report.
const Provider = "openai"

// DefaultBaseURL is the base URL used when neither WithBaseURL nor OPENAI_BASE_URL
// sets one.
const DefaultBaseURL = "https://api.openai.com/v1"

// ErrNoAPIKey is returned by Stream, before anything is sent, when the base URL is
// OpenAI's own API and no API key was given. Local servers need no key.
var ErrNoAPIKey = errors.New("openai: no API key: set OPENAI_API_KEY or use WithAPIKey")

// ErrNotEventStream is wrapped by the error of a successful response whose body is not
// an event stream, such as a proxy's HTML page or a server that ignored "stream": true.
var ErrNotEventStream = errors.New("openai: response is not an event stream")

// Option configures a Responses or Chat model.
type Option func(*config)

// WithBaseURL sets the API's base URL, such as "http://localhost:11434/v1" for Ollama.
// The default is the OPENAI_BASE_URL environment variable, or DefaultBaseURL.
func WithBaseURL(u string) Option { return func(c *config) { c.baseURL = u } }

// WithAPIKey sets the API key sent as a bearer token. The default is the
// OPENAI_API_KEY environment variable.
func WithAPIKey(key string) Option { return func(c *config) { c.apiKey = key } }

// WithOrganization sets the OpenAI-Organization header.
func WithOrganization(id string) Option { return WithHeader("OpenAI-Organization", id) }

// WithProject sets the OpenAI-Project header.
func WithProject(id string) Option { return WithHeader("OpenAI-Project", id) }

// WithHeader adds a header to every request, replacing one of the same name set
// earlier.
func WithHeader(key, value string) Option {
	return func(c *config) {
		if c.header == nil {
			c.header = make(http.Header)
		}
		c.header.Set(key, value)
	}
}

// WithHTTPClient sets the HTTP client. Give it no overall Timeout: it would cut long
// answers off; bound a request with its context instead. The default client shares
// one connection pool between all models of this package, with timeouts on dialling,
// the TLS handshake and the wait for response headers, and none on the stream.
func WithHTTPClient(c *http.Client) Option { return func(cfg *config) { cfg.client = c } }

// WithRetry sets how requests are retried before their response starts streaming. The
// zero policy retries twice with backoff.
func WithRetry(p model.RetryPolicy) Option { return func(c *config) { c.retry = p } }

// defaultClient is shared by every model without WithHTTPClient, so that they share
// connections.
// Local servers may load a model before they answer; OpenAI answers at once.
var defaultClient = apicall.StreamingClient(3 * time.Minute)

// config is what both models need to send a request.
type config struct {
	model   string
	baseURL string
	apiKey  string
	header  http.Header
	client  *http.Client
	retry   model.RetryPolicy
	needKey bool // the base URL is OpenAI's, which refuses requests without a key
}

// newConfig reads the environment, then applies opts.
func newConfig(modelID string, opts []Option) *config {
	c := &config{model: modelID, baseURL: os.Getenv("OPENAI_BASE_URL"), apiKey: os.Getenv("OPENAI_API_KEY")}
	if c.baseURL == "" {
		c.baseURL = DefaultBaseURL
	}
	for _, o := range opts {
		o(c)
	}
	c.baseURL = strings.TrimRight(c.baseURL, "/")
	if c.client == nil {
		c.client = defaultClient
	}
	if u, err := url.Parse(c.baseURL); err == nil {
		c.needKey = strings.EqualFold(u.Hostname(), "api.openai.com")
	}
	return c
}

// open sends body to path and returns the streaming response once it is known to be
// an event stream. When ctx is done it returns ctx's error unwrapped.
func (c *config) open(ctx context.Context, path string, body []byte) (*http.Response, error) {
	if c.apiKey == "" && c.needKey {
		return nil, ErrNoAPIKey
	}
	endpoint := c.baseURL + path
	resp, err := apicall.Do(ctx, c.client, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		for k, v := range c.header {
			req.Header[k] = v
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		if c.apiKey != "" {
			req.Header.Set("Authorization", "Bearer "+c.apiKey)
		}
		return req, nil
	}, c.retry)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("openai: POST %s: %w", endpoint, err)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		defer resp.Body.Close()
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return nil, fmt.Errorf("%w: POST %s: HTTP %d, Content-Type %q: %q", ErrNotEventStream, endpoint,
			resp.StatusCode, resp.Header.Get("Content-Type"), head)
	}
	return resp, nil
}

// readError is the error that ends a stream whose body could not be read: ctx's
// error if it is done, or a cut stream.
func readError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == io.EOF {
		return fmt.Errorf("openai: %w", model.ErrStreamCut)
	}
	return fmt.Errorf("openai: %w: %w", model.ErrStreamCut, err)
}

// streamError turns an error reported inside a stream (the JSON of the error object,
// or of an event with a top-level "error" key) into an *apicall.Error. One of an
// unknown class is classified as model.ErrServer, as the provider failed.
func streamError(header http.Header, data []byte) error {
	e := apicall.ParseError(0, header, data)
	if e.Type == "error" {
		e.Type = "" // the flat form {"type":"error","code","message"}: the event's type
	}
	if e.Unwrap() == nil {
		return fmt.Errorf("openai: %w: %w", model.ErrServer, e)
	}
	return fmt.Errorf("openai: %w", e)
}

// arguments returns a tool call's arguments as the model wrote them, or {} if it
// wrote none. Invalid JSON is passed on: the agent reports it to the model.
func arguments(s string) []byte {
	if s == "" {
		return []byte("{}")
	}
	return []byte(s)
}

// usage fills in a total the server left out.
func usage(in, out, total int) *model.Usage {
	if total == 0 {
		total = in + out
	}
	return &model.Usage{InputTokens: in, OutputTokens: out, TotalTokens: total}
}
