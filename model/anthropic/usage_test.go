package anthropic_test

import (
	"testing"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/anthropic/anthropictest"
)

// TestUsageCache checks that tokens read from and written to the prompt cache are
// reported apart, and counted in the input tokens, in the wire shape of
// PROTOCOLS.md §3.
func TestUsageCache(t *testing.T) {
	t.Parallel()
	const start = `event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":21,"cache_creation_input_tokens":188,"cache_read_input_tokens":1500,"output_tokens":1,"service_tier":"standard"}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

`
	tests := []struct {
		name, delta string
		want        model.Usage
	}{
		{"message_start", `event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":12}}

`, model.Usage{InputTokens: 1709, OutputTokens: 12, TotalTokens: 1721, CacheReadTokens: 1500, CacheWriteTokens: 188}},
		{"cumulative message_delta", `event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":21,"cache_creation_input_tokens":0,"cache_read_input_tokens":1688,"output_tokens":12}}

`, model.Usage{InputTokens: 1709, OutputTokens: 12, TotalTokens: 1721, CacheReadTokens: 1688}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, anthropictest.SSE(start+tt.delta+"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))
			c := collect(t.Context(), newModel(srv), hello).final(t)
			if c.Usage == nil || *c.Usage != tt.want {
				t.Errorf("usage %+v, want %+v", c.Usage, tt.want)
			}
		})
	}
}
