package openai

import (
	"encoding/json"
	"testing"
)

// chatContentCases are chunks for the fast path: ok says whether it may take them.
var chatContentCases = []struct {
	data string
	text string
	ok   bool
}{
	{`{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x"}`, "Hi", true},
	{`{"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}`, "", true},
	{`{"id":"chatcmpl-1","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}`, "Hi", true},
	{`{"choices":[{"index":0,"delta":{"content":"a \"q\" \u00e9\n"},"finish_reason":null}]}`, "a \"q\" é\n", true},
	{`{"choices":[{"index":0,"delta":{"content":"\"error\": {}"},"finish_reason":null}]}`, "\"error\": {}", true},
	{`{"choices":[{"index":0,"delta":{"content":null},"finish_reason":null}]}`, "", true},
	// Not for the fast path.
	{`{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}`, "", false},
	{`{"choices":[{"index":1,"delta":{"content":"Hi"},"finish_reason":null}]}`, "", false},
	{`{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null},{"index":1,"delta":{"content":"b"}}]}`, "", false},
	{`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]},"finish_reason":null}]}`, "", false},
	{`{"choices":[{"index":0,"delta":{"content":"Hi","reasoning_content":"x"},"finish_reason":null}]}`, "", false},
	{`{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":{"prompt_tokens":1}}`, "", false},
	{`{"choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":{"content":[]},"finish_reason":null}]}`, "", false},
	{`{"choices": [{"index": 0, "delta": {"content": "Hi"}}]}`, "", false},
	{`{"error":{"message":"boom"},"choices":[{"index":0,"delta":{"content":"Hi"}}]}`, "", false},
	{`{"choices":[{"index":0,"delta":{"content":"Hi`, "", false},
	{`{"choices":[],"usage":null}`, "", false},
}

func TestChatContent(t *testing.T) {
	t.Parallel()
	for _, tt := range chatContentCases {
		text, ok := chatContent([]byte(tt.data))
		if text != tt.text || ok != tt.ok {
			t.Errorf("chatContent(%s) = %q, %v; want %q, %v", tt.data, text, ok, tt.text, tt.ok)
		}
	}
}

func TestStringField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		data, text string
		ok         bool
	}{
		{`{"type":"response.output_text.delta","delta":"Hel","item_id":"m"}`, "Hel", true},
		{`{"delta":"\ud83d\ude00 \\ \/"}`, "😀 \\ /", true},
		{"{\"delta\":\"\xff\"}", "\uFFFD", true},
		{`{"delta": "spaced"}`, "", false},
		{`{"delta":null}`, "", false},
		{`{"delta":"cut`, "", false},
		{`{"delta":"bad \x"}`, "", false},
		{`{"other":1}`, "", false},
	}
	for _, tt := range tests {
		text, ok := stringField([]byte(tt.data), `"delta":`)
		if text != tt.text || ok != tt.ok {
			t.Errorf("stringField(%s) = %q, %v; want %q, %v", tt.data, text, ok, tt.text, tt.ok)
		}
	}
}

// FuzzChatContent checks that the fast path agrees with encoding/json on every chunk it
// takes.
func FuzzChatContent(f *testing.F) {
	for _, tt := range chatContentCases {
		f.Add([]byte(tt.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		text, ok := chatContent(data)
		if !ok {
			return
		}
		var c chatChunk
		if json.Unmarshal(data, &c) != nil {
			return // not JSON: the fast path does not validate what it skips
		}
		if len(c.Choices) != 1 || c.Choices[0].Delta.Content != text || c.Choices[0].FinishReason != "" ||
			len(c.Choices[0].Delta.ToolCalls) != 0 || c.Usage != nil || isError(c.Error) {
			t.Errorf("chatContent(%s) = %q, encoding/json says %+v", data, text, c)
		}
	})
}
