// Package config builds workflows and agents from a kern.yaml file, so that kern can
// serve them without Go code.
//
// A file declares models, agents that use them, and workflows whose steps run the
// agents. Every section is a mapping from a key, which other entries use to refer to
// the entry and which becomes its ID, to the entry:
//
//	models:
//	  fast:   {provider: openai, id: gpt-5.2}                 # OpenAI Responses API
//	  local:  {provider: openai-chat, id: llama3.2, base_url: "http://localhost:11434/v1"}
//	  claude: {provider: anthropic, id: claude-sonnet-4-5}
//	  demo:   {provider: scripted, text: "Dragons can code.", delay: 20ms}
//	  tooled:                                # scripted turns: a tool call, then an answer
//	    provider: scripted
//	    turns: [{tool_calls: [{name: get_top_hackernews_stories, arguments: {num_stories: 3}}]}, {text: Done.}]
//	  priced: {provider: openai, id: gpt-5.2, price: {input: 1.25, output: 10, cache_read: 0.125}}
//
//	agents:
//	  researcher:
//	    name: Research Agent                 # default: the key
//	    model: fast                          # required: a key of models
//	    instructions: Research the given topic and provide key facts and insights.
//	    tools: [hackernews]                  # names from the tool registry; or, for a person's
//	                                         # decision first: {name: hackernews, requires_confirmation: true},
//	                                         # requires_user_input: [field, ...], external_execution: true;
//	                                         # expiry: 10m, on_expiry: cancel | reject (when no one decides)
//	    history: 0                           # earlier session runs in the context
//	    max_iterations: 10                   # model requests per run (0: the default)
//	  writer: {name: Writing Agent, model: fast, instructions: Write an article.}
//	  coder:  {model: local, instructions: Review the code in the article.}
//
//	workflows:
//	  article:
//	    name: Article Creation Workflow      # default: the key
//	    description: Automated article creation from research to writing
//	    resumable: true                      # false: never resumed after a crash (see below)
//	    steps:
//	      - {name: research, agent: researcher, description: Gather information}
//	      - {name: review, agent: writer, requires_confirmation: true, on_reject: skip}  # waits for a person
//	      # (on_reject: skip or cancel; requires_user_input: [field, ...] gives the step a person's values)
//	      - parallel:                        # runs its steps at once
//	          name: drafts
//	          steps:
//	            - {name: draft-a, agent: writer}
//	            - {name: draft-b, agent: writer}
//	      - condition:                       # runs its steps only if `if` holds, else its else steps
//	          name: if-long
//	          if: len(previous) > 100
//	          steps: [{name: shorten, agent: writer}]
//	          else: [{name: expand, agent: writer}]   # optional
//	          # requires_confirmation: true (a top-level condition; `if` then optional) has a person
//	          # confirm it first; on_reject: else (the default: run the else steps), skip or cancel
//	      - loop:                            # at most max_iterations times, until `until` holds
//	          name: refine
//	          max_iterations: 3
//	          until: contains(previous, "DONE")
//	          steps: [{name: edit, agent: writer}]
//	      - router:                          # runs the first choice whose `if` holds
//	          name: review
//	          route:
//	            - {if: 'contains(lower(input), "code")', step: code-review}
//	            - {default: style-review}
//	          choices:
//	            - {name: code-review, agent: coder}
//	            - {name: style-review, agent: writer}
//	      - steps:                           # a named group of steps, run in order
//	          name: finish
//	          steps: [{name: polish, agent: writer}]
//
// A step is either an agent step (name, agent, description) or a mapping with exactly
// one of the keys steps, parallel, condition, loop and router. Step names must be
// unique within a workflow. A router's route is a list of {if, step} entries tried in
// order, with at most one {default: step} at the end; each step names one of its
// choices, and when nothing matches the router runs no step.
//
// A workflow run that a kern process which died left behind is resumed by another
// process after its last completed top-level step: the step that was running when
// the process died runs again from its start. A workflow whose steps must not run
// twice sets resumable: false (default true), and such a run ends ERROR
// "interrupted" instead (see workflow.Workflow's NotResumable).
//
// Model providers are openai (the Responses API), openai-chat (Chat Completions, for
// Ollama, vLLM, llama.cpp and other servers; base_url sets the server), anthropic, and
// scripted, an offline model that answers every request with text, pausing delay (a
// Go duration such as 20ms) between words. openai, openai-chat and anthropic need an
// id and take an optional base_url. API keys are never read from the file: the
// providers read them from the environment (OPENAI_API_KEY, ANTHROPIC_API_KEY).
//
// A model entry may also set model settings, which its agents start from:
// temperature, top_p, max_tokens, stop (a string or a list), seed,
// reasoning_effort (none, minimal, low, medium, high, xhigh), parallel_tool_calls,
// tool_choice (auto, none, required, or a tool's name) and extra (provider-specific
// fields sent as they are). An agent's settings mapping takes the same keys and
// overrides the model's. Settings out of range, or that the provider refuses (a
// seed on anthropic, stop on openai), are errors of the file.
//
//	models:
//	  careful: {provider: openai, id: gpt-5.2, temperature: 0.2, reasoning_effort: low}
//	agents:
//	  judge:
//	    model: careful
//	    settings: {max_tokens: 500, tool_choice: none}
//	    output_schema:                       # the answer is a JSON object of this schema
//	      title: Verdict
//	      type: object
//	      properties: {ok: {type: boolean}, reason: {type: string}}
//	      required: [ok, reason]
//	      additionalProperties: false
//
// An agent's output_schema is a JSON Schema, written in YAML, of the object it must
// answer with (see agent.OutputSchema): its runs' content is then that JSON object.
//
// Policies and limits. A model entry's price ({input, output, cache_read,
// cache_write}, per million tokens) gives its agents' runs a cost in their metrics.
// An agent's or a workflow's budget bounds the tokens of one run (a workflow's: all
// its steps together); a run over it ends ERROR. A workflow's timeout (a duration
// such as 2m) bounds a run; a step's timeout bounds each attempt of the step, and
// its retry runs it again after a failure: attempts (in all, at least 1), backoff
// (the first wait), max_backoff, multiplier (of each wait, 2 if unset) and on, the
// failures retried: timeout, error (any other), or both (the default). A container
// (steps, parallel, condition, loop, router) takes a timeout and a retry as well,
// which apply to the container as a whole (see workflow.Policy). An agent's
// tools may name other agents and workflows, which it then calls as tools (with an
// optional timeout and retry of each call, as a step's); an agent must not end up
// calling itself.
//
//	agents:
//	  lead:
//	    model: fast
//	    budget: 200000                       # tokens per run
//	    tools:
//	      - hackernews
//	      - {agent: researcher, description: Researches a topic}
//	      - {workflow: article, description: Writes an article on a topic}
//	workflows:
//	  article:
//	    timeout: 10m
//	    steps:
//	      - name: research
//	        agent: researcher
//	        timeout: 2m
//	        retry: {attempts: 3, backoff: 1s, max_backoff: 30s, on: [timeout, error]}
//
// Teams. teams declares teams (see package team): a leader model (a key of
// models), instructions, members (keys of agents, or of teams declared before it)
// and a mode: coordinate (the default: the leader gives members tasks and answers
// from their results), route (one member's answer is the team's) or broadcast
// (every member works on the task at once). A workflow step runs a team as
// {name, team: <id>}.
//
//	teams:
//	  newsroom:
//	    name: Newsroom
//	    model: fast
//	    instructions: Produce a well-researched article.
//	    members: [researcher, writer]
//	    mode: coordinate
//	workflows:
//	  paper:
//	    steps: [{name: desk, team: newsroom}]
//
// MCP servers. mcp_servers declares Model Context Protocol servers whose tools
// agents use: a command kern starts (command, args, env; the protocol on its
// standard input and output, its standard error on kern's) or a streamable HTTP
// endpoint (url, headers). Values of env and headers may name environment variables
// as ${NAME}, so that secrets stay out of the file. An agent's tools name a server
// as mcp:<server> (all its tools, as the server lists them before each model
// request) or {name: mcp:<server>, include: [tool, ...]} (those only). kern connects
// on first use and reconnects after a drop; Config.Close ends the connections.
//
//	mcp_servers:
//	  files:  {command: npx, args: [-y, "@modelcontextprotocol/server-filesystem", /srv/docs]}
//	  github: {url: "https://api.githubcopilot.com/mcp/", headers: {Authorization: "Bearer ${GITHUB_TOKEN}"}}
//	agents:
//	  librarian:
//	    model: fast
//	    tools: ["mcp:files", {name: "mcp:github", include: [search_issues]}]
//
// Conditions, until and route entries are expressions in a small language, checked
// when the file is loaded:
//
//   - values: strings ("..." or '...', with \" \' \\ \n \t escapes), integers, true,
//     false, and the variables input (the workflow's input), previous (the previous
//     step's output; in until, the output of the loop's iteration) and state.<key>
//     (a session state value as a string, "" when missing; not in until);
//   - functions: contains(s, sub), len(s) (in characters), lower(s);
//   - operators: == and != on values of one type, < <= > >= on integers, !, && and ||
//     (in that order of precedence, comparisons above &&), and parentheses.
//
// An expression must be a boolean; there is nothing else, so evaluating one cannot
// fail. Every problem found in a file is reported with its line (and column where it
// helps); see Errors.
package config

import (
	"fmt"
	"os"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/team"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/tools/hackernews"
	"github.com/kern-dev/kern/tools/mcp"
	"github.com/kern-dev/kern/workflow"
)

// Config is what a configuration file declares, in the file's order.
type Config struct {
	Workflows []*workflow.Workflow
	// Agents are every agent the file declares, whether a workflow uses it or not.
	Agents []*agent.Agent
	// Teams are every team the file declares.
	Teams []*team.Team
	// MCPServers are the clients of the file's mcp_servers, which its agents share;
	// Close ends them.
	MCPServers []*mcp.Client
}

// Tools maps the names an agent's tools list may use to the function that makes the
// tools a name stands for. Each agent that names a tool gets tools of its own.
type Tools map[string]func() []tool.Tool

// HackerNewsURLEnv names the environment variable that points the hackernews tools
// at a stand-in for the Hacker News API (offline demos and tests); unset, they read
// the real one.
const HackerNewsURLEnv = "KERN_HACKERNEWS_URL"

// BuiltinTools returns the tools every configuration can name: hackernews (the Hacker
// News tools of package hackernews).
func BuiltinTools() Tools {
	return Tools{"hackernews": func() []tool.Tool {
		// A stand-in for the Hacker News API (offline demos and tests), when set.
		return hackernews.Tools(&hackernews.Client{BaseURL: os.Getenv(HackerNewsURLEnv)})
	}}
}

// Option changes how a file is loaded.
type Option func(*options)

type options struct {
	tools Tools
}

// WithTools adds the tools of t to the registry a configuration's agents name tools
// from; a name of t replaces a built-in one.
func WithTools(t Tools) Option {
	return func(o *options) {
		for name, fn := range t {
			o.tools[name] = fn
		}
	}
}

// Load reads the configuration file at path and builds its workflows and agents. A
// file that is not valid returns Errors, each naming the file and a line.
func Load(path string, opts ...Option) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, opts...)
}

// Parse builds the workflows and agents of a configuration file's contents; name is
// the file's name in errors.
func Parse(name string, data []byte, opts ...Option) (*Config, error) {
	o := options{tools: BuiltinTools()}
	for _, opt := range opts {
		opt(&o)
	}
	l := &loader{file: name, tools: o.tools}
	cfg := l.load(data)
	if len(l.errs) > 0 {
		l.sort()
		return nil, l.errs
	}
	return cfg, nil
}
