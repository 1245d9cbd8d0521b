package apicall

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const payload = `{"model":"gpt-5.2","input":"hi","stream":true}`

// reply is one scripted response of a fake provider.
type reply struct {
	status int
	header map[string]string
	body   string
	drop   bool // hijack the connection and close it instead of answering
}

// fake is a provider that answers each request with the next reply of its script,
// repeating the last one, and counts the requests.
type fake struct {
	t      *testing.T
	srv    *httptest.Server
	script []reply
	calls  atomic.Int32
}

func newFake(t *testing.T, script ...reply) *fake {
	t.Helper()
	f := &fake{t: t, script: script}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close) // also closes the client's idle connections
	return f
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	n := int(f.calls.Add(1))
	if body, err := io.ReadAll(r.Body); err != nil || string(body) != payload {
		f.t.Errorf("request %d: body %q, %v; want %q", n, body, err, payload)
	}
	rep := f.script[min(n, len(f.script))-1]
	if rep.drop {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			f.t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
		return
	}
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.body)
}

// do calls Do against the fake with policy p, recording the retries it reports.
func (f *fake) do(ctx context.Context, p RetryPolicy) (*http.Response, []retryCall, error) {
	var (
		mu      sync.Mutex
		retries []retryCall
	)
	onRetry := p.OnRetry
	p.OnRetry = func(n int, wait time.Duration, err error) {
		mu.Lock()
		retries = append(retries, retryCall{n, wait, err})
		mu.Unlock()
		if onRetry != nil {
			onRetry(n, wait, err)
		}
	}
	newReq := func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodPost, f.srv.URL+"/v1/responses", strings.NewReader(payload))
	}
	resp, err := Do(ctx, f.srv.Client(), newReq, p)
	return resp, retries, err
}

// retryCall records one call of RetryPolicy.OnRetry.
type retryCall struct {
	n    int
	wait time.Duration
	err  error
}

// fast is a policy whose backoffs take at most a millisecond.
var fast = RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}

var ok200 = reply{status: 200, header: map[string]string{"Content-Type": "text/event-stream"}, body: "event: done\ndata: {}\n\n"}

const (
	openAI429 = `{"error":{"message":"Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000. Please try again in 2s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}`
	openAI503 = `{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","param":null,"code":null}}`
)

// readBody reads and closes a successful response's body.
func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func TestDoRetryAfterHeader(t *testing.T) {
	t.Parallel()
	f := newFake(t,
		reply{status: 429, header: map[string]string{"retry-after-ms": "1", "Retry-After": "7"}, body: openAI429},
		ok200)
	p := RetryPolicy{MaxDelay: time.Second} // the backoff would be up to 500ms
	resp, retries, err := f.do(t.Context(), p)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if got := readBody(t, resp); got != ok200.body {
		t.Errorf("body = %q, want %q", got, ok200.body)
	}
	if n := f.calls.Load(); n != 2 {
		t.Errorf("server saw %d requests, want 2", n)
	}
	if len(retries) != 1 {
		t.Fatalf("OnRetry called %d times, want 1", len(retries))
	}
	r := retries[0]
	if r.n != 1 || r.wait != time.Millisecond || !errors.Is(r.err, ErrRateLimited) {
		t.Errorf("OnRetry(%d, %v, %v), want (1, 1ms, a rate-limit error)", r.n, r.wait, r.err)
	}
}

func TestDoRetriedStatuses(t *testing.T) {
	t.Parallel()
	for _, status := range []int{408, 409, 429, 500, 502, 503, 504, 529} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			f := newFake(t, reply{status: status, body: openAI503}, ok200)
			resp, retries, err := f.do(t.Context(), fast)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			resp.Body.Close()
			if n := f.calls.Load(); n != 2 || len(retries) != 1 {
				t.Errorf("%d requests and %d retries, want 2 and 1", n, len(retries))
			}
		})
	}
}

func TestDoGivesUp(t *testing.T) {
	t.Parallel()
	f := newFake(t, reply{status: 503, header: map[string]string{"retry-after-ms": "1", "x-request-id": "req_503"}, body: openAI503})
	resp, retries, err := f.do(t.Context(), RetryPolicy{})
	if resp != nil {
		t.Errorf("Do returned a response")
	}
	if !errors.Is(err, ErrServer) {
		t.Fatalf("err = %v, want ErrServer", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != 503 || e.RequestID != "req_503" || e.Type != "server_error" {
		t.Errorf("err = %#v, want the 503's *Error", e)
	}
	if n := f.calls.Load(); n != 3 || len(retries) != 2 {
		t.Errorf("%d requests and %d retries, want 3 and 2", n, len(retries))
	}
	want := "after 3 attempts: server error: HTTP 503 server_error: The engine is currently overloaded, please try again later (request id req_503)"
	if err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
}

func TestDoConnectionDropped(t *testing.T) {
	t.Parallel()
	f := newFake(t, reply{drop: true}, ok200)
	resp, retries, err := f.do(t.Context(), fast)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	resp.Body.Close()
	if n := f.calls.Load(); n != 2 {
		t.Errorf("server saw %d requests, want 2", n)
	}
	var e *Error
	if len(retries) != 1 || errors.As(retries[0].err, &e) {
		t.Errorf("retries = %v, want one after a connection error", retries)
	}
}

func TestDoNotRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy RetryPolicy
		reply  reply
		want   error
	}{
		{"401", fast, reply{status: 401, body: `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`}, ErrAuth},
		{"403", fast, reply{status: 403, body: `{"type":"error","error":{"type":"permission_error","message":"no"}}`}, ErrAuth},
		{"400", fast, reply{status: 400, body: `{"error":{"message":"bad","type":"invalid_request_error","param":"input","code":null}}`}, ErrBadRequest},
		{"404", fast, reply{status: 404}, ErrBadRequest},
		{"422", fast, reply{status: 422}, ErrBadRequest},
		{"501", fast, reply{status: 501}, ErrServer},
		{"insufficient quota", fast, reply{status: 429, body: `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`}, ErrRateLimited},
		{"x-should-retry false", fast, reply{status: 503, header: map[string]string{"x-should-retry": "false"}}, ErrServer},
		{"retries disabled", RetryPolicy{MaxRetries: -1}, reply{status: 503}, ErrServer},
		{"out of time", RetryPolicy{MaxElapsed: time.Nanosecond}, reply{status: 503}, ErrServer},
		{"wait too long", RetryPolicy{MaxDelay: time.Minute}, reply{status: 429, header: map[string]string{"Retry-After": "120"}}, ErrRateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, tt.reply, ok200)
			_, retries, err := f.do(t.Context(), tt.policy)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if n := f.calls.Load(); n != 1 || len(retries) != 0 {
				t.Errorf("%d requests and %d retries, want 1 and 0", n, len(retries))
			}
		})
	}
}

func TestDoShouldRetryHeader(t *testing.T) {
	t.Parallel()
	f := newFake(t, reply{status: 400, header: map[string]string{"x-should-retry": "true"}}, ok200)
	resp, _, err := f.do(t.Context(), fast)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	resp.Body.Close()
	if n := f.calls.Load(); n != 2 {
		t.Errorf("server saw %d requests, want 2", n)
	}
}

func TestDoRetryAfterTooLong(t *testing.T) {
	t.Parallel()
	f := newFake(t, reply{status: 429, header: map[string]string{"Retry-After": "120"}, body: openAI429}, ok200)
	_, _, err := f.do(t.Context(), RetryPolicy{})
	var e *Error
	if !errors.As(err, &e) || e.RetryAfter != 2*time.Minute {
		t.Fatalf("err = %v, want an *Error with RetryAfter 2m", err)
	}
}

func TestDoCancelDuringWait(t *testing.T) {
	t.Parallel()
	f := newFake(t, reply{status: 529, header: map[string]string{"retry-after-ms": "3600000"}}, ok200)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	p := RetryPolicy{MaxDelay: 2 * time.Hour, MaxElapsed: 3 * time.Hour, OnRetry: func(int, time.Duration, error) { cancel() }}
	_, retries, err := f.do(ctx, p)
	if err != context.Canceled {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if len(retries) != 1 || retries[0].wait != time.Hour {
		t.Errorf("retries = %v, want one waiting 1h", retries)
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

func TestDoCancelledContext(t *testing.T) {
	t.Parallel()
	f := newFake(t, ok200)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := f.do(ctx, fast); err != context.Canceled {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestDoNewRequestError(t *testing.T) {
	t.Parallel()
	bad := errors.New("bad request body")
	calls := 0
	newReq := func(context.Context) (*http.Request, error) {
		calls++
		return nil, bad
	}
	if _, err := Do(t.Context(), nil, newReq, fast); !errors.Is(err, bad) || calls != 1 {
		t.Errorf("err = %v after %d calls, want %v after 1", err, calls, bad)
	}
}

func TestDoErrorBodies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply reply
		want  Error
		kind  error
		text  string
	}{
		{
			name: "openai 400",
			reply: reply{status: 400, header: map[string]string{"x-request-id": "req_abc"},
				body: `{"error":{"message":"Missing required parameter: 'input'.","type":"invalid_request_error","param":"input","code":"missing_required_parameter"}}`},
			want: Error{StatusCode: 400, Type: "invalid_request_error", Code: "missing_required_parameter", Message: "Missing required parameter: 'input'.", RequestID: "req_abc"},
			kind: ErrBadRequest,
			text: "request rejected: HTTP 400 invalid_request_error: Missing required parameter: 'input'. (request id req_abc)",
		},
		{
			name: "anthropic 400",
			reply: reply{status: 400,
				body: `{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"},"request_id":"req_011CS"}`},
			want: Error{StatusCode: 400, Type: "invalid_request_error", Message: "max_tokens: Field required", RequestID: "req_011CS"},
			kind: ErrBadRequest,
			text: "request rejected: HTTP 400 invalid_request_error: max_tokens: Field required (request id req_011CS)",
		},
		{
			name: "anthropic 401",
			reply: reply{status: 401, header: map[string]string{"request-id": "req_h"},
				body: `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_b"}`},
			want: Error{StatusCode: 401, Type: "authentication_error", Message: "invalid x-api-key", RequestID: "req_h"},
			kind: ErrAuth,
			text: "API key rejected: HTTP 401 authentication_error: invalid x-api-key (request id req_h)",
		},
		{
			name:  "compatible server, flat",
			reply: reply{status: 400, body: `{"object":"error","message":"model x does not exist","type":"NotFoundError","param":null,"code":404}`},
			want:  Error{StatusCode: 400, Type: "NotFoundError", Code: "404", Message: "model x does not exist"},
			kind:  ErrBadRequest,
		},
		{
			name:  "error as a string",
			reply: reply{status: 404, body: `{"error":"model 'llama9' not found"}`},
			want:  Error{StatusCode: 404, Message: "model 'llama9' not found"},
			kind:  ErrBadRequest,
		},
		{
			name: "proxy html",
			reply: reply{status: 502, header: map[string]string{"Content-Type": "text/html"},
				body: "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"},
			want: Error{StatusCode: 502, Message: "<html> <head><title>502 Bad Gateway</title></head> <body> <center><h1>502 Bad Gateway</h1></center> </body> </html>"},
			kind: ErrServer,
			text: "after 3 attempts: server error: HTTP 502: <html> <head><title>502 Bad Gateway</title></head> <body> <center><h1>502 Bad Gateway</h1></center> </body> </html>",
		},
		{
			name:  "empty body",
			reply: reply{status: 500},
			want:  Error{StatusCode: 500, Message: "Internal Server Error"},
			kind:  ErrServer,
			text:  "after 3 attempts: server error: HTTP 500: Internal Server Error",
		},
		{
			name:  "long binary body",
			reply: reply{status: 400, body: strings.Repeat("é\xff", 1000)},
			want:  Error{StatusCode: 400, Message: strings.Repeat("é\uFFFD", 200/5) + "…"},
			kind:  ErrBadRequest,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, tt.reply)
			_, _, err := f.do(t.Context(), fast)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want an *Error", err)
			}
			if *e != tt.want {
				t.Errorf("error = %#v\nwant    %#v", *e, tt.want)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("err = %v, want %v", err, tt.kind)
			}
			if tt.text != "" && err.Error() != tt.text {
				t.Errorf("err = %q\nwant  %q", err, tt.text)
			}
		})
	}
}

// TestDoErrorBodyLimit checks that an endless error body is read only up to the limit.
func TestDoErrorBodyLimit(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		chunk := bytes.Repeat([]byte("x"), 4096)
		for range 2 * maxErrorBody / len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	newReq := func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	}
	_, err := Do(t.Context(), srv.Client(), newReq, fast)
	var e *Error
	if !errors.As(err, &e) || !strings.HasSuffix(e.Message, "…") || len(e.Message) > maxSnippet+len("…") {
		t.Errorf("err = %v, want a 400 with a cut message", err)
	}
}

func TestParseErrorInStream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data string
		want Error
		kind error
		text string
	}{
		{
			name: "anthropic overloaded",
			data: `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
			want: Error{Type: "overloaded_error", Message: "Overloaded", RequestID: "req_hdr"},
			kind: ErrServer,
			text: "server error: overloaded_error: Overloaded (request id req_hdr)",
		},
		{
			name: "openai nested",
			data: `{"type":"error","sequence_number":2,"error":{"type":"insufficient_quota","code":"insufficient_quota","message":"You exceeded your current quota","param":null}}`,
			want: Error{Type: "insufficient_quota", Code: "insufficient_quota", Message: "You exceeded your current quota", RequestID: "req_hdr"},
			kind: ErrRateLimited,
		},
		{
			name: "openai flat",
			data: `{"type":"error","code":"server_error","message":"oops","param":null,"sequence_number":3}`,
			want: Error{Type: "error", Code: "server_error", Message: "oops", RequestID: "req_hdr"},
			kind: ErrServer,
		},
		{
			name: "unknown type",
			data: `{"type":"error","error":{"type":"mystery_error","message":"?"}}`,
			want: Error{Type: "mystery_error", Message: "?", RequestID: "req_hdr"},
			text: "API error: mystery_error: ? (request id req_hdr)",
		},
	}
	h := http.Header{"Request-Id": {"req_hdr"}}
	for _, tt := range tests {
		e := ParseError(0, h, []byte(tt.data))
		if *e != tt.want {
			t.Errorf("%s: error = %#v\nwant    %#v", tt.name, *e, tt.want)
		}
		if got := e.Unwrap(); got != tt.kind {
			t.Errorf("%s: Unwrap() = %v, want %v", tt.name, got, tt.kind)
		}
		if tt.text != "" && e.Error() != tt.text {
			t.Errorf("%s: Error() = %q\nwant      %q", tt.name, e.Error(), tt.text)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 5, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		header map[string]string
		want   time.Duration
		ok     bool
	}{
		{nil, 0, false},
		{map[string]string{"retry-after-ms": "250"}, 250 * time.Millisecond, true},
		{map[string]string{"retry-after-ms": "1.5"}, 1500 * time.Microsecond, true},
		{map[string]string{"retry-after-ms": "10", "Retry-After": "30"}, 10 * time.Millisecond, true},
		{map[string]string{"retry-after-ms": "soon", "Retry-After": "30"}, 30 * time.Second, true},
		{map[string]string{"Retry-After": "2"}, 2 * time.Second, true},
		{map[string]string{"Retry-After": "0"}, 0, true},
		{map[string]string{"Retry-After": "-1"}, 0, false},
		{map[string]string{"Retry-After": "Thu, 05 Nov 2026 12:00:09 GMT"}, 9 * time.Second, true},
		{map[string]string{"Retry-After": "Thu, 05 Nov 2026 11:00:00 GMT"}, 0, true},
		{map[string]string{"Retry-After": "tomorrow"}, 0, false},
	}
	for _, tt := range tests {
		h := http.Header{}
		for k, v := range tt.header {
			h.Set(k, v)
		}
		got, ok := retryAfter(h, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("retryAfter(%v) = %v, %v; want %v, %v", tt.header, got, ok, tt.want, tt.ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{MaxRetries: 10, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}.withDefaults()
	limits := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for i, limit := range limits {
		for range 100 {
			if d := p.backoff(i + 1); d < 0 || d > limit*time.Millisecond {
				t.Fatalf("backoff(%d) = %v, want within [0, %vms]", i+1, d, limit)
			}
		}
	}
}

func TestRetryPolicyDefaults(t *testing.T) {
	t.Parallel()
	got := RetryPolicy{}.withDefaults()
	if got.MaxRetries != DefaultMaxRetries || got.BaseDelay != DefaultBaseDelay ||
		got.MaxDelay != DefaultMaxDelay || got.MaxElapsed != DefaultMaxElapsed {
		t.Errorf("zero policy = %+v, want the defaults", got)
	}
}
