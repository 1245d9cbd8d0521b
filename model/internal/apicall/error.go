package apicall

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors that callers tell apart with errors.Is. An *Error wraps the one that fits its
// status code, or for an error reported inside a stream, its type.
var (
	// ErrAuth means the provider rejected the credentials (401, 403).
	ErrAuth = errors.New("API key rejected")
	// ErrRateLimited means too many requests, or a spent quota (429).
	ErrRateLimited = errors.New("rate limited")
	// ErrBadRequest means the provider refused the request as sent (400, 404, 422 and the
	// other 4xx codes); the error's message says why.
	ErrBadRequest = errors.New("request rejected")
	// ErrServer means the provider failed or is overloaded (5xx, including Anthropic's
	// 529, and 408).
	ErrServer = errors.New("server error")
	// ErrStreamCut means a response stream ended before its terminal event. The providers
	// return it; nothing in this package does.
	ErrStreamCut = errors.New("stream ended before its terminal event")
)

// maxErrorBody is how much of an error response's body is read.
const maxErrorBody = 64 << 10

// maxSnippet is how much of a non-JSON error body goes into an Error's message.
const maxSnippet = 200

// Error is an error response from a provider's API, or an error event inside a stream.
type Error struct {
	// StatusCode is the HTTP status, or 0 for an error event inside a stream.
	StatusCode int
	// Type is the provider's error type, such as "invalid_request_error" or
	// "overloaded_error".
	Type string
	// Code is the provider's error code, such as "invalid_api_key"; Anthropic sends none.
	Code string
	// Message is the provider's message; for a body that is not JSON, such as a proxy's
	// HTML page, the start of the body.
	Message string
	// RequestID is the provider's id for the request, from the x-request-id or
	// request-id header or the body.
	RequestID string
	// RetryAfter is how long the provider asked the caller to wait before retrying, or 0.
	RetryAfter time.Duration
}

// Error formats e as "<sentinel>: HTTP <status> <type>: <message> (request id <id>)",
// leaving out what e lacks.
func (e *Error) Error() string {
	var b strings.Builder
	if k := e.Unwrap(); k != nil {
		b.WriteString(k.Error())
	} else {
		b.WriteString("API error")
	}
	b.WriteString(":")
	if e.StatusCode != 0 {
		b.WriteString(" HTTP ")
		b.WriteString(strconv.Itoa(e.StatusCode))
	}
	if e.Type != "" {
		b.WriteString(" ")
		b.WriteString(e.Type)
	}
	if e.Message != "" {
		if e.StatusCode != 0 || e.Type != "" {
			b.WriteString(":")
		}
		b.WriteString(" ")
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request id ")
		b.WriteString(e.RequestID)
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the sentinel error e belongs to: by status code for an HTTP error
// (401 and 403 ErrAuth; 429 ErrRateLimited; 408 and 5xx ErrServer; other 4xx
// ErrBadRequest), and by type or code for an error inside a stream. It returns nil
// for an in-stream error of a type it does not know.
func (e *Error) Unwrap() error {
	switch s := e.StatusCode; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return ErrAuth
	case s == http.StatusTooManyRequests:
		return ErrRateLimited
	case s == http.StatusRequestTimeout || s >= 500:
		return ErrServer
	case s >= 400:
		return ErrBadRequest
	}
	if k := kinds[e.Type]; k != nil {
		return k
	}
	return kinds[e.Code]
}

// kinds classifies the error types and codes the providers send inside streams.
var kinds = map[string]error{
	// Anthropic types.
	"authentication_error":  ErrAuth,
	"permission_error":      ErrAuth,
	"rate_limit_error":      ErrRateLimited,
	"invalid_request_error": ErrBadRequest,
	"not_found_error":       ErrBadRequest,
	"request_too_large":     ErrBadRequest,
	"billing_error":         ErrBadRequest,
	"api_error":             ErrServer,
	"overloaded_error":      ErrServer,
	"timeout_error":         ErrServer,
	// OpenAI types and codes.
	"invalid_api_key":     ErrAuth,
	"rate_limit_exceeded": ErrRateLimited,
	"insufficient_quota":  ErrRateLimited,
	"server_error":        ErrServer,
}

// ParseError builds the Error for an error body of either provider: OpenAI's
// {"error":{"message","type","param","code"}}, Anthropic's
// {"type":"error","error":{"type","message"},"request_id"}, or the flat
// {"message","type","code"} some compatible servers send. The header, which may be
// nil, supplies the request id and the retry-after wait. For an error event inside a
// stream, pass status 0 and the event's data. A body that is not JSON still makes an
// Error, whose message is the start of the body.
func ParseError(status int, header http.Header, body []byte) *Error {
	e := &Error{StatusCode: status}
	if !e.parseJSON(body) {
		e.Message = snippet(body)
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	if id := requestID(header); id != "" {
		e.RequestID = id
	}
	e.RetryAfter, _ = retryAfter(header, time.Now())
	return e
}

// parseJSON fills e from a JSON error body, reporting whether body is a JSON object.
// Fields of unexpected JSON types are taken as their JSON text.
func (e *Error) parseJSON(body []byte) bool {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return false
	}
	fields := top
	if raw, ok := top["error"]; ok {
		var inner map[string]json.RawMessage
		if json.Unmarshal(raw, &inner) == nil {
			fields = inner
		} else {
			e.Message = jsonText(raw) // {"error":"model not found"}
		}
	}
	e.Type = jsonText(fields["type"])
	e.Code = jsonText(fields["code"])
	if e.Message == "" {
		e.Message = jsonText(fields["message"])
	}
	e.RequestID = jsonText(top["request_id"])
	return true
}

// jsonText returns a JSON string's value, "" for null or nothing, and the JSON text of
// anything else.
func jsonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	return string(raw)
}

// snippet returns the start of a non-JSON body on one line, cut to maxSnippet bytes.
func snippet(body []byte) string {
	s := strings.Join(strings.Fields(string(bytes.ToValidUTF8(body, []byte("\uFFFD")))), " ")
	if len(s) <= maxSnippet {
		return s
	}
	cut := maxSnippet
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// requestID returns the request id header of either provider.
func requestID(h http.Header) string {
	if id := h.Get("x-request-id"); id != "" {
		return id
	}
	return h.Get("request-id")
}

// retryAfter returns the wait the retry-after-ms or Retry-After header asks for (in
// that order of preference; Retry-After in seconds or as an HTTP date, relative to
// now) and whether either header held a valid value.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if v := h.Get("retry-after-ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 && ms < 1e12 {
			return time.Duration(ms * float64(time.Millisecond)), true
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 && s < 1e9 {
		return time.Duration(s * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
