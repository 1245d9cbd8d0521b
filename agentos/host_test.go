package agentos

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// TestServeAHost: a server answers for a host a program made; a run started over
// HTTP is the host's, and a cancel answers whether the run is known.
func TestServeAHost(t *testing.T) {
	st := openStore(t)
	defer st.Close()
	h, err := host.New(st, host.Options{Workflows: []*workflow.Workflow{slowWorkflow("Story")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Host: h, Workflows: []*workflow.Workflow{quickWorkflow("Quick")}}); err == nil {
		t.Error("New accepted a Host and Workflows beside it")
	}
	srv, err := New(Config{Host: h})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	e := &env{t: t, srv: srv, ts: ts, client: ts.Client()}
	defer func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := srv.Shutdown(ctx); err != nil { // shuts the host down
			t.Error(err)
		}
		e.client.CloseIdleConnections()
		ts.Close()
	}()

	s := e.openStream("POST", "/workflows/story/runs", formType, form("message", "go"))
	defer s.close()
	id := s.until(run.EventRunContent)[0].ev.RunID
	if h.Lookup(id) == nil {
		t.Fatalf("run %s started over HTTP is not the host's", id)
	}
	code, body := e.do("POST", "/runs/"+id+"/cancel", "", "")
	if code != 200 || body["status"] != "CANCELLED" || body["known"] != true {
		t.Fatalf("cancel of a running run: %d %v", code, body)
	}
	code, body = e.do("POST", "/runs/no-such-run/cancel", "", "")
	if code != 200 || body["status"] != "PENDING" || body["known"] != false {
		t.Fatalf("cancel of an unknown run: %d %v; want PENDING, known false", code, body)
	}
}
