package anthropic_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"runtime"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/anthropic"
	"github.com/kern-dev/kern/model/anthropic/anthropictest"
	"github.com/kern-dev/kern/run"
)

// benchDeltas is the number of text deltas of the benchmarks' stream.
const benchDeltas = 200

// cannedBody is a text answer in benchDeltas deltas of one short word each, with
// the pings and events the API sends around them.
var cannedBody = func() []byte {
	words := make([]string, benchDeltas)
	for i := range words {
		words[i] = " word"
	}
	return []byte(anthropictest.Text(words...).Body)
}()

// canned is an http.RoundTripper that answers every request with cannedBody, without
// a network.
type canned struct{}

func (canned) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"text/event-stream; charset=utf-8"}},
		Body:       io.NopCloser(bytes.NewReader(cannedBody)),
		Request:    req,
	}, nil
}

func benchModel() *anthropic.Model {
	return anthropic.New("claude-sonnet-4-5", anthropic.WithAPIKey("k"), anthropic.WithBaseURL("http://anthropic.invalid"),
		anthropic.WithHTTPClient(&http.Client{Transport: canned{}}))
}

// BenchmarkStream parses and delivers a streamed answer of benchDeltas text deltas
// (request encoding included), reporting the cost per chunk.
func BenchmarkStream(b *testing.B) {
	m := benchModel()
	ctx := context.Background()
	req := &model.Request{Instructions: "Be brief.", Messages: []model.Message{{Role: model.RoleUser, Content: "Write."}}}
	b.ReportAllocs()
	p := measure(b)
	for b.Loop() {
		n := 0
		for c, err := range m.Stream(ctx, req) {
			if err != nil {
				b.Fatal(err)
			}
			if c.Text != "" {
				n++
			}
		}
		if n != benchDeltas {
			b.Fatalf("%d chunks, want %d", n, benchDeltas)
		}
	}
	p.report()
}

// BenchmarkAgentStream runs an agent on this model and ranges over its events: the
// cost per chunk as an agent's consumer sees it.
func BenchmarkAgentStream(b *testing.B) {
	a := &agent.Agent{Name: "writer", Model: benchModel(), Instructions: "Be brief."}
	ctx := context.Background()
	b.ReportAllocs()
	p := measure(b)
	for b.Loop() {
		n := 0
		for ev, err := range a.Stream(ctx, "Write.") {
			if err != nil {
				b.Fatal(err)
			}
			if ev.Event == run.EventRunContent {
				n++
			}
		}
		if n != benchDeltas {
			b.Fatalf("%d content events, want %d", n, benchDeltas)
		}
	}
	p.report()
}

// perChunk measures a benchmark's time and allocations per text chunk.
type perChunk struct {
	b      *testing.B
	before runtime.MemStats
}

func measure(b *testing.B) *perChunk {
	p := &perChunk{b: b}
	runtime.ReadMemStats(&p.before)
	return p
}

// report reports ns/chunk and allocs/chunk (the whole request's, spread over its
// chunks).
func (p *perChunk) report() {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	chunks := float64(p.b.N) * benchDeltas
	p.b.ReportMetric(float64(p.b.Elapsed().Nanoseconds())/chunks, "ns/chunk")
	p.b.ReportMetric(float64(after.Mallocs-p.before.Mallocs)/chunks, "allocs/chunk")
}
