package sdkcheck_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	sdk "github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/anthropic"
	"github.com/kern-dev/kern/model/anthropic/anthropictest"
)

// anthropicKey is the key both clients send to the fake.
const anthropicKey = "sk-ant-sdkcheck"

// versions are the two live API versions: the SDK's own (2026-10-21, bearer
// authentication) and the older one, which the SDK speaks when told to through its
// headers (anthropic-version, and the key in x-api-key).
var versions = []string{anthropic.APIVersion20261021, anthropic.APIVersion20230601}

// anthropicSDK returns an official SDK client for srv, speaking version.
func anthropicSDK(srv *anthropictest.Server, version string, opts ...option.RequestOption) sdk.Client {
	base := []option.RequestOption{
		option.WithoutEnvironmentDefaults(),
		option.WithBaseURL(srv.URL),
		option.WithHTTPClient(srv.Client()),
	}
	if version == anthropic.APIVersion20261021 {
		base = append(base, option.WithAPIKey(anthropicKey))
	} else {
		base = append(base, option.WithHeader("anthropic-version", version), option.WithHeader("X-Api-Key", anthropicKey))
	}
	return sdk.NewClient(append(base, opts...)...)
}

// kernAnthropic returns kern's model for srv, speaking version.
func kernAnthropic(srv *anthropictest.Server, version string, opts ...anthropic.Option) *anthropic.Model {
	base := []anthropic.Option{
		anthropic.WithBaseURL(srv.URL),
		anthropic.WithAPIKey(anthropicKey),
		anthropic.WithHTTPClient(srv.Client()),
		anthropic.WithAPIVersion(version),
	}
	return anthropic.New("claude-sonnet-4-5", append(base, opts...)...)
}

// fixture reads one of kern's Anthropic stream fixtures.
func fixture(t testing.TB, name string) anthropictest.Reply {
	t.Helper()
	r, err := anthropictest.ReadFile(filepath.Join("..", "model", "anthropic", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newAnthropicServer starts a fake that accepts only anthropicKey.
func newAnthropicServer(t *testing.T, replies ...anthropictest.Reply) *anthropictest.Server {
	srv := anthropictest.NewServer(replies...)
	srv.APIKey = anthropicKey
	t.Cleanup(srv.Close)
	return srv
}

// sdkEvents returns the types of the events of a fixture that the SDK yields: every
// event with an "event:" line but pings, up to an error event, which ends the
// stream.
func sdkEvents(t *testing.T, name string) []string {
	var types []string
	for line := range strings.Lines(fixture(t, name).Body) {
		typ, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "event: ")
		switch {
		case !ok || typ == "ping":
		case typ == "error":
			return types
		default:
			types = append(types, typ)
		}
	}
	return types
}

// sdkMessage is what the SDK's stream and Message.Accumulate assembled.
type sdkMessage struct {
	types []string
	text  string
	calls []call // inputs as Accumulate left them
	input []string
	usage *model.Usage
	stop  string
	err   error
	shape shapeReport
}

var helloMessage = sdk.MessageNewParams{
	Model:     "claude-sonnet-4-5",
	MaxTokens: 4096,
	Messages:  []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock("hi"))},
}

// streamMessageSDK consumes one Messages stream with the official SDK.
func streamMessageSDK(ctx context.Context, c sdk.Client, params sdk.MessageNewParams) sdkMessage {
	var r sdkMessage
	stream := c.Messages.NewStreaming(ctx, params)
	defer stream.Close()
	var msg sdk.Message
	var inputs []strings.Builder // the input_json_delta fragments of each block, joined
	for stream.Next() {
		ev := stream.Current()
		r.types = append(r.types, ev.Type)
		s := checkShape(ev.AsAny())
		r.shape.invalid = append(r.shape.invalid, s.invalid...)
		r.shape.missing = append(r.shape.missing, s.missing...)
		if err := msg.Accumulate(ev); err != nil {
			r.err = err
			return r
		}
		switch {
		case ev.Type == "content_block_start":
			inputs = append(inputs, strings.Builder{})
		case ev.Type == "content_block_delta" && ev.Delta.Type == "input_json_delta":
			inputs[ev.Index].WriteString(ev.Delta.PartialJSON)
		}
	}
	r.err = stream.Err()
	for i, b := range msg.Content {
		switch b.Type {
		case "text":
			r.text += b.Text
		case "tool_use":
			r.calls = append(r.calls, call{ID: b.ID, Name: b.Name, Args: string(b.Input)})
			r.input = append(r.input, cmpOr(inputs[i].String(), "{}"))
		}
	}
	if msg.ID != "" {
		u := msg.Usage
		in := int(u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens)
		r.usage = &model.Usage{InputTokens: in, OutputTokens: int(u.OutputTokens), TotalTokens: in + int(u.OutputTokens)}
		r.stop = string(msg.StopReason)
	}
	return r
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TestMessagesFixtures streams every Anthropic fixture through the official SDK
// (Messages.NewStreaming and Message.Accumulate) and through kern's client, in both
// API versions, and compares what they got.
func TestMessagesFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fixture string
		stop    string
		finish  model.FinishReason
		kernErr error
		// invalidInput: the tool input the model streamed is not JSON. kern passes it
		// on for the tool to report; Accumulate replaces it with {}.
		invalidInput bool
	}{
		{fixture: "text.sse", stop: "end_turn", finish: model.FinishStop},
		{fixture: "tool_use.sse", stop: "tool_use", finish: model.FinishToolCalls},
		{fixture: "tool_use_answer.sse", stop: "end_turn", finish: model.FinishStop},
		{fixture: "pings_unknown.sse", stop: "end_turn", finish: model.FinishStop},
		{fixture: "empty.sse", stop: "end_turn", finish: model.FinishStop},
		{fixture: "invalid_tool_input.sse", stop: "tool_use", finish: model.FinishToolCalls, invalidInput: true},
		{fixture: "error_overloaded.sse", kernErr: model.ErrServer},
	}
	for _, version := range versions {
		for _, tt := range tests {
			t.Run(version+"/"+tt.fixture, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				sdkSrv := newAnthropicServer(t, fixture(t, tt.fixture))
				got := streamMessageSDK(ctx, anthropicSDK(sdkSrv, version, option.WithMaxRetries(0)), helloMessage)

				kernSrv := newAnthropicServer(t, fixture(t, tt.fixture))
				want := collectKern(ctx, kernAnthropic(kernSrv, version, anthropic.WithRetry(model.RetryPolicy{MaxRetries: -1})), ask("hi"))

				for _, f := range got.shape.invalid {
					t.Errorf("SDK could not decode field %s", f)
				}
				checkMissing(t, tt.fixture, got.shape.missing)
				check(t, diff("events yielded", got.types, sdkEvents(t, tt.fixture)))
				sdkReq, kernReq := sdkSrv.Requests()[0], kernSrv.Requests()[0]
				check(t,
					diff("anthropic-version", sdkReq.Header.Get("Anthropic-Version"), kernReq.Header.Get("Anthropic-Version")),
					diff("x-api-key", sdkReq.Header.Get("X-Api-Key"), kernReq.Header.Get("X-Api-Key")),
					diff("authorization", sdkReq.Header.Get("Authorization"), kernReq.Header.Get("Authorization")),
				)
				wantCalls := kernCalls(want.calls)
				if tt.invalidInput {
					// Compare the streamed fragments, and note what Accumulate did.
					for i := range got.calls {
						t.Logf("tool_use %d: streamed %s, Accumulate kept %s, kern passes on %s", i, got.input[i], got.calls[i].Args, wantCalls[i].Args)
						got.calls[i].Args = got.input[i]
					}
				}
				check(t, diff("text", got.text, want.text), diff("tool calls", got.calls, wantCalls))
				if tt.kernErr != nil {
					var sdkErr *sdk.Error
					var apiErr *model.APIError
					if !errors.As(got.err, &sdkErr) || !errors.Is(want.err, tt.kernErr) || !errors.As(want.err, &apiErr) {
						t.Fatalf("errors: SDK %T %v, kern %v", got.err, got.err, want.err)
					}
					check(t,
						diff("error type", string(sdkErr.Type()), apiErr.Type),
						diff("error message", sdkErr.Message, apiErr.Message),
						diff("request id", sdkErr.RequestID, apiErr.RequestID),
					)
					return
				}
				if got.err != nil || want.err != nil {
					t.Fatalf("errors: SDK %v, kern %v", got.err, want.err)
				}
				check(t, diff("usage", got.usage, want.usage), diff("stop reason", got.stop, tt.stop), diff("finish", want.finish, tt.finish))
			})
		}
	}
}

// TestMessagesHTTPFailures answers both clients with the fake's failure replies and
// compares how they end and how many requests they made, with retries on (both
// default to 2 retries).
func TestMessagesHTTPFailures(t *testing.T) {
	t.Parallel()
	text := anthropictest.Text("Hello", "!")
	tests := []struct {
		name     string
		replies  []anthropictest.Reply
		status   int
		errType  string
		kernErr  error
		requests int
	}{
		{name: "401", replies: []anthropictest.Reply{anthropictest.Unauthorized()}, status: 401, errType: "authentication_error", kernErr: model.ErrAuth, requests: 1},
		{name: "429 then 200", replies: []anthropictest.Reply{anthropictest.RateLimited(0), text}, requests: 2},
		{name: "429 thrice", replies: []anthropictest.Reply{anthropictest.RateLimited(0), anthropictest.RateLimited(0), anthropictest.RateLimited(0)},
			status: 429, errType: "rate_limit_error", kernErr: model.ErrRateLimited, requests: 3},
		{name: "529 then 200", replies: []anthropictest.Reply{anthropictest.Overloaded(), text}, requests: 2},
		{name: "500 thrice", replies: []anthropictest.Reply{anthropictest.InternalError(), anthropictest.InternalError(), anthropictest.InternalError()},
			status: 500, errType: "api_error", kernErr: model.ErrServer, requests: 3},
	}
	for _, version := range versions {
		for _, tt := range tests {
			t.Run(version+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				sdkSrv := newAnthropicServer(t, tt.replies...)
				got := streamMessageSDK(ctx, anthropicSDK(sdkSrv, version), helloMessage)

				kernSrv := newAnthropicServer(t, tt.replies...)
				want := collectKern(ctx, kernAnthropic(kernSrv, version), ask("hi"))

				check(t,
					diff("SDK requests", len(sdkSrv.Requests()), tt.requests),
					diff("kern requests", len(kernSrv.Requests()), tt.requests),
				)
				for i, r := range sdkSrv.Requests() {
					if got := r.Header.Get("X-Stainless-Retry-Count"); got != strconv.Itoa(i) {
						t.Errorf("SDK request %d: X-Stainless-Retry-Count %q", i, got)
					}
				}
				if tt.status == 0 {
					if got.err != nil || want.err != nil {
						t.Fatalf("errors: SDK %v, kern %v", got.err, want.err)
					}
					check(t, diff("text", got.text, want.text), diff("stop", got.stop, "end_turn"))
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
					diff("type", string(sdkErr.Type()), tt.errType),
					diff("kern type", apiErr.Type, tt.errType),
					diff("message", sdkErr.Message, apiErr.Message),
				)
				if sdkErr.RequestID == "" || apiErr.RequestID == "" {
					t.Errorf("request ids: SDK %q, kern %q", sdkErr.RequestID, apiErr.RequestID)
				}
				if tt.status == http.StatusTooManyRequests && apiErr.RetryAfter != 0 {
					t.Errorf("kern RetryAfter %v, want 0 from retry-after: 0", apiErr.RetryAfter)
				}
			})
		}
	}
}
