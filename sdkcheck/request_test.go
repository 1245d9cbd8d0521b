package sdkcheck_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"testing"

	asdk "github.com/anthropics/anthropic-sdk-go/v2"
	osdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/anthropic"
	"github.com/kern-dev/kern/model/anthropic/anthropictest"
	"github.com/kern-dev/kern/model/openai"
	"github.com/kern-dev/kern/model/openai/openaitest"
	"github.com/kern-dev/kern/tool"
)

// The conversation both clients send: instructions, the user's question, the
// assistant's tool call and the tool's result, with one tool offered.
const (
	instructions = "Answer in one sentence."
	question     = "What is the weather in Paris?"
	callID       = "call_2FQdm3Br7Qb35YUBSkDR7kue"
	toolName     = "get_weather"
	toolDesc     = "Get the weather in a city"
	callArgs     = `{"city":"Paris"}`
	toolOutput   = "sunny, 22°C"
)

var toolSchema = map[string]any{
	"type":       "object",
	"properties": map[string]any{"city": map[string]any{"type": "string"}},
	"required":   []any{"city"},
}

// conversation is the conversation as kern's model.Request.
func conversation() *model.Request {
	schema, _ := json.Marshal(toolSchema)
	return &model.Request{
		Instructions: instructions,
		Messages: []model.Message{
			{Role: model.RoleUser, Content: question},
			{Role: model.RoleAssistant, ToolCalls: []model.ToolCall{{ID: callID, Name: toolName, Arguments: json.RawMessage(callArgs)}}},
			{Role: model.RoleTool, ToolCallID: callID, ToolName: toolName, Content: toolOutput},
		},
		Tools: []tool.Definition{{Name: toolName, Description: toolDesc, Parameters: schema}},
	}
}

// jsonDiff lists the paths where two decoded JSON values differ.
func jsonDiff(path string, sdkV, kernV any) []string {
	switch s := sdkV.(type) {
	case map[string]any:
		k, ok := kernV.(map[string]any)
		if !ok {
			break
		}
		var out []string
		for _, key := range slices.Sorted(maps.Keys(merge(s, k))) {
			sv, sok := s[key]
			kv, kok := k[key]
			switch {
			case !kok:
				out = append(out, fmt.Sprintf("%s.%s: only the SDK sends it (%v)", path, key, sv))
			case !sok:
				out = append(out, fmt.Sprintf("%s.%s: only kern sends it (%v)", path, key, kv))
			default:
				out = append(out, jsonDiff(path+"."+key, sv, kv)...)
			}
		}
		return out
	case []any:
		k, ok := kernV.([]any)
		if !ok || len(k) != len(s) {
			break
		}
		var out []string
		for i := range s {
			out = append(out, jsonDiff(fmt.Sprintf("%s[%d]", path, i), s[i], k[i])...)
		}
		return out
	}
	if reflect.DeepEqual(sdkV, kernV) {
		return nil
	}
	return []string{fmt.Sprintf("%s: SDK %v, kern %v", path, sdkV, kernV)}
}

func merge(a, b map[string]any) map[string]any {
	m := maps.Clone(a)
	maps.Copy(m, b)
	return m
}

// compareBodies checks that the bodies differ exactly by the differences allowed,
// each with its reason, and logs the headers of both requests.
func compareBodies(t *testing.T, sdkBody, kernBody map[string]any, allowed map[string]string) {
	t.Helper()
	got := jsonDiff("", sdkBody, kernBody)
	for _, d := range got {
		if why, ok := allowed[d]; ok {
			t.Logf("allowed: %s (%s)", d, why)
			continue
		}
		t.Errorf("request bodies differ: %s", d)
	}
	for d := range allowed {
		if !slices.Contains(got, d) {
			t.Errorf("expected difference did not occur: %s", d)
		}
	}
}

// logHeaders logs the headers that matter to the API, as each client sent them.
func logHeaders(t *testing.T, sdkH, kernH http.Header, names ...string) {
	t.Helper()
	for _, n := range names {
		t.Logf("%-18s SDK %-34q kern %q", n+":", sdkH.Get(n), kernH.Get(n))
	}
}

func TestResponsesRequestBody(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sdkSrv := openaitest.NewServer(t)
	sdkSrv.Enqueue(openaitest.Fixture("responses_text.sse"))
	fn := responses.ToolParamOfFunction(toolName, toolSchema, false)
	fn.OfFunction.Description = osdk.String(toolDesc)
	params := responses.ResponseNewParams{
		Model:        "gpt-5.2",
		Instructions: osdk.String(instructions),
		Store:        osdk.Bool(false),
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
			responses.ResponseInputItemParamOfMessage(question, responses.EasyInputMessageRoleUser),
			responses.ResponseInputItemParamOfFunctionCall(callArgs, callID, toolName),
			responses.ResponseInputItemParamOfFunctionCallOutput(toolOutput),
		}},
		Tools: []responses.ToolUnionParam{fn},
	}
	params.Input.OfInputItemList[2].OfFunctionCallOutput.CallID = osdk.String(callID)
	if r := streamResponsesSDK(ctx, openAISDK(sdkSrv, option.WithMaxRetries(0)), params); r.err != nil {
		t.Fatal(r.err)
	}

	kernSrv := openaitest.NewServer(t)
	kernSrv.Enqueue(openaitest.Fixture("responses_text.sse"))
	if r := collectKern(ctx, openai.NewResponses("gpt-5.2", kernOpenAI(kernSrv, noRetry)...), conversation()); r.err != nil {
		t.Fatal(r.err)
	}
	sdkReq, kernReq := sdkSrv.Requests()[0], kernSrv.Requests()[0]
	compareBodies(t, sdkReq.Body, kernReq.Body, nil)
	logHeaders(t, sdkReq.Header, kernReq.Header, "Authorization", "Content-Type", "Accept")
	if sdkReq.Path != kernReq.Path || sdkReq.Header.Get("Authorization") != kernReq.Header.Get("Authorization") {
		t.Errorf("path or auth differ: SDK %s %q, kern %s %q", sdkReq.Path, sdkReq.Header.Get("Authorization"), kernReq.Path, kernReq.Header.Get("Authorization"))
	}
}

func TestChatRequestBody(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sdkSrv := openaitest.NewServer(t)
	sdkSrv.Enqueue(openaitest.Fixture("chat_text.sse"))
	assistant := osdk.ChatCompletionAssistantMessageParam{ToolCalls: []osdk.ChatCompletionMessageToolCallUnionParam{{
		OfFunction: &osdk.ChatCompletionMessageFunctionToolCallParam{
			ID:       callID,
			Function: osdk.ChatCompletionMessageFunctionToolCallFunctionParam{Name: toolName, Arguments: callArgs},
		},
	}}}
	params := osdk.ChatCompletionNewParams{
		Model: "gpt-4.1-mini",
		Messages: []osdk.ChatCompletionMessageParamUnion{
			osdk.SystemMessage(instructions),
			osdk.UserMessage(question),
			{OfAssistant: &assistant},
			osdk.ToolMessage(toolOutput, callID),
		},
		Tools: []osdk.ChatCompletionToolUnionParam{osdk.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name: toolName, Description: osdk.String(toolDesc), Parameters: toolSchema, Strict: osdk.Bool(false),
		})},
		StreamOptions: osdk.ChatCompletionStreamOptionsParam{IncludeUsage: osdk.Bool(true)},
	}
	if r := streamChatSDK(ctx, openAISDK(sdkSrv, option.WithMaxRetries(0)), params); r.err != nil {
		t.Fatal(r.err)
	}

	kernSrv := openaitest.NewServer(t)
	kernSrv.Enqueue(openaitest.Fixture("chat_text.sse"))
	if r := collectKern(ctx, openai.NewChat("gpt-4.1-mini", kernOpenAI(kernSrv, noRetry)...), conversation()); r.err != nil {
		t.Fatal(r.err)
	}
	sdkReq, kernReq := sdkSrv.Requests()[0], kernSrv.Requests()[0]
	compareBodies(t, sdkReq.Body, kernReq.Body, map[string]string{
		".messages[2].content: only kern sends it (<nil>)": "an assistant message of only tool calls: kern sends content null, the SDK leaves it out; the API takes both",
	})
	logHeaders(t, sdkReq.Header, kernReq.Header, "Authorization", "Content-Type", "Accept")
}

// normalizeMessages rewrites an Anthropic request body into one form where the API
// allows two: a string system prompt or content as one text block, and is_error
// false or absent.
func normalizeMessages(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var p anthropictest.Params
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	json.Unmarshal(raw, &body)
	for i := range p.Messages {
		for j := range p.Messages[i].Content {
			if b := &p.Messages[i].Content[j]; b.IsError != nil && !*b.IsError {
				b.IsError = nil
			}
		}
	}
	norm, _ := json.Marshal(struct {
		System   anthropictest.Content   `json:"system"`
		Messages []anthropictest.Message `json:"messages"`
	}{p.System, p.Messages})
	json.Unmarshal(norm, &body)
	return body
}

func TestMessagesRequestBody(t *testing.T) {
	t.Parallel()
	for _, version := range versions {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			sdkSrv := newAnthropicServer(t, fixture(t, "text.sse"))
			params := asdk.MessageNewParams{
				Model:     "claude-sonnet-4-5",
				MaxTokens: anthropic.DefaultMaxTokens,
				System:    []asdk.TextBlockParam{{Text: instructions}},
				Messages: []asdk.MessageParam{
					asdk.NewUserMessage(asdk.NewTextBlock(question)),
					asdk.NewAssistantMessage(asdk.NewToolUseBlock(callID, json.RawMessage(callArgs), toolName)),
					asdk.NewUserMessage(asdk.NewToolResultBlock(callID, toolOutput, false)),
				},
				Tools: []asdk.ToolUnionParam{{OfTool: &asdk.ToolParam{
					Name:        toolName,
					Description: asdk.String(toolDesc),
					InputSchema: asdk.ToolInputSchemaParam{Properties: toolSchema["properties"], Required: []string{"city"}},
				}}},
			}
			if r := streamMessageSDK(ctx, anthropicSDK(sdkSrv, version), params); r.err != nil {
				t.Fatal(r.err)
			}
			kernSrv := newAnthropicServer(t, fixture(t, "text.sse"))
			if r := collectKern(ctx, kernAnthropic(kernSrv, version), conversation()); r.err != nil {
				t.Fatal(r.err)
			}
			sdkReq, kernReq := sdkSrv.Requests()[0], kernSrv.Requests()[0]
			var sdkRaw, kernRaw map[string]any
			json.Unmarshal(sdkReq.Body, &sdkRaw)
			json.Unmarshal(kernReq.Body, &kernRaw)
			for _, d := range jsonDiff("", sdkRaw, kernRaw) {
				t.Logf("normalized (two forms the API accepts): %s", d)
			}
			compareBodies(t, normalizeMessages(t, sdkReq.Body), normalizeMessages(t, kernReq.Body), nil)
			logHeaders(t, sdkReq.Header, kernReq.Header, "Anthropic-Version", "X-Api-Key", "Authorization", "Content-Type", "Accept")
		})
	}
}
