// Command workflow_cancel is kern's reference program: a two-step workflow (a research
// agent, then a writing agent) streamed in one goroutine and cancelled from another
// after a delay, keeping everything it produced until then.
//
// With OPENAI_API_KEY set, both agents run on OpenAI's Responses API and the research
// agent has the Hacker News tools; without it they run on the scripted model, which
// streams text written in advance, offline. The first line says which.
//
//	go run ./examples/workflow_cancel                     # cancel after 8 s
//	go run ./examples/workflow_cancel -cancel-after 2s    # cancel during research
//	go run ./examples/workflow_cancel -cancel-after 1m    # let it finish first
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/openai"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/tools/hackernews"
	"github.com/kern-dev/kern/workflow"
)

func main() {
	cancelAfter := flag.Duration("cancel-after", 8*time.Second, "cancel the run after this long")
	pace := flag.Duration("pace", 60*time.Millisecond, "scripted model: pause between streamed words")
	modelID := flag.String("model", "gpt-5.2", "OpenAI model, when OPENAI_API_KEY is set")
	message := flag.String("message", "Write a very long story about a dragon who learns to code.", "the workflow's input")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	models := scriptedModels(*pace)
	if os.Getenv("OPENAI_API_KEY") != "" {
		models = openAIModels(*modelID)
	}
	if err := runExample(ctx, os.Stdout, models, *message, *cancelAfter); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// models are what the two agents run on.
type models struct {
	label           string // the program's first line
	research, write model.Model
	researchTools   []tool.Tool
}

func openAIModels(id string) models {
	return models{
		label:         fmt.Sprintf("Model: OpenAI %s (Responses API; OPENAI_API_KEY is set), with Hacker News tools", id),
		research:      openai.NewResponses(id),
		write:         openai.NewResponses(id),
		researchTools: hackernews.New(),
	}
}

func scriptedModels(pace time.Duration) models {
	return models{
		label:    "Model: scripted (offline, pre-written text; no LLM is called; set OPENAI_API_KEY to use OpenAI)",
		research: &scripted.Model{Turns: []scripted.Turn{{Text: researchNotes}}, Delay: pace, Stall: 300 * time.Millisecond},
		write:    &scripted.Model{Turns: []scripted.Turn{{Text: story}}, Delay: pace, Stall: 300 * time.Millisecond},
	}
}

func runExample(ctx context.Context, w io.Writer, m models, message string, cancelAfter time.Duration) error {
	fmt.Fprintln(w, m.label)

	researcher := &agent.Agent{
		Name:         "Research Agent",
		Model:        m.research,
		Tools:        m.researchTools,
		Instructions: "Research the given topic and provide key facts and insights.",
	}
	writer := &agent.Agent{
		Name:         "Writing Agent",
		Model:        m.write,
		Instructions: "Write a comprehensive article based on the research provided.",
	}
	wf := &workflow.Workflow{
		Name:        "Article Creation Workflow",
		Description: "Automated article creation from research to writing",
		Steps: []workflow.Step{
			workflow.AgentStep("research", researcher, "Research the topic and gather information"),
			workflow.AgentStep("writing", writer, "Write an article based on the research"),
		},
	}

	runID := run.NewID()
	fmt.Fprintf(w, "Starting workflow run %s; it will be cancelled after %s\n\n", runID, cancelAfter)
	timer := time.AfterFunc(cancelAfter, func() {
		wf.CancelRun(context.Background(), runID) // from another goroutine, by id
	})
	defer timer.Stop()

	var content strings.Builder
	var last *run.Event
	for ev, err := range wf.Stream(ctx, message, run.WithID(runID)) {
		if err != nil {
			return err
		}
		last = ev
		switch ev.Event {
		case run.EventStepStarted:
			fmt.Fprintf(w, "\n--- step %q ---\n", ev.StepName)
			content.Reset() // the preview shows the running step's content
		case run.EventRunContent:
			fmt.Fprint(w, ev.Content)
			content.WriteString(ev.Content)
		case run.EventWorkflowCancelled:
			fmt.Fprintf(w, "\n\nWorkflow run was cancelled: %s\n", ev.RunID)
		case run.EventWorkflowError:
			fmt.Fprintf(w, "\n\nWorkflow run failed: %s\n", ev.Error)
		}
	}

	cancelled := last != nil && last.Event == run.EventWorkflowCancelled
	status := "completed"
	if cancelled {
		status = "cancelled"
	} else if last != nil && last.Event == run.EventWorkflowError {
		status = "error"
	}
	fmt.Fprintln(w, "\n"+strings.Repeat("=", 60))
	fmt.Fprintln(w, "RESULTS")
	fmt.Fprintln(w, strings.Repeat("=", 60))
	fmt.Fprintf(w, "Status: %s\n", status)
	fmt.Fprintf(w, "Run ID: %s\n", runID)
	fmt.Fprintf(w, "Was Cancelled: %t\n", cancelled)
	fmt.Fprintf(w, "Content Preview: %s\n", preview(content.String(), 200))
	if cancelled {
		fmt.Fprintln(w, "SUCCESS: Workflow run was successfully cancelled!")
	} else {
		fmt.Fprintln(w, "WARNING: Workflow run finished before it was cancelled")
	}
	return nil
}

func preview(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "..."
	}
	return s
}

const researchNotes = `Key facts: dragons in folklore hoard treasure and guard knowledge. ` +
	`Learning to code takes practice, patience and small programs that work. ` +
	`Good stories give the hero a goal, an obstacle and a change. `

const story = `Once upon a time, in a valley where the wind smelled of pine and old smoke, ` +
	`there lived a dragon named Ember who had guarded the same pile of gold for three hundred years. ` +
	`One winter a traveller left behind a battered laptop, and Ember, who had never met a puzzle she could not solve, ` +
	`pressed a key. A cursor blinked back at her. She pressed another. Nothing happened, and that was the beginning of everything. ` +
	`Her first program printed hello to a world that did not answer. Her second one crashed. ` +
	`Her claws were too large for the keys, so she learned to type with the tip of her tail, slowly, one careful letter at a time. ` +
	`She read about loops and learned that repeating yourself is fine if you know when to stop. ` +
	`She read about errors and learned that a failure you can see is a gift. ` +
	`She wrote a program to count her gold and discovered she had miscounted for two centuries. ` +
	`The villagers, who had feared her, began to bring her their broken machines, and she fixed them, ` +
	`and in return they taught her the names of the stars, which she put in a sorted list. ` +
	`By spring Ember had written a small language of her own, with fire as its only keyword, ` +
	`and the valley's children learned to code in it, warming their hands on the compiler. `
