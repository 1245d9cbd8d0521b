package workflow_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// attachmentCounter is a scripted model that records how many attachments each
// agent's request carried.
type attachmentCounter struct {
	mu   sync.Mutex
	seen map[string]int // the request's first message → its attachments
}

func (c *attachmentCounter) model(name string) *scripted.Model {
	return &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		c.mu.Lock()
		defer c.mu.Unlock()
		n := 0
		for _, m := range req.Messages {
			n += len(m.Attachments)
		}
		c.seen[name] = n
		return scripted.Turn{Text: name + " done"}
	}}
}

// TestWorkflowAttachments checks that a workflow run's attachments go to the agent
// steps that start first (every branch of a first Parallel), not to later ones.
func TestWorkflowAttachments(t *testing.T) {
	t.Parallel()
	c := &attachmentCounter{seen: make(map[string]int)}
	step := func(name string) *workflow.Task {
		return workflow.AgentStep(name, &agent.Agent{Name: name, Model: c.model(name)}, "")
	}
	w := &workflow.Workflow{Name: "look", Steps: []workflow.Step{
		&workflow.Parallel{Name: "first", Steps: []workflow.Step{step("a"), step("b")}},
		step("c"),
	}}
	img := model.ImageURL("https://example.com/cat.png")
	if _, err := w.Run(t.Context(), "what is this?", agent.WithAttachments(img)); err != nil {
		t.Fatal(err)
	}
	if c.seen["a"] != 1 || c.seen["b"] != 1 || c.seen["c"] != 0 {
		t.Errorf("attachments seen %v, want a and b one each, c none", c.seen)
	}
	_, err := w.Run(t.Context(), "x", agent.WithAttachments(model.ImageURL("ftp://example.com/cat.png")))
	if !errors.Is(err, run.ErrInvalid) {
		t.Errorf("a bad attachment: %v, want ErrInvalid before the run starts", err)
	}
}
