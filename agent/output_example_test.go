package agent_test

import (
	"context"
	"fmt"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
)

func ExampleOutput() {
	type Review struct {
		Title string `json:"title"`
		Score int    `json:"score" jsonschema:"from 0 to 10"`
	}
	// The scripted model stands in for a provider asked for JSON of the schema.
	a := &agent.Agent{
		Name:   "Critic",
		Model:  scripted.New(`{"title": "Dune", "score": 9}`),
		Output: agent.Output[Review](),
	}
	out, err := a.Run(context.Background(), "Review Dune.")
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	r, err := agent.Decode[Review](out)
	fmt.Println(out.ContentType, out.Content)
	fmt.Println(r.Title, r.Score, err)
	// Output:
	// Review {"title":"Dune","score":9}
	// Dune 9 <nil>
}

func ExampleWithSettings() {
	a := &agent.Agent{
		Name:     "Writer",
		Model:    scripted.New("Once upon a time."),
		Settings: &model.Settings{Temperature: model.Float(0.2), MaxTokens: 400},
	}
	// This run is more creative; the agent's other settings stay.
	out, err := a.Run(context.Background(), "A story, please.", agent.WithSettings(model.Settings{Temperature: model.Float(1.1)}))
	fmt.Println(out.Content, err)

	// Settings out of range are refused before the run starts.
	_, err = a.Run(context.Background(), "Again.", agent.WithSettings(model.Settings{TopP: model.Float(3)}))
	fmt.Println(err)
	// Output:
	// Once upon a time. <nil>
	// agent "Writer": invalid model settings: top_p 3 is out of range [0, 1]: invalid definition
}

func ExampleOutputJSON() {
	// A schema written by hand (kern.yaml's output_schema is the same, in YAML).
	verdict := agent.OutputJSON("", []byte(`{
		"title": "Verdict", "type": "object", "additionalProperties": false,
		"properties": {"ok": {"type": "boolean"}, "reason": {"type": "string"}},
		"required": ["ok", "reason"]}`))
	a := &agent.Agent{Name: "Judge", Model: scripted.New(`{"ok": true, "reason": "clear"}`), Output: verdict}
	out, err := a.Run(context.Background(), "Is this clear?")
	fmt.Println(out.ContentType, out.Content, err)
	// Output: Verdict {"ok":true,"reason":"clear"} <nil>
}

func ExampleWithAttachments() {
	a := &agent.Agent{Name: "Eyes", Model: scripted.New("A cat on a mat.")}
	out, err := a.Run(context.Background(), "What is in this picture?",
		agent.WithAttachments(model.ImageURL("https://example.com/cat.jpg")))
	fmt.Println(out.Content, err)

	// An attachment no provider can send is refused before the run starts.
	_, err = a.Run(context.Background(), "And this one?", agent.WithAttachments(model.ImageData("", []byte{0x89})))
	fmt.Println(err)
	// Output:
	// A cat on a mat. <nil>
	// agent "Eyes": message 0: invalid model settings: attachment: data without a MIME type: invalid definition
}
