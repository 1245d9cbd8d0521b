package agent_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
)

func ExampleAgent_Run() {
	type cityArgs struct {
		City string `json:"city" jsonschema:"the city to look up"`
	}
	weather := tool.Func("get_weather", "Current weather in a city",
		func(ctx context.Context, a cityArgs) (string, error) { return "12°C and windy in " + a.City, nil })

	// The scripted model asks for the tool, then answers with a fixed text.
	m := &scripted.Model{Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{{Name: "get_weather", Arguments: json.RawMessage(`{"city":"Oslo"}`)}}},
		{Text: "Take a coat."},
	}}
	a := &agent.Agent{Name: "Weather Agent", Model: m, Tools: []tool.Tool{weather}}

	out, err := a.Run(context.Background(), "What should I wear in Oslo?")
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println(out.Status, out.Content)
	// Output: COMPLETED Take a coat.
}

func ExampleAgent_Stream() {
	a := &agent.Agent{Name: "Poet", Model: scripted.New("Roses are red")}
	for ev, err := range a.Stream(context.Background(), "A poem, please") {
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		switch ev.Event {
		case run.EventRunContent:
			fmt.Printf("%q\n", ev.Content)
		case run.EventRunCompleted:
			fmt.Println("done:", ev.Content)
		}
	}
	// Output:
	// "Roses "
	// "are "
	// "red"
	// done: Roses are red
}

// An agent handed to another as a tool runs as a child run: its events come in the
// caller's stream, with the caller's run as their parent.
func ExampleAsTool() {
	researcher := &agent.Agent{Name: "Researcher", Model: scripted.New("Dragons hoard gold.")}
	lead := &agent.Agent{
		Name:  "Lead",
		Tools: []tool.Tool{agent.AsTool(researcher, "Finds facts about a topic")},
		Model: &scripted.Model{Turns: []scripted.Turn{ // asks the researcher, then answers
			{ToolCalls: []model.ToolCall{{Name: "researcher", Arguments: json.RawMessage(`{"input":"dragons"}`)}}},
			{Text: "Dragons like gold."},
		}},
	}
	leadRun := run.NewID()
	for ev, err := range lead.Stream(context.Background(), "Tell me about dragons", run.WithID(leadRun)) {
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		switch {
		case ev.Event == run.EventToolCallCompleted:
			fmt.Printf("tool result: %q\n", ev.Tool.Result)
		case ev.Event == run.EventRunCompleted && ev.RunID != leadRun:
			fmt.Println("researcher's run completed; its parent is the lead's run:", ev.ParentRunID == leadRun)
		case ev.Event == run.EventRunCompleted:
			fmt.Println("lead:", ev.Content)
		}
	}
	// Output:
	// researcher's run completed; its parent is the lead's run: true
	// tool result: "Dragons hoard gold."
	// lead: Dragons like gold.
}
