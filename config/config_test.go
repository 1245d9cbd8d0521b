package config

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestLoadTestdata(t *testing.T) {
	t.Parallel()
	cfg, err := Load("testdata/kern.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, w := range cfg.Workflows {
		ids = append(ids, w.WorkflowID())
	}
	if got := strings.Join(ids, " "); got != "article polish" {
		t.Errorf("workflows = %s", got)
	}
	ids = ids[:0]
	for _, a := range cfg.Agents {
		ids = append(ids, a.AgentID()+"="+a.Name)
	}
	want := "researcher=Research Agent writer=Writing Agent reviewer=reviewer online=Online Agent local=local anthropic-agent=anthropic-agent"
	if got := strings.Join(ids, " "); got != want {
		t.Errorf("agents = %s, want %s", got, want)
	}
	r := cfg.Agents[0]
	if len(r.Tools) != 2 || r.MaxIterations != 5 || r.Tools[0].Definition().Name != "get_top_hackernews_stories" {
		t.Errorf("researcher: %d tools, max iterations %d", len(r.Tools), r.MaxIterations)
	}
	if cfg.Agents[3].History != 2 {
		t.Errorf("online agent history = %d, want 2", cfg.Agents[3].History)
	}
	w := cfg.Workflows[0]
	if w.Name != "Article Creation Workflow" || w.Description == "" || cfg.Workflows[1].Name != "polish" {
		t.Errorf("workflow names: %q (%q), %q", w.Name, w.Description, cfg.Workflows[1].Name)
	}
	var kinds []string
	for _, s := range workflow.Describe(w.Steps) {
		kinds = append(kinds, s.Name+":"+s.Kind)
	}
	if got := strings.Join(kinds, " "); got != "research:agent drafts:parallel if-long:condition refine:loop review:router" {
		t.Errorf("steps = %s", got)
	}
}

// names returns the names of results and of the results inside them, nested in
// brackets.
func names(results []run.StepResult) string {
	var parts []string
	for _, r := range results {
		s := r.StepName
		if len(r.Steps) > 0 {
			s += "[" + names(r.Steps) + "]"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestRunTestdata(t *testing.T) {
	t.Parallel()
	cfg, err := Load("testdata/kern.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		workflow int
		input    string
		want     string // step results
		content  string
	}{
		{0, "A dragon who learns to CODE",
			"research drafts[draft-a draft-b] if-long[expand] refine[edit] review[code-review]", "Looks good."},
		{0, "A dragon who learns to sing",
			"research drafts[draft-a draft-b] if-long[expand] refine[edit] review[style-review]", "Looks good."},
		{1, "A long enough input",
			"group[if-short three-times[review-again review-again review-again]]", "Looks good."},
	}
	for _, tt := range tests {
		w := cfg.Workflows[tt.workflow]
		out, err := w.Run(context.Background(), tt.input)
		if err != nil {
			t.Fatalf("%s: %v", w.Name, err)
		}
		if out.Status != run.StatusCompleted || out.Content != tt.content {
			t.Errorf("%s: %s %q", w.Name, out.Status, out.Content)
		}
		if got := names(out.StepResults); got != tt.want {
			t.Errorf("%s on %q: steps %s, want %s", w.Name, tt.input, got, tt.want)
		}
	}
}

// TestRunConditionFalse checks that a false condition passes the previous output on.
func TestRunConditionFalse(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("kern.yaml", []byte(`
models:
  m: {provider: scripted, text: short}
agents:
  a: {model: m}
workflows:
  w:
    steps:
      - {name: first, agent: a}
      - condition: {name: c, if: 'len(previous) > 100 || input == "go"', steps: [{name: skipped, agent: a}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	for input, want := range map[string]string{"stop": "first c", "go": "first c[skipped]"} {
		out, err := cfg.Workflows[0].Run(context.Background(), input)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(out.StepResults); got != want || out.Content != "short" {
			t.Errorf("input %q: steps %s, content %q; want %s", input, got, out.Content, want)
		}
	}
}

const base = `models:
  m: {provider: scripted, text: hi}
agents:
  a: {model: m}
`

func TestParseGood(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
	}{
		{"agents only", base},
		{"empty sections", base + "workflows: {}\n"},
		{"null sections", base + "workflows:\n"},
		{"anchors", base + "workflows:\n  w:\n    steps: &s\n      - {name: x, agent: a}\n  v:\n    steps: *s\n"},
		{"router without default", base + `workflows:
  w:
    steps:
      - router: {name: r, route: [{if: 'input == "x"', step: x}], choices: [{name: x, agent: a}]}
`},
		{"nested containers", base + `workflows:
  w:
    steps:
      - parallel:
          name: p
          steps:
            - loop: {name: l, max_iterations: 1, steps: [{name: x, agent: a}]}
            - steps: {name: s, description: group, steps: [{name: y, agent: a}]}
`},
		{"all model fields", `models:
  o: {provider: openai, id: gpt-5.2, base_url: "http://127.0.0.1:1/v1"}
  c: {provider: openai-chat, id: llama3.2, base_url: "http://127.0.0.1:1/v1"}
  an: {provider: anthropic, id: claude, base_url: "http://127.0.0.1:1"}
  s: {provider: scripted, id: demo, text: hi, delay: 5ms}
agents:
  a: {model: o, tools: [], history: 0, max_iterations: 0}
`},
	}
	for _, tt := range tests {
		if _, err := Parse("kern.yaml", []byte(tt.yaml)); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

func TestParseBad(t *testing.T) {
	t.Parallel()
	wf := base + "workflows:\n  w:\n    steps:\n" // the steps start on line 8
	tests := []struct {
		name string
		yaml string
		line int
		want string
	}{
		{"empty", "", 0, "empty"},
		// For an unclosed construct, yaml.v3 reports the line before the one it opens on.
		{"syntax", "models:\n  m: {provider: scripted\n", 1, "did not find expected"},
		{"tab", "models:\n\tm: {}\n", 2, "cannot start any token"},
		{"not a mapping", "- a\n", 1, "must be a mapping, not a list"},
		{"unknown top key", base + "workflow: {}\n", 5, `unknown key "workflow"`},
		{"nothing declared", "models: {}\n", 1, "no agents and no workflows"},
		{"duplicate agent", base + "  a: {model: m}\n", 5, `duplicate key "a" (first at line 4)`},
		{"unknown model key", "models:\n  m: {provider: scripted, txt: hi}\n" + base[len("models:\n  m: {provider: scripted, text: hi}\n"):], 2, `unknown key "txt"`},
		{"api key", "models:\n  m: {provider: openai, id: x, api_key: sk}\nagents:\n  a: {model: m}\n", 2, "environment"},
		{"unknown provider", "models:\n  m: {provider: openia, id: x}\nagents:\n  a: {model: m}\n", 2, `unknown provider "openia"`},
		{"missing provider", "models:\n  m: {id: x}\nagents:\n  a: {model: m}\n", 2, "missing provider"},
		{"missing id", "models:\n  m: {provider: openai}\nagents:\n  a: {model: m}\n", 2, "missing id"},
		{"text on openai", "models:\n  m: {provider: openai, id: x, text: hi}\nagents:\n  a: {model: m}\n", 2, "does not apply"},
		{"bad delay", "models:\n  m: {provider: scripted, delay: soon}\nagents:\n  a: {model: m}\n", 2, "not a duration"},
		{"unknown model ref", base + "  b: {model: nope}\n", 5, `unknown model "nope"`},
		{"missing model", base + "  b: {name: B}\n", 5, "missing model"},
		{"unknown tool", base + "  b: {model: m, tools: [hackernews, slack]}\n", 5, `unknown tool "slack" (known: hackernews)`},
		{"tool twice", base + "  b: {model: m, tools: [hackernews, hackernews]}\n", 5, "listed twice"},
		{"tools not a list", base + "  b: {model: m, tools: hackernews}\n", 5, "must be a list"},
		{"negative history", base + "  b: {model: m, history: -1}\n", 5, "must not be negative"},
		{"wrong type", base + "  b: {model: m, max_iterations: ten}\n", 5, "must be an integer, not a string"},
		{"name not a string", base + "  b: {model: m, name: [x]}\n", 5, "must be a string, not a list"},
		{"workflow without steps", base + "workflows:\n  w: {name: W}\n", 6, "missing steps"},
		{"empty steps", base + "workflows:\n  w: {steps: []}\n", 6, "non-empty list"},
		{"unknown agent", wf + "      - {name: x, agent: b}\n", 8, `unknown agent "b"`},
		{"no agent no container", wf + "      - {name: x}\n", 8, "neither an agent nor"},
		{"typo in container", wf + "      - paralel: {name: p, steps: []}\n", 8, `unknown key "paralel"`},
		{"step without name", wf + "      - {agent: a}\n", 8, "missing name"},
		{"duplicate step", wf + "      - {name: x, agent: a}\n      - parallel: {name: p, steps: [{name: x, agent: a}]}\n", 9, `duplicate step name "x" (first at line 8)`},
		{"same slug", wf + "      - {name: x y, agent: a}\n      - {name: x-y, agent: a}\n", 9, "same step id"},
		{"container with extra keys", wf + "      - parallel: {name: p, steps: [{name: x, agent: a}]}\n        name: q\n", 8, "the one key parallel"},
		{"container not a mapping", wf + "      - loop: [x]\n", 8, "must be a mapping"},
		{"loop without max", wf + "      - loop: {name: l, steps: [{name: x, agent: a}]}\n", 8, "missing max_iterations"},
		{"loop max zero", wf + "      - loop: {name: l, max_iterations: 0, steps: [{name: x, agent: a}]}\n", 8, "at least 1"},
		{"until uses input", wf + "      - loop:\n          name: l\n          max_iterations: 2\n          until: contains(input, \"x\")\n          steps: [{name: x, agent: a}]\n", 11, "not available here"},
		{"condition without if", wf + "      - condition: {name: c, steps: [{name: x, agent: a}]}\n", 8, "missing if"},
		{"bad expression", wf + "      - condition:\n          name: c\n          if: len(previous) > \"x\"\n          steps: [{name: x, agent: a}]\n", 10, "compares an integer with a string"},
		{"expression type", wf + "      - condition: {name: c, if: 3, steps: [{name: x, agent: a}]}\n", 8, "must be a string, not an integer"},
		{"route to unknown", wf + "      - router: {name: r, route: [{default: z}], choices: [{name: x, agent: a}]}\n", 8, `"z" is not one of its choices`},
		{"default not last", wf + "      - router:\n          name: r\n          route:\n            - {default: x}\n            - {if: 'true', step: x}\n          choices: [{name: x, agent: a}]\n", 11, "must be the last"},
		{"route entry incomplete", wf + "      - router:\n          name: r\n          route:\n            - {if: 'true'}\n          choices: [{name: x, agent: a}]\n", 11, "needs if and step"},
		{"router without choices", wf + "      - router: {name: r, route: [{default: x}]}\n", 8, "missing choices"},
		{"step not a mapping", wf + "      - research\n", 8, "a step must be a mapping, not a string"},
	}
	for _, tt := range tests {
		_, err := Parse("kern.yaml", []byte(tt.yaml))
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Errorf("%s: error %v, want Errors", tt.name, err)
			continue
		}
		first := es[0]
		if first.Line != tt.line || first.File != "kern.yaml" || !strings.Contains(first.Msg, tt.want) {
			t.Errorf("%s: %v\nwant line %d and %q", tt.name, err, tt.line, tt.want)
		}
	}
}

func TestParseManyErrors(t *testing.T) {
	t.Parallel()
	src := base + `workflows:
  w:
    steps:
      - {name: x, agent: nobody}
      - loop: {name: l, steps: [{name: y, agent: a}]}
      - condition: {name: c, if: 'len(input) >', steps: [{name: z, agent: a}]}
`
	_, err := Parse("kern.yaml", []byte(src))
	var es Errors
	if !errors.As(err, &es) {
		t.Fatal(err)
	}
	want := []string{
		`kern.yaml:8:26: step "x": unknown agent "nobody"`,
		`kern.yaml:9:15: loop "l": missing max_iterations`,
		`kern.yaml:10:47: condition "c" if: expression ends too soon: len(input) >`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	var one *Error
	if !errors.As(err, &one) || one.Line != 8 {
		t.Errorf("errors.As(*Error) = %v", one)
	}
}

func TestWithTools(t *testing.T) {
	t.Parallel()
	echo := tool.Func("echo", "Echo the text.", func(_ context.Context, args struct {
		Text string `json:"text"`
	}) (string, error) {
		return args.Text, nil
	})
	src := base + "  b: {model: m, tools: [echo, hackernews]}\n"
	cfg, err := Parse("kern.yaml", []byte(src), WithTools(Tools{"echo": func() []tool.Tool { return []tool.Tool{echo} }}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cfg.Agents[1].Tools); n != 3 {
		t.Errorf("agent b has %d tools, want 3", n)
	}
	if _, err := Parse("kern.yaml", []byte(src)); err == nil {
		t.Error("echo without WithTools: no error")
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load("testdata/nope.yaml")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v", err)
	}
}
