// Package apicall sends one request to an LLM provider's HTTP API the way every
// provider client needs it sent: it retries rate limits, server errors and broken
// connections with backoff before any of the response is used, and it turns error
// responses of OpenAI, Anthropic and compatible servers into an *Error that callers
// classify with errors.Is (ErrAuth, ErrRateLimited, ErrBadRequest, ErrServer).
//
// Retrying stops once Do has returned a response: the caller streams the body and
// must not retry after content has reached its own caller, or output would repeat.
package apicall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/propagation"
)

// Defaults of a RetryPolicy's zero fields.
const (
	DefaultMaxRetries = 2
	DefaultBaseDelay  = 500 * time.Millisecond
	DefaultMaxDelay   = 60 * time.Second
	DefaultMaxElapsed = 2 * time.Minute
)

// RetryPolicy says when Do retries. Its zero value retries as the official SDKs do:
// twice, with exponential backoff.
type RetryPolicy struct {
	// MaxRetries is how many times a request is retried after its first attempt.
	// Zero means DefaultMaxRetries; negative means never.
	MaxRetries int
	// BaseDelay is the longest backoff before the first retry when the server asks
	// for no particular wait; it doubles with each retry, and the actual wait is drawn
	// uniformly below it ("full jitter"). Zero means DefaultBaseDelay.
	BaseDelay time.Duration
	// MaxDelay caps every backoff, and is the longest wait a server may ask for with
	// retry-after-ms or Retry-After: if it asks for longer, Do gives up and returns
	// the error, whose RetryAfter says how long the server wanted. Zero means
	// DefaultMaxDelay.
	MaxDelay time.Duration
	// MaxElapsed bounds the time from the first attempt to the last: Do does not start
	// a wait that would end after it. Zero means DefaultMaxElapsed.
	MaxElapsed time.Duration
	// OnRetry, if not nil, is called before each wait, with the number of the retry
	// about to be made (1 for the first), the wait and the failure being retried.
	OnRetry func(retry int, wait time.Duration, err error)
}

// withDefaults returns p with its zero fields set to the defaults.
func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxRetries == 0 {
		p.MaxRetries = DefaultMaxRetries
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultBaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultMaxDelay
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = DefaultMaxElapsed
	}
	return p
}

// backoff returns the jittered wait before retry number n (1 for the first).
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	return rand.N(d + 1)
}

// Do sends the request newReq builds and returns the response once its status is 2xx;
// the caller reads and closes its body. newReq is called once per attempt, with ctx,
// and must build a fresh request (and body) each time.
//
// Do retries a response with status 408, 409, 429 or 5xx (except 501), and a failure
// to get a response at all, unless the provider says not to (x-should-retry: false,
// or OpenAI's insufficient_quota). It waits for what the server asks in retry-after-ms
// or Retry-After, or else an exponential backoff, within the limits of p. A wait ends
// early when ctx is done.
//
// An error response that is not retried, or whose retries ran out, is returned as an
// *Error, and a failed connection as the http.Client's error; after retries the error
// is wrapped as "after N attempts: ...". When ctx is done, Do returns ctx.Err().
func Do(ctx context.Context, client *http.Client, newReq func(context.Context) (*http.Request, error), p RetryPolicy) (*http.Response, error) {
	p = p.withDefaults()
	if client == nil {
		client = http.DefaultClient
	}
	start := time.Now()
	for n := 1; ; n++ {
		resp, retry, err := send(ctx, client, newReq)
		if err == nil {
			return resp, nil
		}
		wait, ok := p.wait(n, err)
		if !retry || !ok || n > p.MaxRetries || time.Since(start)+wait > p.MaxElapsed {
			if n > 1 {
				return nil, fmt.Errorf("after %d attempts: %w", n, err)
			}
			return nil, err
		}
		if p.OnRetry != nil {
			p.OnRetry(n, wait, err)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// send makes one attempt. It returns the response if its status is 2xx, and otherwise
// the error and whether a retry may succeed.
func send(ctx context.Context, client *http.Client, newReq func(context.Context) (*http.Request, error)) (resp *http.Response, retry bool, err error) {
	req, err := newReq(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("build request: %w", err)
	}
	// The request is part of the run's trace when its context carries a span
	// (telemetry on): a W3C traceparent goes out; nothing without one.
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err = client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, true, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, false, nil
	}
	e := readError(resp)
	return nil, retryable(resp.StatusCode, resp.Header, e), e
}

// readError reads and closes the body of an error response and parses it.
func readError(resp *http.Response) *Error {
	defer resp.Body.Close()
	// A body cut short still says something, so a read error is ignored.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return ParseError(resp.StatusCode, resp.Header, body)
}

// retryable reports whether an error response is worth retrying.
func retryable(status int, h http.Header, e *Error) bool {
	switch h.Get("x-should-retry") {
	case "true":
		return true
	case "false":
		return false
	}
	if e.Type == "insufficient_quota" || e.Code == "insufficient_quota" {
		return false // a spent quota does not come back in seconds
	}
	switch status {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooManyRequests:
		return true
	case http.StatusNotImplemented:
		return false
	}
	return status >= 500
}

// wait returns how long to wait before retry number n after err, and false if the
// server asked for a longer wait than p allows.
func (p RetryPolicy) wait(n int, err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return e.RetryAfter, e.RetryAfter <= p.MaxDelay
	}
	return p.backoff(n), true
}

// sleep waits for d, or until ctx is done and then returns ctx.Err().
func sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// StreamingClient returns an HTTP client for streamed responses: no overall timeout,
// which would cut long streams, but each phase before the response starts is bounded,
// the response's headers by responseHeader.
func StreamingClient(responseHeader time.Duration) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: responseHeader,
		ExpectContinueTimeout: time.Second,
	}}
}
