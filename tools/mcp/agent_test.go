package mcp_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/tools/mcp"
)

// afterChange is a Toolset that, from its second use on, first waits until the
// server said its tools changed: the test's way of knowing that the notification
// arrived before the agent's next model request.
type afterChange struct {
	c       *mcp.Client
	changed chan struct{}
	uses    atomic.Int32
}

func (a *afterChange) Tools(ctx context.Context) ([]tool.Tool, error) {
	if a.uses.Add(1) == 2 {
		select {
		case <-a.changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return a.c.Tools(ctx)
}

func toolNames(defs []tool.Definition) []string {
	var ns []string
	for _, d := range defs {
		ns = append(ns, d.Name)
	}
	return ns
}

// An agent offers a server's tools, calls them, and sees a tool the server added
// during the run at its next model request.
func TestAgentUsesServerTools(t *testing.T) {
	transports(t, func(t *testing.T, c *mcp.Client, _ *observer) {
		ts := &afterChange{c: c, changed: make(chan struct{}, 1)}
		mcp.OnListChanged(c, func() {
			select {
			case ts.changed <- struct{}{}:
			default:
			}
		})
		var offered [][]string
		m := &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
			offered = append(offered, toolNames(req.Tools))
			switch len(offered) {
			case 1:
				return scripted.Turn{ToolCalls: []model.ToolCall{
					{Name: "echo", Arguments: json.RawMessage(`{"text":"hi"}`)},
					{Name: "add_tool", Arguments: json.RawMessage(`{"name":"late"}`)},
				}}
			case 2:
				return scripted.Turn{ToolCalls: []model.ToolCall{{Name: "late", Arguments: json.RawMessage(`{"text":""}`)}}}
			}
			return scripted.Turn{Text: "done"}
		}}
		a := &agent.Agent{Name: "user", Model: m, Toolsets: []tool.Toolset{ts}}
		results := map[string]string{}
		var final *run.Event
		for ev, err := range a.Stream(t.Context(), "go") {
			if err != nil {
				t.Fatal(err)
			}
			switch ev.Event {
			case run.EventToolCallCompleted:
				results[ev.Tool.ToolName] = ev.Tool.Result
			case run.EventToolCallError:
				t.Errorf("tool error: %s", ev.Error)
			}
			final = ev
		}
		if final.Event != run.EventRunCompleted {
			t.Fatalf("final event = %s (%s)", final.Event, final.Error)
		}
		if results["echo"] != "echo: hi" || results["add_tool"] != "added late" || results["late"] != "late" {
			t.Errorf("results = %v", results)
		}
		if len(offered) != 3 || slices.Contains(offered[0], "late") || !slices.Contains(offered[1], "late") {
			t.Errorf("tools offered per request = %v", offered)
		}
	})
}

// A run cancelled during an MCP call ends at once, and the server hears the cancel.
func TestAgentCancelDuringCall(t *testing.T) {
	transports(t, func(t *testing.T, c *mcp.Client, o *observer) {
		m := &scripted.Model{Turns: []scripted.Turn{{ToolCalls: []model.ToolCall{{Name: "slow"}}}, {Text: "never"}}}
		a := &agent.Agent{Name: "user", Model: m, Toolsets: []tool.Toolset{c}}
		x, err := a.Start(t.Context(), "go")
		if err != nil {
			t.Fatal(err)
		}
		o.next(t, "started slow")
		if st, err := a.CancelRun(t.Context(), x.ID); st != run.StatusCancelled || err != nil {
			t.Fatalf("CancelRun = %s, %v", st, err)
		}
		o.next(t, "cancelled slow")
		out := x.Wait()
		if out.Status != run.StatusCancelled {
			t.Errorf("status = %s", out.Status)
		}
	})
}

// A server that cannot be reached ends the run with an error that names it.
func TestAgentServerUnreachable(t *testing.T) {
	c := mcp.New(mcp.Server{Name: "gone", Command: "/nonexistent/server"})
	defer c.Close()
	a := &agent.Agent{Name: "user", Model: scripted.New("hi"), Toolsets: []tool.Toolset{c}}
	_, err := a.Run(t.Context(), "go")
	if err == nil {
		t.Fatal("run with an unreachable server: no error")
	}
	t.Log(err)
}
