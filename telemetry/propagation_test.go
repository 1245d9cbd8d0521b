package telemetry_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model/openai"
	"github.com/kern-dev/kern/model/openai/openaitest"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/telemetry"
)

// TestModelRequestCarriesTraceparent: a traced run's model HTTP requests carry
// its trace out in a W3C traceparent header; an untraced run's carry none.
func TestModelRequestCarriesTraceparent(t *testing.T) {
	o, _ := newObserver(t, false)
	srv := openaitest.NewServer(t)
	srv.Enqueue(openaitest.Fixture("responses_text.sse"), openaitest.Fixture("responses_text.sse"))
	a := &agent.Agent{Name: "Remote", Model: openai.NewResponses("gpt-5.2", openai.WithBaseURL(srv.URL),
		openai.WithAPIKey(openaitest.APIKey), openai.WithHTTPClient(srv.Client()))}

	for _, obs := range []*telemetry.Observer{o, nil} {
		id := run.NewID()
		ctx, tr := obs.Begin(context.Background(), telemetry.Run{ID: id, Kind: run.KindAgent, Component: a.AgentID(), Name: a.Name})
		x, err := a.Start(ctx, "hello", run.WithID(id))
		if err != nil {
			t.Fatal(err)
		}
		tr.Follow(x)
		if out := x.Wait(); out.Status != run.StatusCompleted {
			t.Fatalf("run %s: %s", out.Status, out.Error)
		}
	}
	o.Wait()
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	got := propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(reqs[0].Header))
	if sc := trace.SpanContextFromContext(got); !sc.IsValid() {
		t.Errorf("the traced run's request has no valid traceparent: %q", reqs[0].Header.Get("Traceparent"))
	}
	if tp := reqs[1].Header.Get("Traceparent"); tp != "" {
		t.Errorf("the untraced run's request carries traceparent %q", tp)
	}
}
