package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/agentos"
	"github.com/kern-dev/kern/client"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// exampleServer serves an "article" workflow that writes a few words, and a
// "story" workflow that writes until cancelled, as `kern serve` would; stop shuts
// it down.
func exampleServer() (url string, stop func()) {
	article := &workflow.Workflow{Name: "article", Steps: []workflow.Step{
		workflow.AgentStep("write", &agent.Agent{Name: "Writer", Model: scripted.New("Go is fun.")}, ""),
	}}
	story := &workflow.Workflow{Name: "story", Steps: []workflow.Step{
		workflow.AgentStep("write", &agent.Agent{Name: "Teller", Model: &scripted.Model{
			Turns: []scripted.Turn{{Text: "Once upon a time"}}, Delay: time.Hour,
		}}, ""),
	}}
	srv, err := agentos.New(agentos.Config{Workflows: []*workflow.Workflow{article, story}, SecurityKey: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	return ts.URL, func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		srv.Shutdown(ctx)
		ts.Close()
	}
}

// Stream a workflow run and print its text as it comes.
func ExampleComponent_Stream() {
	url, stop := exampleServer()
	defer stop()
	hc := &http.Client{}
	defer hc.CloseIdleConnections()

	c, err := client.New(url, hc, client.WithSecurityKey("secret"))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for ev, err := range c.Workflow("article").Stream(ctx, client.RunRequest{Message: "Write about Go"}) {
		if err != nil {
			log.Fatal(err)
		}
		switch ev.Event {
		case run.EventRunContent:
			fmt.Print(ev.Content)
		case run.EventWorkflowCompleted:
			fmt.Println("\n" + ev.Event)
		}
	}
	// Output:
	// Go is fun.
	// WorkflowCompleted
}

// Cancel a run from another client while it streams: the stream ends with the
// run's WorkflowCancelled event, and the run keeps what it had written.
func ExampleClient_CancelRun() {
	url, stop := exampleServer()
	defer stop()
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	c, _ := client.New(url, hc, client.WithSecurityKey("secret"))
	ctx := context.Background()

	var runID string
	for ev, err := range c.Workflow("story").Stream(ctx, client.RunRequest{Message: "A story"}) {
		if err != nil {
			log.Fatal(err)
		}
		switch ev.Event {
		case run.EventWorkflowStarted:
			runID = ev.RunID
		case run.EventRunContent:
			ans, err := c.CancelRun(ctx, runID, true) // waits for the run's end
			if err != nil {
				log.Fatal(err)
			}
			fmt.Println("cancel:", ans.Status)
		case run.EventWorkflowCancelled:
			fmt.Println("stream:", ev.Event, ev.Reason)
		}
	}
	r, err := c.GetRun(ctx, runID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("run: %s %q\n", r.Status, r.Content)
	// Output:
	// cancel: CANCELLED
	// stream: WorkflowCancelled cancelled by request
	// run: CANCELLED "Once "
}

// Errors the server answers are *client.Error values.
func ExampleError() {
	url, stop := exampleServer()
	defer stop()
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	c, _ := client.New(url, hc, client.WithSecurityKey("secret"))

	_, err := c.GetRun(context.Background(), "no-such-run")
	if ce, ok := errors.AsType[*client.Error](err); ok {
		fmt.Println(ce.StatusCode, ce.Detail)
	}
	// Output:
	// 404 run "no-such-run" not found
}

// Queue a run in the background, then follow its events from the first one.
func ExampleComponent_Start() {
	url, stop := exampleServer()
	defer stop()
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	c, _ := client.New(url, hc, client.WithSecurityKey("secret"))
	ctx := context.Background()

	article := c.Workflow("article")
	queued, err := article.Start(ctx, client.RunRequest{Message: "Write about Go", UserID: "ada"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("queued:", queued.Status)
	for ev, err := range article.Resume(ctx, queued.RunID, -1) {
		if err != nil {
			log.Fatal(err)
		}
		if ev.Event.Terminal() && ev.RunID == queued.RunID {
			fmt.Println("ended:", ev.Event)
		}
	}
	r, err := article.GetRun(ctx, queued.RunID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s for %s: %q\n", r.Status, r.UserID, r.Content)
	// Output:
	// queued: PENDING
	// ended: WorkflowCompleted
	// COMPLETED for ada: "Go is fun."
}
