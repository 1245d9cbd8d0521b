package agentos_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/agentos"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/workflow"
)

// A server for one workflow, mounted on a test server; a run started with
// stream=false is answered with its output as JSON.
func ExampleNew() {
	wf := &workflow.Workflow{Name: "Greeter", Steps: []workflow.Step{
		workflow.AgentStep("greet", &agent.Agent{Name: "Greeter", Model: scripted.New("hello")}, ""),
	}}
	srv, err := agentos.New(agentos.Config{Workflows: []*workflow.Workflow{wf}})
	if err != nil {
		fmt.Println(err)
		return
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	defer srv.Shutdown(context.Background()) // every run ends before the program does

	form := url.Values{"message": {"hi"}, "stream": {"false"}}
	resp, err := ts.Client().Post(ts.URL+"/workflows/greeter/runs", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, strings.Contains(string(body), `"status":"COMPLETED"`), strings.Contains(string(body), `"content":"hello"`))
	ts.Client().CloseIdleConnections()
	// Output: 200 true true
}
