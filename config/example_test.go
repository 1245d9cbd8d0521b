package config_test

import (
	"context"
	"fmt"

	"github.com/kern-dev/kern/config"
)

func ExampleParse() {
	cfg, err := config.Parse("kern.yaml", []byte(`
models:
  demo: {provider: scripted, text: "A dragon learned Go."}
agents:
  writer: {name: Writing Agent, model: demo, instructions: Write a story.}
workflows:
  story:
    name: Story Workflow
    steps:
      - {name: draft, agent: writer}
      - condition:
          name: if-short
          if: len(previous) < 100
          steps: [{name: expand, agent: writer}]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	out, err := cfg.Workflows[0].Run(context.Background(), "Write about a dragon.")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out.Content)
	// Output: A dragon learned Go.
}

func ExampleParse_errors() {
	_, err := config.Parse("kern.yaml", []byte(`
models:
  demo: {provider: scripted, text: hi}
agents:
  writer: {model: demo, tools: [slack]}
workflows:
  story:
    steps:
      - {name: draft, agent: editor}
      - loop: {name: again, steps: [{name: more, agent: writer}]}
`))
	fmt.Println(err)
	// Output:
	// kern.yaml:5:33: agent "writer": unknown tool "slack" (known: hackernews)
	// kern.yaml:9:30: step "draft": unknown agent "editor"
	// kern.yaml:10:15: loop "again": missing max_iterations
}
