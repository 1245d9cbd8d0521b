// Package model is the provider-neutral interface between agents and language models.
//
// An agent builds a Request (instructions, the conversation so far and the tools it
// offers) and ranges over the Chunks a Model streams back: text deltas as they arrive,
// complete tool calls, and at the end the token usage and the reason the model stopped.
// Providers (model/openai, model/anthropic, model/scripted) implement Model; agents only
// ever call it.
package model

import (
	"context"
	"encoding/json"
	"iter"

	"github.com/kern-dev/kern/tool"
)

// Model streams one model response for a request.
//
// Stream must stop promptly when ctx is cancelled: an in-flight HTTP request is closed,
// a pending wait is abandoned, and the iterator yields ctx's error (or returns). It must
// not call yield again after yield returned false.
type Model interface {
	Stream(ctx context.Context, req *Request) iter.Seq2[Chunk, error]
}

// Describer is implemented by models that can name their provider and model id. Agents
// put both in their RunStarted event and run output.
type Describer interface {
	Provider() string
	ModelID() string
}

// Role is who wrote a message.
type Role string

// Roles of a conversation.
const (
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	RoleTool      Role = "tool"
)

// Message is one turn of a conversation. Instructions travel in Request.Instructions,
// not as a message, since providers place them differently.
type Message struct {
	Role    Role   `json:"role"`
	Content string `json:"content,omitempty"`
	// ToolCalls are the calls an assistant message asked for.
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	// ToolCallID and ToolName link a tool message to the call it answers.
	ToolCallID string `json:"tool_call_id,omitempty"`
	ToolName   string `json:"tool_name,omitempty"`
	// IsError marks a tool message whose content is an error the model should see.
	IsError bool `json:"is_error,omitempty"`
	// Attachments are images and files given with a user message.
	Attachments []Attachment `json:"attachments,omitempty"`
	// Thinking are the reasoning blocks of an assistant message, replayed as the
	// provider sent them (Anthropic requires them before tool calls when extended
	// thinking is on).
	Thinking []Thinking `json:"thinking,omitempty"`
}

// Thinking is one block of a model's reasoning as its provider must see it again:
// its text and signature, or the opaque data of a redacted block (Anthropic), or
// the reasoning item itself (OpenAI Responses).
type Thinking struct {
	Text      string `json:"text,omitempty"`
	Signature string `json:"signature,omitempty"`
	Redacted  string `json:"redacted,omitempty"`
	// Item is a reasoning item of the OpenAI Responses API as the response's
	// output_item.done carried it, with its encrypted_content: replayed unchanged,
	// it gives the model its reasoning back in the next request of a tool loop,
	// which nothing on the server keeps when the request says "store": false.
	Item json.RawMessage `json:"item,omitempty"`
}

// ToolCall is a model's request to call one tool.
type ToolCall struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

// Request is what an agent asks a model.
type Request struct {
	Instructions string
	Messages     []Message
	Tools        []tool.Definition
	// Settings tune the answer; the zero value leaves them to the provider.
	Settings Settings
	// Output, when set, asks for an answer that is JSON matching its schema. The
	// answer arrives as text chunks, whatever way the provider delivers it.
	Output *OutputSchema
}

// FinishReason says why a model stopped.
type FinishReason string

// Finish reasons, provider-neutral.
const (
	FinishStop      FinishReason = "stop"
	FinishToolCalls FinishReason = "tool_calls"
	FinishLength    FinishReason = "length"
	// FinishRefusal: the model refused to answer (see Chunk.Refusal).
	FinishRefusal FinishReason = "refusal"
)

// Usage counts the tokens of one model response.
type Usage struct {
	// InputTokens count the whole input, the cached part included.
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
	TotalTokens  int `json:"total_tokens"`
	// CacheReadTokens are the input tokens read from the provider's prompt cache
	// (OpenAI cached_tokens, Anthropic cache_read_input_tokens).
	CacheReadTokens int `json:"cache_read_tokens,omitempty"`
	// CacheWriteTokens are the input tokens written to the prompt cache (Anthropic
	// cache_creation_input_tokens, OpenAI cache_write_tokens).
	CacheWriteTokens int `json:"cache_write_tokens,omitempty"`
	// ReasoningTokens are the output tokens spent reasoning (OpenAI
	// reasoning_tokens); Anthropic does not report them apart.
	ReasoningTokens int `json:"reasoning_tokens,omitempty"`
}

// Chunk is one piece of a streamed response. A chunk carries a text delta, complete
// tool calls, or (in the last chunk) the usage and finish reason; providers assemble
// tool-call deltas before they yield them.
type Chunk struct {
	Text         string
	ToolCalls    []ToolCall
	Usage        *Usage
	FinishReason FinishReason
	// Model, in the last chunk, is the model that answered as the provider
	// names it (a dated snapshot of the model asked for, say), if it said.
	Model string
	// Reasoning is a delta of the model's reasoning as the provider shows it (a
	// summary, or the thinking text): not part of the answer.
	Reasoning string
	// Refusal is a delta of a refusal the model gave instead of an answer.
	Refusal string
	// Thinking, in the last chunk, are the reasoning blocks to replay with the
	// assistant message (see Message.Thinking).
	Thinking []Thinking
}
