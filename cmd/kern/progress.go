package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kern-dev/kern/run"
)

// progress shows a run live on a terminal: the step running, the streamed text,
// tool calls, and a final line with the status and the elapsed time.
type progress struct {
	w      io.Writer
	start  time.Time
	topID  string     // the top-level run's id, from its first event
	inText bool       // the last thing written was streamed text, without a newline
	end    *run.Event // the top-level run's terminal event
	paused *run.Event // the top-level run's pause, when its stream ended there
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, start: time.Now()}
}

// show writes ev and reports whether it was the top-level run's terminal event.
func (p *progress) show(ev *run.Event) bool {
	if p.topID == "" {
		p.topID = ev.RunID
		p.line("run %s started%s", ev.RunID, origin(ev))
	}
	switch ev.Event {
	case run.EventStepStarted:
		p.line("step %s%s started", ev.StepName, stepOf(ev))
	case run.EventStepCompleted:
		p.line("step %s done", ev.StepName)
	case run.EventStepError:
		p.line("step %s failed: %s", ev.StepName, ev.Error)
	case run.EventRunContent, run.EventTeamRunContent:
		if ev.Event == run.EventTeamRunContent && ev.RunID != p.topID {
			break // a nested team's answer; its members' content is shown already
		}
		fmt.Fprint(p.w, ev.Content)
		p.inText = ev.Content != "" && !strings.HasSuffix(ev.Content, "\n")
	case run.EventToolCallStarted:
		if ev.Tool != nil {
			p.line("tool %s(%s) called", ev.Tool.ToolName, compact(string(ev.Tool.ToolArgs), 80))
		}
	case run.EventToolCallCompleted:
		if ev.Tool != nil {
			p.line("tool %s answered (%d bytes)", ev.Tool.ToolName, len(ev.Tool.Result))
		}
	case run.EventToolCallError:
		if ev.Tool != nil {
			p.line("tool %s failed: %s", ev.Tool.ToolName, compact(ev.Tool.Result, 200))
		}
	case run.EventStepPaused:
		p.line("step %s waits for a person", ev.StepName)
	case run.EventStepContinued, run.EventRunContinued:
		p.line("run %s continued", ev.RunID)
	}
	if ev.RunID == p.topID && ev.Event.Pauses() {
		p.paused = ev
		p.line("PAUSED after %s: run %s waits for a person", time.Since(p.start).Round(100*time.Millisecond), ev.RunID)
		return true
	}
	if ev.RunID != p.topID || !ev.Event.Terminal() {
		return false
	}
	p.end = ev
	p.final(ev)
	return true
}

// status returns the top-level run's final status; "" while it has not ended.
func (p *progress) status() run.Status {
	if p.end == nil {
		return ""
	}
	switch p.end.Event {
	case run.EventRunCompleted, run.EventWorkflowCompleted, run.EventTeamRunCompleted:
		return run.StatusCompleted
	case run.EventRunCancelled, run.EventWorkflowCancelled, run.EventTeamRunCancelled:
		return run.StatusCancelled
	}
	return run.StatusError
}

func (p *progress) final(ev *run.Event) {
	elapsed := time.Since(p.start).Round(100 * time.Millisecond)
	switch st := p.status(); st {
	case run.StatusCompleted:
		p.line("%s in %s: run %s", st, elapsed, ev.RunID)
	case run.StatusCancelled:
		p.line("%s after %s: run %s (%s)", st, elapsed, ev.RunID, ev.Reason)
	default:
		p.line("%s after %s: run %s: %s", st, elapsed, ev.RunID, ev.Error)
	}
}

// line writes one progress line, stamped with the time since the run started.
func (p *progress) line(format string, args ...any) {
	if p.inText {
		fmt.Fprintln(p.w)
		p.inText = false
	}
	fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

func origin(ev *run.Event) string {
	switch {
	case ev.Origin == nil:
		return ""
	case ev.WorkflowID != "":
		return fmt.Sprintf(": workflow %s, session %s", ev.WorkflowID, ev.SessionID)
	case ev.AgentID != "":
		return fmt.Sprintf(": agent %s, session %s", ev.AgentID, ev.SessionID)
	}
	return ""
}

func stepOf(ev *run.Event) string {
	if ev.Origin == nil || ev.StepIndex == nil {
		return ""
	}
	return fmt.Sprintf(" (#%d)", *ev.StepIndex+1)
}

// compact returns s on one line, cut to n runes.
func compact(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "..."
	}
	return s
}
