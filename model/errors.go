package model

import "github.com/kern-dev/kern/model/internal/apicall"

// Errors a provider returns, for errors.Is. Every provider classifies its failures
// the same way.
var (
	// ErrAuth: the provider rejected the API key (HTTP 401 or 403).
	ErrAuth = apicall.ErrAuth
	// ErrRateLimited: too many requests (HTTP 429), after the retries allowed.
	ErrRateLimited = apicall.ErrRateLimited
	// ErrBadRequest: the provider refused the request (HTTP 400, 404, 422); the
	// error carries its message.
	ErrBadRequest = apicall.ErrBadRequest
	// ErrServer: the provider failed (HTTP 5xx, or an error event in a stream), after
	// the retries allowed.
	ErrServer = apicall.ErrServer
	// ErrStreamCut: the response stream ended before its final event.
	ErrStreamCut = apicall.ErrStreamCut
)

// APIError is a provider's error answer: its HTTP status, type, code, message and
// request id. Use errors.As to read it.
type APIError = apicall.Error

// RetryPolicy bounds how a provider retries a request that failed before any of its
// response reached the caller (429, 5xx, a dropped connection). The zero value is the
// default: 2 retries, exponential backoff with jitter from 500 ms, honouring the
// provider's Retry-After. A streamed response is never retried once content has
// reached the caller.
type RetryPolicy = apicall.RetryPolicy
