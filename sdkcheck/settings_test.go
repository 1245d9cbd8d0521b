package sdkcheck_test

import (
	"context"
	"encoding/json"
	"strings"
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
)

// The output schema both clients ask for: strict, as the fake requires of a strict
// schema.
var outputSchema = map[string]any{
	"type":                 "object",
	"properties":           map[string]any{"city": map[string]any{"type": "string"}, "temp": map[string]any{"type": "number"}},
	"required":             []any{"city", "temp"},
	"additionalProperties": false,
}

// withSettings is the conversation with model settings and an output schema.
func withSettings(s model.Settings) *model.Request {
	req := conversation()
	schema, _ := json.Marshal(outputSchema)
	req.Settings = s
	req.Output = &model.OutputSchema{Name: "Forecast", Description: "the forecast", Schema: schema, Strict: true}
	return req
}

// TestResponsesSettingsBody: the settings and the output schema kern sends to the
// Responses API are what the SDK sends for the same ones, field by field.
func TestResponsesSettingsBody(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sdkSrv := openaitest.NewServer(t)
	sdkSrv.Enqueue(openaitest.ResponsesText(`{"city":"Paris","temp":21}`))
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
		Tools:             []responses.ToolUnionParam{fn},
		Temperature:       osdk.Float(0.3),
		TopP:              osdk.Float(0.9),
		MaxOutputTokens:   osdk.Int(512),
		ParallelToolCalls: osdk.Bool(false),
		Reasoning:         shared.ReasoningParam{Effort: shared.ReasoningEffortLow, Summary: shared.ReasoningSummaryAuto},
		ToolChoice:        responses.ResponseNewParamsToolChoiceUnion{OfFunctionTool: &responses.ToolChoiceFunctionParam{Name: toolName}},
		Text: responses.ResponseTextConfigParam{Format: responses.ResponseFormatTextConfigUnionParam{OfJSONSchema: &responses.ResponseFormatTextJSONSchemaConfigParam{
			Name: "Forecast", Description: osdk.String("the forecast"), Schema: outputSchema, Strict: osdk.Bool(true),
		}}},
		ServiceTier: responses.ResponseNewParamsServiceTierFlex,
		// Without state on the server, reasoning comes back only encrypted.
		Include: []responses.ResponseIncludable{responses.ResponseIncludableReasoningEncryptedContent},
	}
	params.Input.OfInputItemList[2].OfFunctionCallOutput.CallID = osdk.String(callID)
	if r := streamResponsesSDK(ctx, openAISDK(sdkSrv, option.WithMaxRetries(0)), params); r.err != nil {
		t.Fatal(r.err)
	}

	kernSrv := openaitest.NewServer(t)
	kernSrv.Enqueue(openaitest.ResponsesText(`{"city":"Paris","temp":21}`))
	req := withSettings(model.Settings{Temperature: model.Float(0.3), TopP: model.Float(0.9), MaxTokens: 512,
		ParallelToolCalls: model.Bool(false), ReasoningEffort: "low", ToolChoice: toolName, Extra: map[string]any{"service_tier": "flex"}})
	if r := collectKern(ctx, openai.NewResponses("gpt-5.2", kernOpenAI(kernSrv, noRetry)...), req); r.err != nil {
		t.Fatal(r.err)
	}
	compareBodies(t, sdkSrv.Requests()[0].Body, kernSrv.Requests()[0].Body, nil)
}

// TestChatSettingsBody is TestResponsesSettingsBody for Chat Completions, with stop
// sequences and a seed, which only Chat takes.
func TestChatSettingsBody(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sdkSrv := openaitest.NewServer(t)
	sdkSrv.Enqueue(openaitest.ChatText("", `{"city":"Paris","temp":21}`))
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
		StreamOptions:       osdk.ChatCompletionStreamOptionsParam{IncludeUsage: osdk.Bool(true)},
		Temperature:         osdk.Float(0.3),
		TopP:                osdk.Float(0.9),
		MaxCompletionTokens: osdk.Int(512),
		Stop:                osdk.ChatCompletionNewParamsStopUnion{OfStringArray: []string{"END", "STOP"}},
		Seed:                osdk.Int(42),
		ReasoningEffort:     shared.ReasoningEffortLow,
		ParallelToolCalls:   osdk.Bool(false),
		ToolChoice:          osdk.ToolChoiceOptionFunctionToolChoice(osdk.ChatCompletionNamedToolChoiceFunctionParam{Name: toolName}),
		ResponseFormat: osdk.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{
				Name: "Forecast", Description: osdk.String("the forecast"), Schema: outputSchema, Strict: osdk.Bool(true),
			},
		}},
	}
	if r := streamChatSDK(ctx, openAISDK(sdkSrv, option.WithMaxRetries(0)), params); r.err != nil {
		t.Fatal(r.err)
	}

	kernSrv := openaitest.NewServer(t)
	kernSrv.Enqueue(openaitest.ChatText("", `{"city":"Paris","temp":21}`))
	req := withSettings(model.Settings{Temperature: model.Float(0.3), TopP: model.Float(0.9), MaxTokens: 512,
		Stop: []string{"END", "STOP"}, Seed: model.Int(42), ParallelToolCalls: model.Bool(false), ReasoningEffort: "low", ToolChoice: toolName})
	if r := collectKern(ctx, openai.NewChat("gpt-4.1-mini", kernOpenAI(kernSrv, noRetry)...), req); r.err != nil {
		t.Fatal(r.err)
	}
	compareBodies(t, sdkSrv.Requests()[0].Body, kernSrv.Requests()[0].Body, map[string]string{
		".messages[2].content: only kern sends it (<nil>)": "as in TestChatRequestBody",
	})
}

// TestMessagesSettingsBody: max_tokens, stop sequences, a named tool choice without
// parallel calls; then extended thinking with its thinking block replayed before the
// tool call; then the structured output as a forced tool. The v2 SDK has no
// temperature or top_p (its API version refuses them), so those are checked against
// the fake only (model/anthropic).
func TestMessagesSettingsBody(t *testing.T) {
	t.Parallel()
	outputTool := asdk.ToolUnionParam{OfTool: &asdk.ToolParam{
		Name: "Forecast", Description: asdk.String("the forecast"),
		InputSchema: asdk.ToolInputSchemaParam{Properties: outputSchema["properties"], Required: []string{"city", "temp"},
			ExtraFields: map[string]any{"additionalProperties": false}},
	}}
	cases := []struct {
		name   string
		kern   func() *model.Request
		sdk    func(p *asdk.MessageNewParams)
		answer anthropictest.Reply
	}{
		{"sampling and tool choice", func() *model.Request {
			req := conversation()
			req.Settings = model.Settings{MaxTokens: 300, Stop: []string{"END"}, ToolChoice: toolName, ParallelToolCalls: model.Bool(false)}
			return req
		}, func(p *asdk.MessageNewParams) {
			p.MaxTokens, p.StopSequences = 300, []string{"END"}
			p.ToolChoice = asdk.ToolChoiceUnionParam{OfTool: &asdk.ToolChoiceToolParam{Name: toolName, DisableParallelToolUse: asdk.Bool(true)}}
		}, anthropictest.Text("ok")},
		{"thinking", func() *model.Request {
			req := conversation()
			req.Settings = model.Settings{ReasoningEffort: "high", MaxTokens: 20000}
			req.Messages[1].Thinking = []model.Thinking{{Text: "I should call the tool.", Signature: "sig-1"}}
			return req
		}, func(p *asdk.MessageNewParams) {
			p.MaxTokens = 20000
			p.Thinking = asdk.ThinkingConfigParamOfEnabled(16384)
			p.Messages[1] = asdk.NewAssistantMessage(asdk.NewThinkingBlock("sig-1", "I should call the tool."),
				asdk.NewToolUseBlock(callID, json.RawMessage(callArgs), toolName))
		}, anthropictest.Text("ok")},
		{"structured output", func() *model.Request {
			return withSettings(model.Settings{})
		}, func(p *asdk.MessageNewParams) {
			p.Tools = append(p.Tools, outputTool)
			p.ToolChoice = asdk.ToolChoiceUnionParam{OfAny: &asdk.ToolChoiceAnyParam{}}
		}, anthropictest.ToolUse("toolu_1", "Forecast", `{"city":"Paris","temp":21}`)},
	}
	for _, version := range versions {
		for _, c := range cases {
			t.Run(version+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
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
				c.sdk(&params)
				sdkSrv := newAnthropicServer(t, c.answer)
				if r := streamMessageSDK(ctx, anthropicSDK(sdkSrv, version), params); r.err != nil {
					t.Fatal(r.err)
				}
				kernSrv := newAnthropicServer(t, c.answer)
				r := collectKern(ctx, kernAnthropic(kernSrv, version), c.kern())
				if r.err != nil {
					t.Fatal(r.err)
				}
				if c.name == "structured output" && (r.text != `{"city":"Paris","temp":21}` || r.finish != model.FinishStop) {
					t.Errorf("structured answer %q, finish %q", r.text, r.finish)
				}
				compareBodies(t, normalizeMessages(t, sdkSrv.Requests()[0].Body), normalizeMessages(t, kernSrv.Requests()[0].Body), nil)
			})
		}
	}
}

// TestBuiltStreams runs the streams the fakes' builders make (reasoning, refusals,
// thinking) through the official SDKs: every event decodes into its typed variant
// with no field of a wrong type, and the SDK reads the same reasoning, refusal and
// text as kern.
func TestBuiltStreams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("responses", func(t *testing.T) {
		t.Parallel()
		for _, reply := range []func() openaitest.Reply{
			func() openaitest.Reply {
				return openaitest.NewResponsesStream().Reasoning("Think", "ing.").Text("Hi", "!").Reply()
			},
			func() openaitest.Reply { return openaitest.NewResponsesStream().Refusal("I can't", " help.").Reply() },
		} {
			srv := openaitest.NewServer(t)
			srv.Enqueue(reply(), reply())
			client := openAISDK(srv, option.WithMaxRetries(0))
			stream := client.Responses.NewStreaming(ctx, hello)
			var reasoning, refusal, text strings.Builder
			for stream.Next() {
				ev := stream.Current()
				if s := checkShape(ev.AsAny()); len(s.invalid) > 0 {
					t.Errorf("%s: fields of a wrong type: %v", ev.Type, s.invalid)
				}
				switch ev.Type {
				case "response.reasoning_summary_text.delta":
					reasoning.WriteString(ev.Delta)
				case "response.refusal.delta":
					refusal.WriteString(ev.Delta)
				case "response.output_text.delta":
					text.WriteString(ev.Delta)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			stream.Close()
			k := kernStream(ctx, openai.NewResponses("gpt-5.2", kernOpenAI(srv, noRetry)...))
			if k.reasoning != reasoning.String() || k.refusal != refusal.String() || k.text != text.String() {
				t.Errorf("kern %+v, SDK reasoning %q refusal %q text %q", k, reasoning.String(), refusal.String(), text.String())
			}
		}
	})
	t.Run("chat refusal", func(t *testing.T) {
		t.Parallel()
		srv := openaitest.NewServer(t)
		srv.Enqueue(openaitest.ChatText("I can't help."), openaitest.ChatText("I can't help."))
		r := streamChatSDK(ctx, openAISDK(srv, option.WithMaxRetries(0)), helloChat)
		if r.err != nil || len(r.shape.invalid) > 0 {
			t.Fatalf("SDK: %v, %v", r.err, r.shape.invalid)
		}
		k := kernStream(ctx, openai.NewChat("gpt-4.1-mini", kernOpenAI(srv, noRetry)...))
		if k.refusal != "I can't help." || k.finish != model.FinishRefusal {
			t.Errorf("kern %+v", k)
		}
	})
	t.Run("anthropic thinking", func(t *testing.T) {
		t.Parallel()
		body := anthropictest.NewStream(anthropictest.MessageID, anthropictest.Model, 11).
			ThinkingBlock("sig-9", "Hmm, ", "Paris.").TextBlock("Sunny.").End("end_turn", 9).Reply()
		srv := newAnthropicServer(t, body, body)
		client := anthropicSDK(srv, anthropic.APIVersion20261021)
		stream := client.Messages.NewStreaming(ctx, helloMessage)
		var msg asdk.Message
		for stream.Next() {
			ev := stream.Current()
			if s := checkShape(ev.AsAny()); len(s.invalid) > 0 {
				t.Errorf("%s: fields of a wrong type: %v", ev.Type, s.invalid)
			}
			if err := msg.Accumulate(ev); err != nil {
				t.Fatal(err)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		stream.Close()
		var last model.Chunk
		k := kernResult{}
		var reasoning string
		for c, err := range kernAnthropic(srv, anthropic.APIVersion20261021).Stream(ctx, ask("hi")) {
			if err != nil {
				t.Fatal(err)
			}
			reasoning += c.Reasoning
			k.text += c.Text
			last = c
		}
		tb := msg.Content[0].AsThinking()
		if msg.Content[0].Type != "thinking" || tb.Thinking != reasoning || len(last.Thinking) != 1 ||
			last.Thinking[0].Text != tb.Thinking || last.Thinking[0].Signature != tb.Signature || k.text != "Sunny." {
			t.Errorf("SDK thinking %q (signature %q); kern reasoning %q, blocks %+v, text %q", tb.Thinking, tb.Signature, reasoning, last.Thinking, k.text)
		}
	})
}

// chunks is what kern read of a stream besides tool calls.
type chunks struct {
	reasoning, refusal, text string
	finish                   model.FinishReason
	err                      error
}

func kernStream(ctx context.Context, m model.Model) chunks {
	var k chunks
	for c, err := range m.Stream(ctx, ask("hi")) {
		if err != nil {
			k.err = err
			return k
		}
		k.reasoning += c.Reasoning
		k.refusal += c.Refusal
		k.text += c.Text
		if c.FinishReason != "" {
			k.finish = c.FinishReason
		}
	}
	return k
}

// TestResponsesReasoningReplay: in a tool loop without state on the server, the
// reasoning item kern replays (as the fake streamed it, with its encrypted content)
// is what the SDK sends for the same item, field by field, and the fake takes both.
func TestResponsesReasoningReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// kern reads the item from a stream, as a tool loop's first request does.
	first := openaitest.NewServer(t)
	first.Enqueue(openaitest.NewResponsesStream().Reasoning("Need ", "the weather.").FunctionCall(toolName, callArgs).Reply())
	m := openai.NewResponses("gpt-5.2", kernOpenAI(first, noRetry)...)
	req := conversation()
	req.Messages, req.Settings = req.Messages[:1], model.Settings{ReasoningEffort: "low"}
	var thinking []model.Thinking
	for c, err := range m.Stream(ctx, req) {
		if err != nil {
			t.Fatal(err)
		}
		thinking = append(thinking, c.Thinking...)
	}
	if len(thinking) != 1 || thinking[0].Item == nil {
		t.Fatalf("thinking %+v, want the reasoning item", thinking)
	}

	kernSrv := openaitest.NewServer(t)
	kernSrv.Enqueue(openaitest.ResponsesText("Sunny."))
	req = conversation()
	req.Messages[1].Thinking = thinking
	req.Settings = model.Settings{ReasoningEffort: "low"}
	if r := collectKern(ctx, openai.NewResponses("gpt-5.2", kernOpenAI(kernSrv, noRetry)...), req); r.err != nil {
		t.Fatal(r.err)
	}

	sdkSrv := openaitest.NewServer(t)
	sdkSrv.Enqueue(openaitest.ResponsesText("Sunny."))
	fn := responses.ToolParamOfFunction(toolName, toolSchema, false)
	fn.OfFunction.Description = osdk.String(toolDesc)
	reasoning := responses.ResponseInputItemParamOfReasoning("rs_openaitest0",
		[]responses.ResponseReasoningItemSummaryParam{{Text: "Need the weather."}})
	reasoning.OfReasoning.EncryptedContent = osdk.String(openaitest.EncryptedContent("rs_openaitest0"))
	params := responses.ResponseNewParams{
		Model:        "gpt-5.2",
		Instructions: osdk.String(instructions),
		Store:        osdk.Bool(false),
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
			responses.ResponseInputItemParamOfMessage(question, responses.EasyInputMessageRoleUser),
			reasoning,
			responses.ResponseInputItemParamOfFunctionCall(callArgs, callID, toolName),
			responses.ResponseInputItemParamOfFunctionCallOutput(toolOutput),
		}},
		Tools:     []responses.ToolUnionParam{fn},
		Reasoning: shared.ReasoningParam{Effort: shared.ReasoningEffortLow, Summary: shared.ReasoningSummaryAuto},
		Include:   []responses.ResponseIncludable{responses.ResponseIncludableReasoningEncryptedContent},
	}
	params.Input.OfInputItemList[3].OfFunctionCallOutput.CallID = osdk.String(callID)
	if r := streamResponsesSDK(ctx, openAISDK(sdkSrv, option.WithMaxRetries(0)), params); r.err != nil {
		t.Fatal(r.err)
	}
	compareBodies(t, sdkSrv.Requests()[0].Body, kernSrv.Requests()[0].Body, nil)
}
