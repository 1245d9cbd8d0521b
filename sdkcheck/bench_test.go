package sdkcheck_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	asdk "github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	osdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/anthropic"
	"github.com/kern-dev/kern/model/anthropic/anthropictest"
	"github.com/kern-dev/kern/model/openai"
	"github.com/kern-dev/kern/model/openai/openaitest"
)

// benchDeltas is the number of text deltas of every benchmark's stream.
const benchDeltas = 256

// canned is an http.RoundTripper that answers every request with body, in memory.
type canned struct{ body []byte }

func (c canned) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"text/event-stream; charset=utf-8"}},
		Body:       io.NopCloser(bytes.NewReader(c.body)),
		Request:    req,
	}, nil
}

// repeatDelta is an openaitest fixture with its text deltas replaced by benchDeltas
// copies of the first one.
func repeatDelta(fixture string, isDelta func(ev string) bool) []byte {
	var b strings.Builder
	wrote := false
	for ev := range strings.SplitAfterSeq(string(openaitest.FixtureBytes(fixture)), "\n\n") {
		if !isDelta(ev) {
			b.WriteString(ev)
			continue
		}
		if !wrote {
			b.WriteString(strings.Repeat(ev, benchDeltas))
			wrote = true
		}
	}
	return []byte(b.String())
}

var (
	responsesBody = repeatDelta("responses_text.sse", func(ev string) bool {
		return strings.HasPrefix(ev, "event: response.output_text.delta\n")
	})
	chatBody = repeatDelta("chat_text.sse", func(ev string) bool {
		return strings.Contains(ev, `"delta":{"content":"`)
	})
	messagesBody = []byte(anthropictest.Text(slices256(" word")...).Body)
)

func slices256(s string) []string {
	out := make([]string, benchDeltas)
	for i := range out {
		out[i] = s
	}
	return out
}

// perChunk runs one streamed answer per iteration and reports the time and the
// allocations per text chunk (the whole request's, spread over its chunks).
func perChunk(b *testing.B, run func() int) {
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	chunks := 0
	for b.Loop() {
		if n := run(); n != benchDeltas {
			b.Fatalf("%d chunks, want %d", n, benchDeltas)
		}
		chunks += benchDeltas
	}
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(chunks), "ns/chunk")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(chunks), "allocs/chunk")
}

// kernChunks ranges over one stream of m and counts its text chunks.
func kernChunks(b *testing.B, m model.Model) int {
	n := 0
	for c, err := range m.Stream(context.Background(), ask("hi")) {
		if err != nil {
			b.Fatal(err)
		}
		if c.Text != "" {
			n++
		}
	}
	return n
}

func openAIBenchSDK(body []byte) osdk.Client {
	return osdk.NewClient(option.WithBaseURL("http://canned/v1"), option.WithAPIKey("k"),
		option.WithHTTPClient(&http.Client{Transport: canned{body}}), option.WithMaxRetries(0))
}

func openAIBenchKern(body []byte) []openai.Option {
	return []openai.Option{openai.WithBaseURL("http://canned/v1"), openai.WithAPIKey("k"),
		openai.WithHTTPClient(&http.Client{Transport: canned{body}})}
}

// BenchmarkResponsesStream streams a Responses answer of benchDeltas text deltas
// through the SDK (reading each event's type and delta) and through kern's client.
func BenchmarkResponsesStream(b *testing.B) {
	b.Run("sdk", func(b *testing.B) {
		c := openAIBenchSDK(responsesBody)
		perChunk(b, func() int {
			s := c.Responses.NewStreaming(context.Background(), hello)
			defer s.Close()
			n := 0
			for s.Next() {
				if ev := s.Current(); ev.Type == "response.output_text.delta" && ev.Delta != "" {
					n++
				}
			}
			if err := s.Err(); err != nil {
				b.Fatal(err)
			}
			return n
		})
	})
	b.Run("kern", func(b *testing.B) {
		m := openai.NewResponses("gpt-5.2", openAIBenchKern(responsesBody)...)
		perChunk(b, func() int { return kernChunks(b, m) })
	})
}

// BenchmarkChatStream streams a Chat Completions answer through the SDK (with its
// ChatCompletionAccumulator, as the SDK's docs use it, and without) and through
// kern's client.
func BenchmarkChatStream(b *testing.B) {
	for _, accumulate := range []bool{true, false} {
		name := "sdk"
		if !accumulate {
			name = "sdk-no-accumulator"
		}
		b.Run(name, func(b *testing.B) { chatSDK(b, accumulate) })
	}
	b.Run("kern", func(b *testing.B) {
		m := openai.NewChat("gpt-4.1-mini", openAIBenchKern(chatBody)...)
		perChunk(b, func() int { return kernChunks(b, m) })
	})
}

func chatSDK(b *testing.B, accumulate bool) {
	c := openAIBenchSDK(chatBody)
	perChunk(b, func() int {
		s := c.Chat.Completions.NewStreaming(context.Background(), helloChat)
		defer s.Close()
		var acc osdk.ChatCompletionAccumulator
		n := 0
		for s.Next() {
			chunk := s.Current()
			if accumulate {
				acc.AddChunk(chunk)
			}
			if len(chunk.Choices) > 0 && chunk.Choices[0].Delta.Content != "" {
				n++
			}
		}
		if err := s.Err(); err != nil {
			b.Fatal(err)
		}
		return n
	})
}

// BenchmarkMessagesStream streams an Anthropic answer through the SDK (with
// Message.Accumulate, as the SDK's docs use it, and without) and through kern's
// client.
func BenchmarkMessagesStream(b *testing.B) {
	for _, accumulate := range []bool{true, false} {
		name := "sdk"
		if !accumulate {
			name = "sdk-no-accumulator"
		}
		b.Run(name, func(b *testing.B) { messagesSDK(b, accumulate) })
	}
	b.Run("kern", func(b *testing.B) {
		m := anthropic.New("claude-sonnet-4-5", anthropic.WithBaseURL("http://canned"), anthropic.WithAPIKey("k"),
			anthropic.WithHTTPClient(&http.Client{Transport: canned{messagesBody}}))
		perChunk(b, func() int { return kernChunks(b, m) })
	})
}

func messagesSDK(b *testing.B, accumulate bool) {
	c := asdk.NewClient(aoption.WithoutEnvironmentDefaults(), aoption.WithBaseURL("http://canned"),
		aoption.WithAPIKey("k"), aoption.WithHTTPClient(&http.Client{Transport: canned{messagesBody}}), aoption.WithMaxRetries(0))
	perChunk(b, func() int {
		s := c.Messages.NewStreaming(context.Background(), helloMessage)
		defer s.Close()
		var msg asdk.Message
		n := 0
		for s.Next() {
			ev := s.Current()
			if accumulate {
				if err := msg.Accumulate(ev); err != nil {
					b.Fatal(err)
				}
			}
			if ev.Type == "content_block_delta" && ev.Delta.Type == "text_delta" {
				n++
			}
		}
		if err := s.Err(); err != nil {
			b.Fatal(err)
		}
		return n
	})
}
