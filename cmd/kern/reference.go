package main

import (
	"fmt"
	"os"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/openai"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/tools/hackernews"
	"github.com/kern-dev/kern/workflow"
)

// Defaults of the reference workflow's models.
const (
	defaultOpenAIModel  = "gpt-5.2"
	defaultScriptedPace = 60 * time.Millisecond
)

// referenceModels are what the reference workflow's agents run on.
type referenceModels struct {
	label           string // for the start-up log: which model, and why
	research, write model.Model
	researchTools   []tool.Tool
}

// chooseModels picks OpenAI's Responses API with model id openAIModel when
// OPENAI_API_KEY is set, and the scripted model streaming a word every pace
// otherwise.
func chooseModels(openAIModel string, pace time.Duration) referenceModels {
	if os.Getenv("OPENAI_API_KEY") != "" {
		return referenceModels{
			label:         fmt.Sprintf("OpenAI %s (Responses API; OPENAI_API_KEY is set), with Hacker News tools", openAIModel),
			research:      openai.NewResponses(openAIModel),
			write:         openai.NewResponses(openAIModel),
			researchTools: hackernews.New(),
		}
	}
	stall := min(300*time.Millisecond, 5*pace)
	// Offline, the researcher calls its Hacker News tool as the real model would,
	// against a stand-in whose made-up stories say so in their titles.
	research := []scripted.Turn{
		{ToolCalls: []model.ToolCall{{Name: "get_top_hackernews_stories", Arguments: []byte(`{"num_stories":3}`)}}},
		{Text: researchNotes},
	}
	return referenceModels{
		label: "scripted (offline, pre-written text; no LLM is called; Hacker News tools on a stand-in with made-up " +
			"\"[stand-in]\" stories; set OPENAI_API_KEY to use OpenAI)",
		research:      &scripted.Model{Turns: research, Delay: pace, Stall: stall},
		write:         &scripted.Model{Turns: []scripted.Turn{{Text: story}}, Delay: pace, Stall: stall},
		researchTools: hackernews.Tools(hackernews.StandIn()),
	}
}

// referenceWorkflow builds DESIGN.md's "Article Creation Workflow": a research agent
// with the Hacker News tools, then a writing agent.
func referenceWorkflow(m referenceModels) *workflow.Workflow {
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
	return &workflow.Workflow{
		Name:        "Article Creation Workflow",
		Description: "Automated article creation from research to writing",
		Steps: []workflow.Step{
			workflow.AgentStep("research", researcher, "Research the topic and gather information"),
			workflow.AgentStep("writing", writer, "Write an article based on the research"),
		},
	}
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
	`and the valley's children learned to code in it, warming their hands on the compiler. ` +
	`Years later, when travellers asked what the dragon of the valley guarded, the children laughed. ` +
	`Not gold, they said. Tests. She guards the tests, and nobody merges anything until they pass. `
