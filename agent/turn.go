package agent

import (
	"fmt"
	"strings"
	"time"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
)

// turn is what one model response brought besides its text: tool calls, the
// reasoning it showed (emitted as reasoning events as it streams), a refusal, and
// the reasoning blocks to replay.
type turn struct {
	calls     []model.ToolCall
	thinking  []model.Thinking
	reasoning strings.Builder // the reasoning shown so far, since ReasoningStarted
	reasoned  bool            // ReasoningStarted was emitted and not yet completed
	refusal   strings.Builder

	usage      requestUsage
	firstToken time.Duration // from the request to its first output (text, reasoning, a call)
	// What the response said of itself, for its ModelRequestCompleted detail. The
	// detail and the metrics that event points to are made as it is emitted, not
	// kept here: a turn is on the heap (shared with the model's stream) for as long
	// as the response streams, and small so.
	responseModel string
	finishReason  string
}

// chunk takes what c brings besides text and usage, emitting reasoning events; it
// reports false when the log refused an event (the run was cancelled).
func (t *turn) chunk(log *engine.Gate, event func(run.EventType) run.Event, c *model.Chunk, start time.Time) bool {
	if t.firstToken == 0 && (c.Text != "" || c.Reasoning != "" || c.Refusal != "" || len(c.ToolCalls) > 0) {
		t.firstToken = time.Since(start)
	}
	if c.Reasoning != "" {
		if !t.reasoned {
			t.reasoned = true
			ev := event(run.EventReasoningStarted)
			if !log.Emit(&ev) {
				return false
			}
		}
		t.reasoning.WriteString(c.Reasoning)
		ev := event(run.EventReasoningContentDelta)
		ev.Detail = &run.Detail{ReasoningContent: c.Reasoning}
		if !log.Emit(&ev) {
			return false
		}
	}
	if c.Text != "" || len(c.ToolCalls) > 0 || c.Refusal != "" {
		if !t.end(log, event) {
			return false
		}
	}
	if c.Refusal != "" {
		t.refusal.WriteString(c.Refusal)
	}
	t.calls = append(t.calls, c.ToolCalls...)
	t.thinking = append(t.thinking, c.Thinking...)
	if c.Model != "" {
		t.responseModel = c.Model
	}
	if c.FinishReason != "" {
		t.finishReason = string(c.FinishReason)
	}
	return true
}

// completedDetail returns the detail of the request's ModelRequestCompleted:
// the run's model detail d, with the response's model and finish reason when
// the model said them.
func (t *turn) completedDetail(d *run.Detail) *run.Detail {
	if t.responseModel == "" && t.finishReason == "" {
		return d
	}
	detail := &run.Detail{ResponseModel: t.responseModel, FinishReason: t.finishReason}
	if d != nil {
		detail.Model, detail.ModelProvider = d.Model, d.ModelProvider
	}
	return detail
}

// end emits ReasoningCompleted if reasoning is open, and the refusal once the
// response has ended; it reports false when the log refused an event.
func (t *turn) end(log *engine.Gate, event func(run.EventType) run.Event) bool {
	if t.reasoned {
		t.reasoned = false
		ev := event(run.EventReasoningCompleted)
		ev.Detail = &run.Detail{ReasoningContent: t.reasoning.String()}
		t.reasoning.Reset()
		if !log.Emit(&ev) {
			return false
		}
	}
	return true
}

// refused emits the turn's refusal, if it had one, as a RunRefusal event.
func (t *turn) refused(log *engine.Gate, event func(run.EventType) run.Event) bool {
	if t.refusal.Len() == 0 {
		return true
	}
	ev := event(run.EventRunRefusal)
	ev.Content = t.refusal.String()
	return log.Emit(&ev)
}

// answer ends a structured run with the text of the model's last response. A valid
// answer becomes the run's content (its compact JSON, typed by the schema's name) and
// is emitted as one RunContent event; answer returns nil, nil. An invalid one, the
// first time, returns the validation error to send back to the model (fix). After a
// retry, or for a refusal, it returns the run's error, which wraps ErrInvalidOutput.
func (a *Agent) answer(log *engine.Gate, event func(run.EventType) run.Event, out *run.Output, content *text, reply, refusal string, retried bool) (fix, err error) {
	if refusal != "" {
		return nil, fmt.Errorf("agent %q: %w: the model refused: %s", a.Name, ErrInvalidOutput, refusal)
	}
	raw, perr := a.Output.Parse(reply)
	if perr != nil {
		if retried {
			return nil, fmt.Errorf("agent %q: %w after a retry: %w", a.Name, ErrInvalidOutput, perr)
		}
		return perr, nil
	}
	answer := string(raw)
	content.Reset()
	content.WriteString(answer)
	out.ContentType = a.Output.name
	ev := event(run.EventRunContent)
	ev.Content = answer
	ev.Detail = &run.Detail{ContentType: a.Output.name}
	if !log.Emit(&ev) {
		return nil, run.ErrCancelled
	}
	done := event(run.EventRunContentCompleted)
	log.Emit(&done)
	return nil, nil
}

// fixPrompt is the message that asks the model again for a structured answer.
func fixPrompt(err error) string {
	return "Your answer is not valid: " + err.Error() + ". Answer again with only a JSON object that matches the schema."
}
