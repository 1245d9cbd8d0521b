package agentos_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kern-dev/kern/agentos"
	"github.com/kern-dev/kern/client"
	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/telemetry"
	"github.com/kern-dev/kern/workflow"
)

// TestCancelSource: a cancel over HTTP is told, in the run span's cancel event,
// as the API's, or as the command line's when its client says so (kern cancel's
// User-Agent).
func TestCancelSource(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	obs, err := telemetry.New(telemetry.Config{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	h, err := host.New(nil, host.Options{Workflows: []*workflow.Workflow{articleWorkflow()}, Telemetry: obs})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := agentos.New(agentos.Config{Host: h})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(srv.Handler())
	defer api.Close()
	defer srv.Shutdown(context.Background())
	for _, c := range []struct{ userAgent, want string }{
		{"", telemetry.SourceAPI},
		{client.UserAgentCLI + "/1", telemetry.SourceCLI},
	} {
		resp, err := http.Post(api.URL+"/workflows/article/runs", "application/x-www-form-urlencoded", strings.NewReader("message=go&background=true"))
		if err != nil {
			t.Fatal(err)
		}
		var accepted struct {
			RunID string `json:"run_id"`
		}
		err = json.NewDecoder(resp.Body).Decode(&accepted)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		r := h.Lookup(accepted.RunID)
		<-r.Started()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = r.Exec().Log.Follow(ctx, 0, func(ev *run.Event) bool { return ev.Event != run.EventModelRequestStarted || ev.AgentName != "Writer" })
		cancel()
		req, _ := http.NewRequest("POST", api.URL+"/runs/"+accepted.RunID+"/cancel", nil)
		if c.userAgent != "" {
			req.Header.Set("User-Agent", c.userAgent)
		}
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		r.Exec().Wait()
		obs.Wait()
		var source string
		for _, s := range exp.GetSpans() {
			for _, kv := range s.Attributes {
				if kv.Key == "kern.run.id" && kv.Value.AsString() == accepted.RunID && strings.HasPrefix(s.Name, "invoke_workflow ") {
					for _, ev := range s.Events {
						for _, a := range ev.Attributes {
							if a.Key == "kern.cancel.source" {
								source = a.Value.AsString()
							}
						}
					}
				}
			}
		}
		if source != c.want {
			t.Errorf("User-Agent %q: cancel source %q, want %q", c.userAgent, source, c.want)
		}
	}
}
