package agent_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
)

// changingToolset offers one tool per use, named after the use's number.
type changingToolset struct {
	uses atomic.Int32
	err  error
}

func (c *changingToolset) Tools(context.Context) ([]tool.Tool, error) {
	if c.err != nil {
		return nil, c.err
	}
	n := c.uses.Add(1)
	name := "tool" + string(rune('0'+n))
	return []tool.Tool{tool.Func(name, "", func(context.Context, struct{}) (string, error) { return name + " ran", nil })}, nil
}

// A toolset is asked before every model request, and a call goes to the tools of
// the request the model answers.
func TestToolsetRefreshedPerRequest(t *testing.T) {
	var offered []string
	m := &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		var names []string
		for _, d := range req.Tools {
			names = append(names, d.Name)
		}
		offered = append(offered, strings.Join(names, ","))
		if len(offered) == 1 {
			return scripted.Turn{ToolCalls: []model.ToolCall{{Name: "tool1"}}}
		}
		return scripted.Turn{Text: "done"}
	}}
	ts := &changingToolset{}
	a := &agent.Agent{Name: "a", Model: m, Toolsets: []tool.Toolset{ts}}
	var result string
	for ev, err := range a.Stream(t.Context(), "go") {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Event == run.EventToolCallCompleted {
			result = ev.Tool.Result
		}
	}
	if got := strings.Join(offered, "|"); got != "tool1|tool2" || result != "tool1 ran" {
		t.Errorf("offered %q, result %q", got, result)
	}
}

func TestToolsetErrors(t *testing.T) {
	broken := errors.New("server down")
	a := &agent.Agent{Name: "a", Model: scripted.New("hi"), Toolsets: []tool.Toolset{&changingToolset{err: broken}}}
	if _, err := a.Run(t.Context(), "go"); err == nil || !strings.Contains(err.Error(), "server down") {
		t.Errorf("run with a broken toolset: %v", err)
	}
	dup := &agent.Agent{Name: "a", Model: scripted.New("hi"), Tools: []tool.Tool{tool.Func("tool1", "", func(context.Context, struct{}) (string, error) { return "", nil })},
		Toolsets: []tool.Toolset{&changingToolset{}}}
	if _, err := dup.Run(t.Context(), "go"); err == nil || !strings.Contains(err.Error(), `two tools named "tool1"`) {
		t.Errorf("run with a duplicate tool name: %v", err)
	}
	if err := (&agent.Agent{Name: "a", Model: scripted.New("hi"), Toolsets: []tool.Toolset{nil}}).Validate(); !errors.Is(err, run.ErrInvalid) {
		t.Errorf("nil toolset: Validate() = %v", err)
	}
}

// A turn that calls a toolset's tool beside a tool that waits for a person pauses,
// and the toolset's call, which waits for nobody, runs before the pause.
func TestToolsetCallBesidePausingCall(t *testing.T) {
	send := tool.Func("send", "", func(context.Context, struct{}) (string, error) { return "sent", nil }, tool.RequiresConfirmation())
	m := &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		return scripted.Turn{ToolCalls: []model.ToolCall{{ID: "c1", Name: "tool1"}, {ID: "c2", Name: "send"}}}
	}}
	a := &agent.Agent{Name: "a", Model: m, Tools: []tool.Tool{send}, Toolsets: []tool.Toolset{&changingToolset{}}}
	var result string
	var paused bool
	for ev, err := range a.Stream(t.Context(), "go") {
		if err != nil && !errors.Is(err, run.ErrPaused) {
			t.Fatal(err)
		}
		switch ev.Event {
		case run.EventToolCallCompleted:
			if ev.Tool.ToolName == "tool1" {
				result = ev.Tool.Result
			}
		case run.EventRunPaused:
			paused = true
		}
	}
	if !paused || result != "tool1 ran" {
		t.Errorf("paused %v, the toolset's call gave %q; want a pause after %q", paused, result, "tool1 ran")
	}
}

// fixedToolset offers the same tools at every request.
type fixedToolset []tool.Tool

func (f fixedToolset) Tools(context.Context) ([]tool.Tool, error) { return f, nil }

// A toolset's tool made to wait for a confirmation (tool.With) pauses the run
// like the agent's own, and runs once confirmed, not before.
func TestToolsetToolThatWaits(t *testing.T) {
	var ran atomic.Int32
	send := tool.With(tool.Func("send", "", func(context.Context, struct{}) (string, error) {
		ran.Add(1)
		return "sent", nil
	}), tool.RequiresConfirmation())
	m := &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		for _, msg := range req.Messages {
			if msg.Role == model.RoleTool {
				return scripted.Turn{Text: "done: " + msg.Content}
			}
		}
		return scripted.Turn{ToolCalls: []model.ToolCall{{ID: "c1", Name: "send"}}}
	}}
	a := &agent.Agent{Name: "a", Model: m, Toolsets: []tool.Toolset{fixedToolset{send}}}
	out, _ := a.Run(t.Context(), "go")
	if out == nil || out.Status != run.StatusPaused || len(out.Tools) != 1 || ran.Load() != 0 {
		t.Fatalf("run ended %+v (tool ran %d times); want PAUSED before the tool runs", out, ran.Load())
	}
	ok := true
	d := out.Tools[0]
	d.Confirmed = &ok
	done, err := a.Run(t.Context(), "go", run.WithID(out.RunID),
		run.WithResume(&run.Resume{NextEvent: out.Paused.NextEvent, Paused: out.Paused, Decisions: []run.ToolExecution{d}}))
	if err != nil || done.Status != run.StatusCompleted || done.Content != "done: sent" || ran.Load() != 1 {
		t.Fatalf("continued run: %+v, %v (tool ran %d times)", done, err, ran.Load())
	}
}
