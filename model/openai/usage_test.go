package openai_test

import (
	"testing"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/openai/openaitest"
)

// TestUsageDetails checks that cached and reasoning tokens are read from both APIs'
// usage objects, in their wire shapes (PROTOCOLS.md §1.3 and §2.2).
func TestUsageDetails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		api   api
		reply openaitest.Reply
		want  model.Usage
	}{
		{apis[0], openaitest.Stream(`event: response.output_text.delta
data: {"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi","sequence_number":0}

event: response.completed
data: {"type":"response.completed","response":{"status":"completed","output":[],"usage":{"input_tokens":2006,"input_tokens_details":{"cached_tokens":1920},"output_tokens":300,"output_tokens_details":{"reasoning_tokens":256},"total_tokens":2306}},"sequence_number":1}

`), model.Usage{InputTokens: 2006, OutputTokens: 300, TotalTokens: 2306, CacheReadTokens: 1920, ReasoningTokens: 256}},
		{apis[0], openaitest.Stream(`event: response.completed
data: {"type":"response.completed","response":{"status":"completed","output":[],"usage":{"input_tokens":3,"output_tokens":1,"total_tokens":4}},"sequence_number":0}

`), model.Usage{InputTokens: 3, OutputTokens: 1, TotalTokens: 4}},
		{apis[1], openaitest.Stream(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4.1-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4.1-mini","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}

data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4.1-mini","choices":[],"usage":{"prompt_tokens":1616,"completion_tokens":300,"total_tokens":1916,"prompt_tokens_details":{"cached_tokens":1536,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":192,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}

data: [DONE]

`), model.Usage{InputTokens: 1616, OutputTokens: 300, TotalTokens: 1916, CacheReadTokens: 1536, ReasoningTokens: 192}},
		{apis[1], openaitest.Fixture(apis[1].text), apis[1].textUsage},
	}
	for _, tt := range tests {
		t.Run(tt.api.name, func(t *testing.T) {
			t.Parallel()
			_, m := tt.api.setup(t, tt.reply)
			r := collect(t.Context(), m, ask("hi"))
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.last.Usage == nil || *r.last.Usage != tt.want {
				t.Errorf("usage %+v, want %+v", r.last.Usage, tt.want)
			}
		})
	}
}
