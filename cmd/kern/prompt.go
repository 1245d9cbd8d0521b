package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/kern-dev/kern/client"
	"github.com/kern-dev/kern/run"
)

// exitPaused is kern run's exit code for a run left paused: it waits for a
// person's decision that this terminal did not give (--no-input, or no input).
const exitPaused = 4

// asker asks a person, line by line, for what a paused run waits for.
type asker struct {
	lines <-chan string // the lines a person types; closed at the end of input
	out   io.Writer
	stop  <-chan struct{} // closed once the run is being cancelled (Ctrl-C)
}

// newAsker reads lines from in on a goroutine of its own: a prompt can then give
// up when the run is cancelled while it waits for a line. The goroutine ends at
// the end of in (or with the process).
func newAsker(in io.Reader, out io.Writer, stop <-chan struct{}) *asker {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return &asker{lines: lines, out: out, stop: stop}
}

// line prompts and returns the next line; ok false at the end of input or once
// the run is being cancelled.
func (a *asker) line(prompt string) (string, bool) {
	fmt.Fprint(a.out, prompt)
	select {
	case l, ok := <-a.lines:
		return strings.TrimSpace(l), ok
	case <-a.stop:
		fmt.Fprintln(a.out)
		return "", false
	}
}

// yes asks a yes/no question until it gets an answer.
func (a *asker) yes(prompt string) (answer, ok bool) {
	for {
		l, ok := a.line(prompt + " [y/n] ")
		if !ok {
			return false, false
		}
		switch strings.ToLower(l) {
		case "y", "yes":
			return true, true
		case "n", "no":
			return false, true
		}
		fmt.Fprintln(a.out, "please answer y or n")
	}
}

// values asks for the value of each field: JSON for the types that are not
// text (int, float, bool, list, dict), else the text as typed.
func (a *asker) values(fields []run.UserInputField) (map[string]any, bool) {
	vals := make(map[string]any, len(fields))
	for _, f := range fields {
		prompt := f.Name
		if f.Description != "" {
			prompt += " (" + f.Description + ")"
		}
		l, ok := a.line(prompt + ": ")
		if !ok {
			return nil, false
		}
		var v any = l
		if f.FieldType != "" && f.FieldType != "str" {
			var parsed any
			if json.Unmarshal([]byte(l), &parsed) == nil {
				v = parsed
			}
		}
		vals[f.Name] = v
	}
	return vals, true
}

// decide asks for the decisions the pause event ev waits for; ok false when no
// answer could be read.
func (a *asker) decide(ev *run.Event) (client.Decisions, bool) {
	var d client.Decisions
	if ev.Detail == nil {
		return d, false
	}
	for _, s := range ev.Detail.StepRequirements {
		if s.RequiresExecutorInput {
			s.ExecutorRequirements = append([]run.Requirement(nil), s.ExecutorRequirements...)
			for j, r := range s.ExecutorRequirements {
				if r.ToolExecution == nil {
					continue
				}
				fmt.Fprintf(a.out, "step %s: agent %s waits:\n", s.StepName, s.ExecutorName)
				t, ok := a.tool(*r.ToolExecution)
				if !ok {
					return d, false
				}
				s.ExecutorRequirements[j].ToolExecution = &t
			}
			d.Steps = append(d.Steps, s)
			continue
		}
		if s.RequiresRouteSelection {
			how := "one of"
			if s.AllowMultipleSelections {
				how = "one or more, comma-separated, of"
			}
			l, ok := a.line(fmt.Sprintf("router %s: %s choose %s %s: ", s.StepName, s.UserInputMessage, how, strings.Join(s.AvailableChoices, ", ")))
			if !ok {
				return d, false
			}
			for _, c := range strings.Split(l, ",") {
				if c = strings.TrimSpace(c); c != "" {
					s.SelectedChoices = append(s.SelectedChoices, c)
				}
			}
			d.Steps = append(d.Steps, s)
			continue
		}
		if s.RequiresConfirmation {
			msg := cmpOr(s.ConfirmationMessage, "Run step "+s.StepName+"?")
			yes, ok := a.yes(fmt.Sprintf("step %s: %s", s.StepName, msg))
			if !ok {
				return d, false
			}
			s.Confirmed = &yes
			if !yes {
				d.Steps = append(d.Steps, s)
				continue
			}
		}
		if s.RequiresUserInput {
			if s.UserInputMessage != "" {
				fmt.Fprintf(a.out, "step %s: %s\n", s.StepName, s.UserInputMessage)
			}
			vals, ok := a.values(s.UserInputSchema)
			if !ok {
				return d, false
			}
			s.UserInput = vals
		}
		d.Steps = append(d.Steps, s)
	}
	for _, t := range ev.Detail.Tools {
		t, ok := a.tool(t)
		if !ok {
			return d, false
		}
		d.Tools = append(d.Tools, t)
	}
	return d, true
}

// tool asks for the decision on a tool call that waits for a person.
func (a *asker) tool(t run.ToolExecution) (run.ToolExecution, bool) {
	call := fmt.Sprintf("tool %s(%s)", t.ToolName, compact(string(t.ToolArgs), 200))
	switch {
	case t.RequiresConfirmation:
		yes, ok := a.yes(call + ": run it?")
		if !ok {
			return t, false
		}
		t.Confirmed = &yes
		if !yes {
			if t.ConfirmationNote, ok = a.line("why (the model reads it; empty for none): "); !ok {
				return t, false
			}
		}
	case t.ExternalExecutionRequired:
		r, ok := a.line(call + " runs outside kern: its result: ")
		if !ok {
			return t, false
		}
		t.Result = r
	case t.RequiresUserInput:
		fmt.Fprintln(a.out, call+" needs values:")
		vals, ok := a.values(t.UserInputSchema)
		if !ok {
			return t, false
		}
		t.UserInputSchema = append([]run.UserInputField(nil), t.UserInputSchema...)
		for i := range t.UserInputSchema {
			t.UserInputSchema[i].Value = vals[t.UserInputSchema[i].Name]
		}
	}
	return t, true
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
