package sdkcheck_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/responses"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/openai"
	"github.com/kern-dev/kern/model/openai/openaitest"
)

// openAISDK returns an official SDK client for srv.
func openAISDK(srv *openaitest.Server, opts ...option.RequestOption) sdk.Client {
	base := []option.RequestOption{
		option.WithBaseURL(srv.URL),
		option.WithAPIKey(openaitest.APIKey),
		option.WithHTTPClient(srv.Client()),
	}
	return sdk.NewClient(append(base, opts...)...)
}

// kernOpenAI returns kern's options for srv.
func kernOpenAI(srv *openaitest.Server, opts ...openai.Option) []openai.Option {
	base := []openai.Option{
		openai.WithBaseURL(srv.URL),
		openai.WithAPIKey(openaitest.APIKey),
		openai.WithHTTPClient(srv.Client()),
	}
	return append(base, opts...)
}

// noRetry is kern's policy of no retries, as option.WithMaxRetries(0).
var noRetry = openai.WithRetry(model.RetryPolicy{MaxRetries: -1})

// sdkResponses is what the SDK's Responses stream delivered.
type sdkResponses struct {
	types   []string
	text    string
	doneTxt string // the text of response.output_text.done
	calls   []call
	usage   *model.Usage
	status  string // the status of the terminal event's response
	failure *responses.ResponseError
	err     error
	shape   shapeReport
}

// streamResponsesSDK consumes one Responses stream with the official SDK.
func streamResponsesSDK(ctx context.Context, c sdk.Client, params responses.ResponseNewParams) sdkResponses {
	var r sdkResponses
	stream := c.Responses.NewStreaming(ctx, params)
	defer stream.Close()
	var text strings.Builder
	index := map[string]int{} // item id -> index in r.calls
	for stream.Next() {
		ev := stream.Current()
		r.types = append(r.types, ev.Type)
		s := checkShape(ev.AsAny())
		r.shape.invalid = append(r.shape.invalid, s.invalid...)
		r.shape.missing = append(r.shape.missing, s.missing...)
		switch ev.Type {
		case "response.output_text.delta":
			text.WriteString(ev.Delta)
		case "response.output_text.done":
			r.doneTxt = ev.Text
		case "response.output_item.added":
			if ev.Item.Type == "function_call" {
				fc := ev.Item.AsFunctionCall()
				index[fc.ID] = len(r.calls)
				r.calls = append(r.calls, call{ID: fc.CallID, Name: fc.Name, Args: fc.Arguments})
			}
		case "response.function_call_arguments.delta":
			r.calls[index[ev.ItemID]].Args += ev.Delta
		case "response.completed", "response.incomplete", "response.failed":
			r.status = string(ev.Response.Status)
			if ev.Response.JSON.Usage.Valid() {
				u := ev.Response.Usage
				r.usage = &model.Usage{InputTokens: int(u.InputTokens), OutputTokens: int(u.OutputTokens), TotalTokens: int(u.TotalTokens)}
			}
			if ev.Response.JSON.Error.Valid() {
				r.failure = &ev.Response.Error
			}
		}
	}
	r.text = text.String()
	r.err = stream.Err()
	return r
}

var hello = responses.ResponseNewParams{
	Model: "gpt-5.2",
	Input: responses.ResponseNewParamsInputUnion{OfString: sdk.String("hi")},
}

// TestResponsesFixtures streams every Responses fixture through the official SDK and
// through kern's client, each against its own fake, and compares what they got.
func TestResponsesFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fixture string
		status  string             // the SDK's terminal status
		finish  model.FinishReason // kern's finish reason
		kernErr error              // kern's error class
		sdkErr  bool               // the SDK's stream ends with an error
	}{
		{fixture: "responses_text.sse", status: "completed", finish: model.FinishStop},
		{fixture: "responses_tool_call.sse", status: "completed", finish: model.FinishToolCalls},
		{fixture: "responses_incomplete.sse", status: "incomplete", finish: model.FinishLength},
		{fixture: "responses_error.sse", kernErr: model.ErrServer, sdkErr: true},
		{fixture: "responses_failed.sse", status: "failed", kernErr: model.ErrRateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			sdkSrv := openaitest.NewServer(t)
			sdkSrv.Enqueue(openaitest.Fixture(tt.fixture))
			got := streamResponsesSDK(ctx, openAISDK(sdkSrv, option.WithMaxRetries(0)), hello)

			kernSrv := openaitest.NewServer(t)
			kernSrv.Enqueue(openaitest.Fixture(tt.fixture))
			want := collectKern(ctx, openai.NewResponses("gpt-5.2", kernOpenAI(kernSrv, noRetry)...), ask("hi"))

			for _, f := range got.shape.invalid {
				t.Errorf("SDK could not decode field %s", f)
			}
			checkMissing(t, tt.fixture, got.shape.missing)
			// The SDK yields every event, except the nested error event (which ends
			// its stream) and what follows it.
			events := strings.Count(string(openaitest.FixtureBytes(tt.fixture)), "\n\n")
			if tt.sdkErr {
				events -= 2
			}
			check(t,
				diff("events yielded", len(got.types), events),
				diff("text", got.text, want.text),
				diff("tool calls", got.calls, kernCalls(want.calls)),
				diff("status", got.status, tt.status),
			)
			if got.doneTxt != "" && got.doneTxt != got.text {
				t.Errorf("output_text.done %q, deltas %q", got.doneTxt, got.text)
			}
			if want.usage != nil || got.usage != nil {
				check(t, diff("usage", got.usage, want.usage))
			}
			if tt.kernErr == nil {
				check(t, diff("finish", want.finish, tt.finish))
				if got.err != nil || want.err != nil {
					t.Fatalf("errors: SDK %v, kern %v", got.err, want.err)
				}
				return
			}
			var apiErr *model.APIError
			if !errors.Is(want.err, tt.kernErr) || !errors.As(want.err, &apiErr) {
				t.Fatalf("kern error %v, want %v", want.err, tt.kernErr)
			}
			if tt.sdkErr {
				// The nested error event ends the SDK's stream with a StreamError.
				var se *ssestream.StreamError
				if !errors.As(got.err, &se) {
					t.Fatalf("SDK error %T %v, want *ssestream.StreamError", got.err, got.err)
				}
				var ev struct {
					Error struct{ Code, Message string }
				}
				if err := json.Unmarshal(se.Event.Data, &ev); err != nil {
					t.Fatal(err)
				}
				check(t, diff("error code", ev.Error.Code, apiErr.Code), diff("error message", ev.Error.Message, apiErr.Message))
				return
			}
			// response.failed is an ordinary event to the SDK, whose caller reads the error.
			if got.err != nil || got.failure == nil {
				t.Fatalf("SDK: error %v, response.error %v", got.err, got.failure)
			}
			check(t, diff("error code", string(got.failure.Code), apiErr.Code), diff("error message", got.failure.Message, apiErr.Message))
		})
	}
}

// sdkChat is what the SDK's ChatCompletionAccumulator assembled.
type sdkChat struct {
	chunks int
	text   string
	calls  []call
	usage  *model.Usage
	finish string
	err    error
	shape  shapeReport
}

// streamChatSDK consumes one Chat Completions stream with the official SDK.
func streamChatSDK(ctx context.Context, c sdk.Client, params sdk.ChatCompletionNewParams) sdkChat {
	var r sdkChat
	stream := c.Chat.Completions.NewStreaming(ctx, params)
	defer stream.Close()
	var acc sdk.ChatCompletionAccumulator
	for stream.Next() {
		chunk := stream.Current()
		r.chunks++
		s := checkShape(chunk)
		r.shape.invalid = append(r.shape.invalid, s.invalid...)
		r.shape.missing = append(r.shape.missing, s.missing...)
		if !acc.AddChunk(chunk) {
			r.err = errors.New("ChatCompletionAccumulator refused a chunk")
			return r
		}
	}
	r.err = stream.Err()
	if len(acc.Choices) > 0 {
		ch := acc.Choices[0]
		r.text, r.finish = ch.Message.Content, ch.FinishReason
		for _, tc := range ch.Message.ToolCalls {
			r.calls = append(r.calls, call{ID: tc.ID, Name: tc.Function.Name, Args: tc.Function.Arguments})
		}
	}
	// The accumulator keeps no JSON metadata; a usage chunk sets the total.
	if u := acc.Usage; u.TotalTokens != 0 {
		r.usage = &model.Usage{InputTokens: int(u.PromptTokens), OutputTokens: int(u.CompletionTokens), TotalTokens: int(u.TotalTokens)}
	}
	return r
}

var helloChat = sdk.ChatCompletionNewParams{
	Model:         "gpt-4.1-mini",
	Messages:      []sdk.ChatCompletionMessageParamUnion{sdk.UserMessage("hi")},
	StreamOptions: sdk.ChatCompletionStreamOptionsParam{IncludeUsage: sdk.Bool(true)},
}

// TestChatFixtures streams every Chat Completions fixture through the SDK's
// ChatCompletionAccumulator and through kern's client, and compares them.
func TestChatFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fixture   string
		sdkFinish string
		finish    model.FinishReason
		kernErr   error
		// local marks a local server's quirks, which kern smooths and the SDK passes
		// on: a tool call without an id (kern makes one up) and finish_reason "stop"
		// for a tool call (kern reports tool_calls).
		local bool
	}{
		{fixture: "chat_text.sse", sdkFinish: "stop", finish: model.FinishStop},
		{fixture: "chat_tool_call.sse", sdkFinish: "tool_calls", finish: model.FinishToolCalls},
		{fixture: "chat_error.sse", kernErr: model.ErrServer},
		{fixture: "chat_local_tool_call.sse", sdkFinish: "stop", finish: model.FinishToolCalls, local: true},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			sdkSrv := openaitest.NewServer(t)
			sdkSrv.Enqueue(openaitest.Fixture(tt.fixture))
			got := streamChatSDK(ctx, openAISDK(sdkSrv, option.WithMaxRetries(0)), helloChat)

			kernSrv := openaitest.NewServer(t)
			kernSrv.Enqueue(openaitest.Fixture(tt.fixture))
			want := collectKern(ctx, openai.NewChat("gpt-4.1-mini", kernOpenAI(kernSrv, noRetry)...), ask("hi"))

			for _, f := range got.shape.invalid {
				t.Errorf("SDK could not decode field %s", f)
			}
			checkMissing(t, tt.fixture, got.shape.missing)
			// The SDK yields every chunk but [DONE] and the error object.
			if chunks := strings.Count(string(openaitest.FixtureBytes(tt.fixture)), "\n\n") - 1; got.chunks != chunks {
				t.Errorf("SDK yielded %d chunks, want %d", got.chunks, chunks)
			}
			wantCalls := kernCalls(want.calls)
			if tt.local {
				for i := range wantCalls {
					if got.calls[i].ID != "" {
						t.Errorf("SDK call id %q, want none (the fixture has none)", got.calls[i].ID)
					}
					wantCalls[i].ID = ""
				}
			}
			check(t, diff("text", got.text, want.text), diff("tool calls", got.calls, wantCalls))
			if tt.kernErr != nil {
				var se *ssestream.StreamError
				var apiErr *model.APIError
				if !errors.As(got.err, &se) || !errors.Is(want.err, tt.kernErr) || !errors.As(want.err, &apiErr) {
					t.Fatalf("errors: SDK %T %v, kern %v; want *ssestream.StreamError and %v", got.err, got.err, want.err, tt.kernErr)
				}
				if !strings.Contains(se.Message, apiErr.Message) {
					t.Errorf("SDK error %q does not carry kern's message %q", se.Message, apiErr.Message)
				}
				return
			}
			if got.err != nil || want.err != nil {
				t.Fatalf("errors: SDK %v, kern %v", got.err, want.err)
			}
			check(t, diff("usage", got.usage, want.usage), diff("SDK finish", got.finish, tt.sdkFinish), diff("kern finish", want.finish, tt.finish))
		})
	}
}

// TestOpenAIHTTPFailures answers both clients with the fake's failure replies and
// compares how they end and how many requests they made, with retries on (both
// default to 2 retries; the backoff is shortened on both sides, and stays above the
// 10 ms the 429s ask for, which the SDK would otherwise refuse to wait).
func TestOpenAIHTTPFailures(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	text := openaitest.Fixture("responses_text.sse")
	tests := []struct {
		name     string
		replies  []openaitest.Reply
		status   int   // final HTTP status, 0 for success
		kernErr  error // kern's error class
		sdkReqs  int
		kernReqs int
	}{
		{name: "401", replies: []openaitest.Reply{openaitest.Unauthorized()}, status: 401, kernErr: model.ErrAuth, sdkReqs: 1, kernReqs: 1},
		{name: "429 then 200", replies: []openaitest.Reply{openaitest.RateLimited(10 * ms), text}, sdkReqs: 2, kernReqs: 2},
		{name: "429 thrice", replies: []openaitest.Reply{openaitest.RateLimited(10 * ms), openaitest.RateLimited(10 * ms), openaitest.RateLimited(10 * ms)},
			status: 429, kernErr: model.ErrRateLimited, sdkReqs: 3, kernReqs: 3},
		{name: "500 twice then 200", replies: []openaitest.Reply{openaitest.ServerError(), openaitest.ServerError(), text}, sdkReqs: 3, kernReqs: 3},
		{name: "500 thrice", replies: []openaitest.Reply{openaitest.ServerError(), openaitest.ServerError(), openaitest.ServerError()},
			status: 500, kernErr: model.ErrServer, sdkReqs: 3, kernReqs: 3},
		{name: "503 then 200", replies: []openaitest.Reply{openaitest.Overloaded(), text}, sdkReqs: 2, kernReqs: 2},
		// A client policy difference, not the fake's: kern does not retry a spent
		// quota (insufficient_quota), the SDK retries every 429.
		{name: "429 insufficient_quota", replies: []openaitest.Reply{openaitest.QuotaExceeded(), openaitest.QuotaExceeded(), openaitest.QuotaExceeded()},
			status: 429, kernErr: model.ErrRateLimited, sdkReqs: 3, kernReqs: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			sdkSrv := openaitest.NewServer(t)
			sdkSrv.Enqueue(tt.replies...)
			got := streamResponsesSDK(ctx, openAISDK(sdkSrv, option.WithMaxRetryDelay(20*ms)), hello)

			kernSrv := openaitest.NewServer(t)
			kernSrv.Enqueue(tt.replies...)
			want := collectKern(ctx, openai.NewResponses("gpt-5.2", kernOpenAI(kernSrv, openai.WithRetry(model.RetryPolicy{BaseDelay: 5 * ms}))...), ask("hi"))

			check(t,
				diff("SDK requests", len(sdkSrv.Requests()), tt.sdkReqs),
				diff("kern requests", len(kernSrv.Requests()), tt.kernReqs),
			)
			if tt.status == 0 {
				if got.err != nil || want.err != nil {
					t.Fatalf("errors: SDK %v, kern %v", got.err, want.err)
				}
				check(t, diff("text", got.text, want.text), diff("status", got.status, "completed"))
				return
			}
			var sdkErr *sdk.Error
			var apiErr *model.APIError
			if !errors.As(got.err, &sdkErr) || !errors.Is(want.err, tt.kernErr) || !errors.As(want.err, &apiErr) {
				t.Fatalf("errors: SDK %T %v, kern %v", got.err, got.err, want.err)
			}
			check(t,
				diff("status", sdkErr.StatusCode, tt.status),
				diff("kern status", apiErr.StatusCode, tt.status),
				diff("code", sdkErr.Code, apiErr.Code),
				diff("type", sdkErr.Type, apiErr.Type),
				diff("message", sdkErr.Message, apiErr.Message),
			)
			if tt.status == http.StatusTooManyRequests && tt.kernReqs == 3 && apiErr.RetryAfter != 10*ms {
				t.Errorf("kern RetryAfter %v, want 10ms from retry-after-ms", apiErr.RetryAfter)
			}
			// The SDK counts its attempts in X-Stainless-Retry-Count.
			for i, r := range sdkSrv.Requests() {
				if got := r.Header.Get("X-Stainless-Retry-Count"); got != strconv.Itoa(i) {
					t.Errorf("SDK request %d: X-Stainless-Retry-Count %q", i, got)
				}
			}
		})
	}
}
