package client_test

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/kern-dev/kern/client"
)

// roundTrip answers every request with a copy of body as an event stream, without
// a network.
type roundTrip []byte

func (rt roundTrip) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Request: r,
		Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body:   io.NopCloser(bytes.NewReader(rt))}, nil
}

// BenchmarkStreamEvents reads a run of 1,000 content events as kern sends them: the
// cost per event of framing and decoding, what a client pays per chunk.
func BenchmarkStreamEvents(b *testing.B) {
	const n = 1000
	var body strings.Builder
	body.WriteString(frame("WorkflowStarted", 0, `{"event":"WorkflowStarted","run_id":"w1","created_at":1,"event_index":0,"workflow_id":"wf","workflow_name":"W","session_id":"s1"}`))
	for i := 1; i < n-1; i++ {
		body.WriteString(frame("RunContent", i, `{"event":"RunContent","run_id":"a1","created_at":1,"event_index":`+strconv.Itoa(i)+
			`,"agent_id":"writer","agent_name":"Writer","workflow_id":"wf","workflow_run_id":"w1","session_id":"s1","step_id":"write","step_name":"write","step_index":0,"content":"word "}`))
	}
	body.WriteString(frame("WorkflowCompleted", n-1, `{"event":"WorkflowCompleted","run_id":"w1","created_at":1,"event_index":`+strconv.Itoa(n-1)+`}`))
	c, err := client.New("http://kern.invalid", &http.Client{Transport: roundTrip(body.String())})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(body.Len()))
	b.ReportAllocs()
	for b.Loop() {
		got := 0
		for _, err := range c.Workflow("wf").Stream(b.Context(), client.RunRequest{Message: "hi"}) {
			if err != nil {
				b.Fatal(err)
			}
			got++
		}
		if got != n {
			b.Fatalf("%d events, want %d", got, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
}
