package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/anthropic"
	"github.com/kern-dev/kern/model/openai"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/team"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/tools/mcp"
	"github.com/kern-dev/kern/workflow"
)

// loader builds a Config from a YAML document, collecting the problems it finds.
type loader struct {
	file   string
	tools  Tools
	errs   Errors
	models map[string]model.Model
	// modelSettings are the settings of each model entry, which its agents start from.
	modelSettings map[string]model.Settings
	agents        map[string]*agent.Agent
	agentNodes    map[string]*yaml.Node // where each agent's key is
	workflows     map[string]*workflow.Workflow
	// workflowAgents are the agents each workflow's steps run, and toolRefs the
	// agents' tools that are agents or workflows: linkTools resolves them once
	// every entry is built.
	workflowAgents map[string][]string
	toolRefs       []toolRef
	mcp            map[string]*mcp.Client // the MCP servers, by key
	teamsByKey     map[string]*team.Team
	// declared holds the keys of models and agents, built or not, so that a broken
	// entry is reported once, not again at each reference to it.
	declared map[string]bool
}

func (l *loader) errorf(n *yaml.Node, format string, args ...any) {
	e := &Error{File: l.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	l.errs = append(l.errs, e)
}

func (l *loader) sort() {
	slices.SortStableFunc(l.errs, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
}

func (l *loader) load(data []byte) *Config {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		l.yamlError(err)
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		l.errorf(nil, "the file is empty")
		return nil
	}
	root := doc.Content[0]
	f := l.fields(root, "the file", "models", "agents", "workflows", "mcp_servers", "teams")
	if f == nil {
		return nil
	}
	cfg := &Config{}
	l.declared = make(map[string]bool)
	l.models = make(map[string]model.Model)
	l.modelSettings = make(map[string]model.Settings)
	for _, e := range l.entries(f["models"], "models") {
		l.declared["models."+e.key] = true
		if m := l.model(e); m != nil {
			l.models[e.key] = m
		}
	}
	cfg.MCPServers = l.mcpServers(f["mcp_servers"])
	l.agents = make(map[string]*agent.Agent)
	l.agentNodes = make(map[string]*yaml.Node)
	l.workflows = make(map[string]*workflow.Workflow)
	l.workflowAgents = make(map[string][]string)
	for _, e := range l.entries(f["agents"], "agents") {
		l.declared["agents."+e.key] = true
		if a := l.agent(e); a != nil {
			l.agents[e.key] = a
			cfg.Agents = append(cfg.Agents, a)
		}
	}
	cfg.Teams = l.teams(f["teams"])
	for _, e := range l.entries(f["workflows"], "workflows") {
		l.declared["workflows."+e.key] = true
		if w := l.workflow(e); w != nil {
			l.workflows[e.key] = w
			cfg.Workflows = append(cfg.Workflows, w)
		}
	}
	l.linkTools()
	if f["agents"] == nil && f["workflows"] == nil && f["teams"] == nil {
		l.errorf(root, "the file declares no agents and no workflows")
	}
	return cfg
}

// yamlError records a syntax error of the YAML parser, which carries its line in its
// text ("yaml: line 3: ..."). For a construct left open, such as a flow mapping
// without its "}", that line is the one before the construct's first line.
func (l *loader) yamlError(err error) {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msg = strings.Join(te.Errors, "; ")
	}
	rest, ok := strings.CutPrefix(msg, "yaml: line ")
	if ok {
		num, text, _ := strings.Cut(rest, ": ")
		if n, err := strconv.Atoi(num); err == nil {
			l.errs = append(l.errs, &Error{File: l.file, Line: n, Msg: "YAML syntax: " + text})
			return
		}
	}
	l.errs = append(l.errs, &Error{File: l.file, Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")})
}

// entry is one key and value of a mapping.
type entry struct {
	key     string
	keyNode *yaml.Node
	val     *yaml.Node
}

// entries returns the entries of the mapping n (nil or null for none), in order,
// reporting duplicate keys.
func (l *loader) entries(n *yaml.Node, what string) []entry {
	n = resolve(n)
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		l.errorf(n, "%s must be a mapping, not %s", what, kind(n))
		return nil
	}
	var es []entry
	first := make(map[string]*yaml.Node)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			l.errorf(k, "a key in %s is not a name", what)
			continue
		}
		if prev, dup := first[k.Value]; dup {
			l.errorf(k, "%s: duplicate key %q (first at line %d)", what, k.Value, prev.Line)
			continue
		}
		first[k.Value] = k
		es = append(es, entry{key: k.Value, keyNode: k, val: v})
	}
	return es
}

// fields returns the values of the mapping n by key, reporting keys not among
// allowed; it returns nil if n is not a mapping.
func (l *loader) fields(n *yaml.Node, what string, allowed ...string) map[string]*yaml.Node {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		l.errorf(n, "%s must be a mapping, not %s", what, kind(n))
		return nil
	}
	f := make(map[string]*yaml.Node)
	for _, e := range l.entries(n, what) {
		if !slices.Contains(allowed, e.key) {
			l.errorf(e.keyNode, "%s: unknown key %q (want %s)", what, e.key, strings.Join(allowed, ", "))
			continue
		}
		f[e.key] = e.val
	}
	return f
}

// resolve follows an alias to its anchored node.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// kind names the YAML type of n for errors.
func kind(n *yaml.Node) string {
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case isNull(n):
		return "null"
	case n.Tag == "!!str":
		return "a string"
	case n.Tag == "!!int":
		return "an integer"
	case n.Tag == "!!bool":
		return "a boolean"
	case n.Tag == "!!float":
		return "a number"
	}
	return "a " + strings.TrimPrefix(n.Tag, "!!")
}

// str returns the string n holds.
func (l *loader) str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		l.errorf(n, "%s must be a string, not %s", what, kind(n))
		return "", false
	}
	return n.Value, true
}

// optStr returns the string n holds, or "" if n is nil.
func (l *loader) optStr(n *yaml.Node, what string) string {
	if n == nil {
		return ""
	}
	s, _ := l.str(n, what)
	return s
}

// optBool returns the boolean n holds, or def if n is nil.
func (l *loader) optBool(n *yaml.Node, what string, def bool) bool {
	if n == nil {
		return def
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		l.errorf(n, "%s must be true or false, not %s", what, kind(n))
		return def
	}
	return b
}

// count returns the integer n holds, which must not be negative; 0 if n is nil.
func (l *loader) count(n *yaml.Node, what string) int {
	if n == nil {
		return 0
	}
	var i int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
		l.errorf(n, "%s must be an integer, not %s", what, kind(n))
		return 0
	}
	if i < 0 {
		l.errorf(n, "%s must not be negative", what)
		return 0
	}
	return i
}

// required reports the keys missing from f, at the mapping n.
func (l *loader) required(n *yaml.Node, f map[string]*yaml.Node, what string, keys ...string) bool {
	ok := true
	for _, k := range keys {
		if f[k] == nil {
			l.errorf(n, "%s: missing %s", what, k)
			ok = false
		}
	}
	return ok
}

// model builds a model entry.
func (l *loader) model(e entry) model.Model {
	what := fmt.Sprintf("model %q", e.key)
	val := l.withoutAPIKey(e.val, what)
	f := l.fields(val, what, append([]string{"provider", "id", "base_url", "text", "delay", "turns", "price"}, settingKeys...)...)
	if f == nil || !l.required(val, f, what, "provider") {
		return nil
	}
	provider, ok := l.str(f["provider"], what+" provider")
	if !ok {
		return nil
	}
	settings := l.settings(f, what)
	l.modelSettings[e.key] = settings
	m := l.newModel(f, val, provider, what)
	if m != nil {
		l.checkModelSettings(val, m, settings, what)
	}
	if p := l.price(f["price"], what); p != nil && m != nil {
		m = model.WithPrice(m, *p)
	}
	return m
}

// newModel builds the model of a model entry of the provider.
func (l *loader) newModel(f map[string]*yaml.Node, val *yaml.Node, provider, what string) model.Model {
	id := l.optStr(f["id"], what+" id")
	baseURL := l.optStr(f["base_url"], what+" base_url")
	only := func(provider string, keys ...string) bool {
		ok := true
		for _, k := range keys {
			if f[k] != nil {
				l.errorf(f[k], "%s: %s does not apply to provider %s", what, k, provider)
				ok = false
			}
		}
		return ok
	}
	switch provider {
	case "openai", "openai-chat", "anthropic":
		if !only(provider, "text", "delay", "turns") || !l.required(val, f, what, "id") || id == "" {
			return nil
		}
	case "scripted":
		if !only(provider, "base_url") {
			return nil
		}
	default:
		l.errorf(f["provider"], "%s: unknown provider %q (want openai, openai-chat, anthropic or scripted)", what, provider)
		return nil
	}
	switch provider {
	case "openai", "openai-chat":
		var opts []openai.Option
		if baseURL != "" {
			opts = append(opts, openai.WithBaseURL(baseURL))
		}
		if provider == "openai" {
			return openai.NewResponses(id, opts...)
		}
		return openai.NewChat(id, opts...)
	case "anthropic":
		var opts []anthropic.Option
		if baseURL != "" {
			opts = append(opts, anthropic.WithBaseURL(baseURL))
		}
		return anthropic.New(id, opts...)
	}
	m := scripted.New(l.optStr(f["text"], what+" text"))
	m.ID = id
	if n := f["turns"]; n != nil {
		m.Turns = l.turns(resolve(n), what+" turns")
	}
	if n := f["delay"]; n != nil {
		s, ok := l.str(n, what+" delay")
		d, err := time.ParseDuration(s)
		if ok && (err != nil || d < 0) {
			l.errorf(n, "%s: delay %q is not a duration such as 20ms", what, s)
		}
		m.Delay = d
	}
	return m
}

// withoutAPIKey reports an api_key key of the mapping n and returns n without it.
func (l *loader) withoutAPIKey(n *yaml.Node, what string) *yaml.Node {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return n
	}
	c := *n
	c.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Value == "api_key" {
			l.errorf(k, "%s: api_key is never read from the file: set OPENAI_API_KEY or ANTHROPIC_API_KEY in the environment", what)
			continue
		}
		c.Content = append(c.Content, n.Content[i], n.Content[i+1])
	}
	return &c
}

// agent builds an agent entry.
func (l *loader) agent(e entry) *agent.Agent {
	what := fmt.Sprintf("agent %q", e.key)
	f := l.fields(e.val, what, "name", "model", "instructions", "tools", "history", "max_iterations", "settings", "output_schema", "budget")
	if f == nil || !l.required(e.val, f, what, "model") {
		return nil
	}
	a := &agent.Agent{
		ID:            e.key,
		Name:          l.optStr(f["name"], what+" name"),
		Instructions:  l.optStr(f["instructions"], what+" instructions"),
		History:       l.count(f["history"], what+" history"),
		MaxIterations: l.count(f["max_iterations"], what+" max_iterations"),
		Budget:        l.count(f["budget"], what+" budget"),
	}
	l.agentNodes[e.key] = e.keyNode
	if a.Name == "" {
		a.Name = e.key
	}
	var settings model.Settings
	if ref, ok := l.str(f["model"], what+" model"); ok {
		a.Model = l.models[ref]
		if a.Model == nil && !l.declared["models."+ref] {
			l.errorf(f["model"], "%s: unknown model %q", what, ref)
		}
		settings = l.modelSettings[ref]
	}
	if settings = settings.Merge(l.agentSettings(f["settings"], what)); !settings.IsZero() {
		a.Settings = &settings
	}
	a.Output = l.outputSchema(f["output_schema"], what)
	a.Tools, a.Toolsets = l.agentTools(e.key, f["tools"], what)
	if a.Model == nil {
		return nil
	}
	if err := a.Validate(); err != nil {
		l.errorf(e.keyNode, "%v", err)
		return nil
	}
	return a
}

// agentTools resolves an agent's tools list through the registry; the agents and
// workflows in it ({agent: id} or {workflow: id}) are given to the agent later (see
// linkTools).
func (l *loader) agentTools(owner string, n *yaml.Node, what string) ([]tool.Tool, []tool.Toolset) {
	n = resolve(n)
	if n == nil || isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		l.errorf(n, "%s tools must be a list of names, {agent: <id>} or {workflow: <id>}, not %s", what, kind(n))
		return nil, nil
	}
	var tools []tool.Tool
	var toolsets []tool.Toolset
	seen := make(map[string]bool)
	for _, item := range n.Content {
		m := resolve(item)
		switch {
		case m.Kind == yaml.MappingNode && !hasKey(m, "name"):
			l.toolRef(owner, m, what)
			continue
		case namesMCP(m):
			if ts := l.mcpTools(m, what); ts != nil {
				toolsets = append(toolsets, ts)
			}
			continue
		case m.Kind == yaml.MappingNode:
			tools = append(tools, l.namedTool(m, what, seen)...)
			continue
		}
		name, ok := l.str(resolve(item), what+" tool")
		if !ok {
			continue
		}
		fn := l.tools[name]
		switch {
		case fn == nil:
			l.unknownTool(item, what, name)
		case seen[name]:
			l.errorf(item, "%s: tool %q is listed twice", what, name)
		default:
			seen[name] = true
			tools = append(tools, fn()...)
		}
	}
	return tools, toolsets
}

// hasKey reports whether the mapping n has the key.
func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// unknownTool reports a tool name that names no tool, pointing at the MCP server
// of that name if there is one.
func (l *loader) unknownTool(n *yaml.Node, what, name string) {
	if l.mcp[name] != nil {
		l.errorf(n, "%s: unknown tool %q (the tools of the MCP server %q are named mcp:<server>: %s%s)", what, name, name, mcpPrefix, name)
		return
	}
	l.errorf(n, "%s: unknown tool %q (known: %s)", what, name, strings.Join(l.toolNames(), ", "))
}

func (l *loader) toolNames() []string {
	names := make([]string, 0, len(l.tools))
	for name := range l.tools {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// workflow builds a workflow entry.
func (l *loader) workflow(e entry) *workflow.Workflow {
	what := fmt.Sprintf("workflow %q", e.key)
	f := l.fields(e.val, what, "name", "description", "resumable", "steps", "timeout", "budget")
	if f == nil || !l.required(e.val, f, what, "steps") {
		return nil
	}
	w := &workflow.Workflow{
		ID:           e.key,
		Name:         l.optStr(f["name"], what+" name"),
		Description:  l.optStr(f["description"], what+" description"),
		NotResumable: !l.optBool(f["resumable"], what+" resumable", true),
		Timeout:      l.duration(f["timeout"], what+" timeout"),
		Budget:       l.count(f["budget"], what+" budget"),
	}
	if w.Name == "" {
		w.Name = e.key
	}
	before := len(l.errs)
	s := &steps{l: l, names: make(map[string]*yaml.Node)}
	w.Steps = s.list(f["steps"], what+" steps")
	l.workflowAgents[e.key] = s.agents
	if len(l.errs) > before {
		return nil
	}
	if err := w.Validate(); err != nil {
		l.errorf(e.keyNode, "%v", err)
		return nil
	}
	return w
}

// steps builds the steps of one workflow, whose step names must be unique.
type steps struct {
	l     *loader
	names map[string]*yaml.Node // step id → where its name is
	// agents are the keys of the agents the steps run.
	agents []string
}

// containers are the keys of container steps.
var containers = []string{"steps", "parallel", "condition", "loop", "router"}

// list builds a list of steps; it reports an empty one.
func (s *steps) list(n *yaml.Node, what string) []workflow.Step {
	n = resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		s.l.errorf(n, "%s must be a non-empty list of steps, not %s", what, kind(n))
		return nil
	}
	var out []workflow.Step
	for _, item := range n.Content {
		if st, _ := s.step(resolve(item)); st != nil {
			out = append(out, st)
		}
	}
	return out
}

// step builds one step and returns it with its name.
func (s *steps) step(n *yaml.Node) (workflow.Step, string) {
	if n.Kind != yaml.MappingNode {
		s.l.errorf(n, "a step must be a mapping, not %s", kind(n))
		return nil, ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(containers, k.Value) {
			continue
		}
		if len(n.Content) > 2 {
			s.l.errorf(n, "a %s step is a mapping with the one key %s; put name and the rest under it", k.Value, k.Value)
			return nil, ""
		}
		return s.container(k.Value, resolve(n.Content[i+1]))
	}
	return s.task(n)
}

// name reads a step's name and checks that it is unique in the workflow.
func (s *steps) name(f map[string]*yaml.Node, what string) string {
	name, ok := s.l.str(f["name"], what+" name")
	if !ok {
		return ""
	}
	if name == "" {
		s.l.errorf(f["name"], "%s name is empty", what)
		return ""
	}
	id := run.Slug(name)
	if prev := s.names[id]; prev != nil {
		if prev.Value == name {
			s.l.errorf(f["name"], "duplicate step name %q (first at line %d)", name, prev.Line)
		} else {
			s.l.errorf(f["name"], "step names %q and %q (line %d) give the same step id %q", name, prev.Value, prev.Line, id)
		}
		return ""
	}
	s.names[id] = f["name"]
	return name
}

func (s *steps) task(n *yaml.Node) (workflow.Step, string) {
	f := s.l.fields(n, "step", append([]string{"name", "agent", "team", "description", "timeout", "retry"}, stepPauseKeys...)...)
	switch {
	case f == nil:
		return nil, ""
	case f["agent"] != nil && f["team"] != nil:
		s.l.errorf(n, "a step runs an agent or a team, not both")
		return nil, ""
	case f["agent"] == nil && f["team"] == nil:
		s.l.errorf(n, "a step has neither an agent nor one of the keys %s", strings.Join(containers, ", "))
		return nil, ""
	case !s.l.required(n, f, "step", "name"):
		return nil, ""
	}
	name := s.name(f, "step")
	what := fmt.Sprintf("step %q", name)
	desc := s.l.optStr(f["description"], what+" description")
	var t *workflow.Task
	if f["team"] != nil {
		tm, _ := declaredRef(s.l, f["team"], name, "team", s.l.teamsByKey)
		if tm == nil {
			return nil, ""
		}
		t = team.Step(name, tm, desc)
	} else {
		a, ref := declaredRef(s.l, f["agent"], name, "agent", s.l.agents)
		if a == nil {
			return nil, ""
		}
		s.agents = append(s.agents, ref)
		t = workflow.AgentStep(name, a, desc)
	}
	t.Timeout = s.l.duration(f["timeout"], what+" timeout")
	t.Retry = s.l.retry(f["retry"], what)
	t.Pause = s.l.stepPause(f, what)
	return t, name
}

// declaredRef returns the entry of table that the key n of the step named step
// names (an agent's or a team's id) and that name, reporting a name that is not a
// string or names nothing declared (one declared but refused is reported where it
// is declared). A step whose name is refused ("") is not looked further into.
func declaredRef[T any](l *loader, n *yaml.Node, step, kind string, table map[string]*T) (*T, string) {
	what := fmt.Sprintf("step %q", step)
	ref, ok := l.str(n, what+" "+kind)
	if !ok || step == "" {
		return nil, ""
	}
	v := table[ref]
	if v == nil && !l.declared[kind+"s."+ref] {
		l.errorf(n, "%s: unknown %s %q", what, kind, ref)
	}
	return v, ref
}

// container builds a container step of the given kind from its mapping n.
func (s *steps) container(kind string, n *yaml.Node) (workflow.Step, string) {
	keys := map[string][]string{
		"steps":    {"name", "description", "steps", "timeout", "retry"},
		"parallel": {"name", "description", "steps", "timeout", "retry"},
		"condition": {"name", "description", "if", "steps", "else", "timeout", "retry",
			"requires_confirmation", "confirmation_message", "on_reject", "expiry", "on_expiry"},
		"loop":   {"name", "description", "max_iterations", "until", "steps", "timeout", "retry"},
		"router": {"name", "description", "route", "choices", "timeout", "retry", "requires_user_input", "user_input_message", "allow_multiple_selections"},
	}[kind]
	f := s.l.fields(n, kind, keys...)
	if f == nil {
		return nil, ""
	}
	req := []string{"name", "steps"}
	switch kind {
	case "condition":
		if n := f["requires_confirmation"]; n == nil || n.Value != "true" {
			req = append(req, "if") // else a person decides
		}
	case "loop":
		req = append(req, "max_iterations")
	case "router":
		req = []string{"name", "route", "choices"}
		if f["requires_user_input"] != nil {
			req = req[:1:1] // a person chooses the route
			req = append(req, "choices")
		}
	}
	what := kind
	if nn := f["name"]; nn != nil && nn.Kind == yaml.ScalarNode {
		what = fmt.Sprintf("%s %q", kind, nn.Value)
	}
	if !s.l.required(n, f, what, req...) {
		return nil, ""
	}
	name := s.name(f, kind)
	desc := s.l.optStr(f["description"], what+" description")
	policy := workflow.Policy{Timeout: s.l.duration(f["timeout"], what+" timeout"), Retry: s.l.retry(f["retry"], what)}
	if kind == "router" {
		return s.router(f, name, desc, what, policy)
	}
	children := s.list(f["steps"], what+" steps")
	var cond *expr
	if f["if"] != nil {
		cond = s.l.expr(f["if"], what+" if", "input", "previous", "state")
	}
	var until *expr
	if f["until"] != nil {
		until = s.l.expr(f["until"], what+" until", "previous")
	}
	max := s.l.count(f["max_iterations"], what+" max_iterations")
	if kind == "loop" && max == 0 && f["max_iterations"].Tag == "!!int" {
		s.l.errorf(f["max_iterations"], "%s max_iterations must be at least 1", what)
	}
	if name == "" || len(children) == 0 {
		return nil, ""
	}
	switch kind {
	case "steps":
		return &workflow.Steps{Name: name, Description: desc, Steps: children, Policy: policy}, name
	case "parallel":
		return &workflow.Parallel{Name: name, Description: desc, Steps: children, Policy: policy}, name
	case "condition":
		return s.condition(f, cond, &workflow.Condition{Name: name, Description: desc, Steps: children, Policy: policy}, what)
	}
	l := &workflow.Loop{Name: name, Description: desc, Steps: children, MaxIterations: max, Policy: policy}
	if until != nil {
		l.Until = until.onResults
	}
	return l, name
}

// condition completes a condition from its fields: its if (cond, nil for one a
// person confirms), its else steps and its pause.
func (s *steps) condition(f map[string]*yaml.Node, cond *expr, c *workflow.Condition, what string) (workflow.Step, string) {
	if cond != nil {
		c.If = cond.onInput
	}
	if f["else"] != nil {
		if c.Else = s.list(f["else"], what+" else"); len(c.Else) == 0 {
			return nil, ""
		}
	}
	c.Pause = s.l.conditionPause(f, what)
	if c.If == nil && c.Pause == nil {
		return nil, ""
	}
	return c, c.Name
}

// router builds a router from its fields.
func (s *steps) router(f map[string]*yaml.Node, name, desc, what string, policy workflow.Policy) (workflow.Step, string) {
	choices := make(map[string]workflow.Step)
	var list []workflow.Step
	cn := resolve(f["choices"])
	if cn.Kind != yaml.SequenceNode || len(cn.Content) == 0 {
		s.l.errorf(cn, "%s choices must be a non-empty list of steps, not %s", what, kind(cn))
	} else {
		for _, item := range cn.Content {
			st, n := s.step(resolve(item))
			if st != nil {
				choices[n] = st
				list = append(list, st)
			}
		}
	}
	ask := s.l.routeQuestion(f, what)
	if ask != nil && f["route"] == nil {
		if name == "" || len(list) == 0 || len(list) != len(cn.Content) {
			return nil, ""
		}
		return &workflow.Router{Name: name, Description: desc, Choices: list, Ask: ask, Policy: policy}, name
	}
	routes := s.routes(f["route"], what, choices)
	if name == "" || len(list) == 0 || len(list) != len(cn.Content) || routes == nil {
		return nil, ""
	}
	return &workflow.Router{Name: name, Description: desc, Choices: list, Route: routes.pick, Ask: ask, Policy: policy}, name
}

// route is one entry of a router's route: a condition (nil for the default) and
// the step it picks.
type route struct {
	cond *expr
	step workflow.Step
}

type routes []route

// pick returns the step of the first route whose condition holds, or none.
func (rs routes) pick(in *workflow.Input) []workflow.Step {
	for _, r := range rs {
		if r.cond == nil || r.cond.onInput(in) {
			return []workflow.Step{r.step}
		}
	}
	return nil
}

// routes builds a router's route list, its steps looked up among choices.
func (s *steps) routes(n *yaml.Node, what string, choices map[string]workflow.Step) routes {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		s.l.errorf(n, "%s route must be a non-empty list of {if, step} and {default}, not %s", what, kind(n))
		return nil
	}
	before := len(s.l.errs)
	rs := make(routes, 0, len(n.Content))
	for i, item := range n.Content {
		item = resolve(item)
		f := s.l.fields(item, what+" route", "if", "step", "default")
		if f == nil {
			continue
		}
		var r route
		target := f["step"]
		switch {
		case f["default"] != nil:
			if f["if"] != nil || f["step"] != nil {
				s.l.errorf(item, "%s route: a default entry has no if and no step", what)
				continue
			}
			if i != len(n.Content)-1 {
				s.l.errorf(item, "%s route: the default entry must be the last", what)
			}
			target = f["default"]
		case f["if"] == nil || f["step"] == nil:
			s.l.errorf(item, "%s route: an entry needs if and step, or default", what)
			continue
		default:
			r.cond = s.l.expr(f["if"], what+" route if", "input", "previous", "state")
		}
		ref, ok := s.l.str(target, what+" route step")
		if !ok {
			continue
		}
		if r.step = choices[ref]; r.step == nil {
			s.l.errorf(target, "%s route: %q is not one of its choices", what, ref)
		}
		rs = append(rs, r)
	}
	if len(s.l.errs) > before {
		return nil
	}
	return rs
}

// expr parses the expression n holds, reporting errors at their column in the file.
func (l *loader) expr(n *yaml.Node, what string, allowed ...string) *expr {
	src, ok := l.str(n, what)
	if !ok {
		return nil
	}
	x, err := parseExpr(src, allowed...)
	if err == nil {
		return x
	}
	var pe *exprError
	if !errors.As(err, &pe) {
		l.errorf(n, "%s: %v", what, err)
		return nil
	}
	e := &Error{File: l.file, Line: n.Line, Msg: fmt.Sprintf("%s: %s: %s", what, pe.msg, src)}
	switch n.Style {
	case 0, yaml.FlowStyle:
		e.Column = n.Column + pe.pos
	case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		if !strings.ContainsAny(src, "'\"\\\n") { // no escapes between the file and src
			e.Column = n.Column + 1 + pe.pos
		}
	}
	l.errs = append(l.errs, e)
	return nil
}

// onInput evaluates x for a Condition or a route.
func (x *expr) onInput(in *workflow.Input) bool {
	return x.eval(&vars{input: in.Input, previous: in.Previous, state: in.State})
}

// onResults evaluates x for a Loop's until, previous being the iteration's output.
func (x *expr) onResults(results []run.StepResult) bool {
	return x.eval(&vars{previous: iterationOutput(results)})
}

// iterationOutput is what an iteration of a loop produced: the content of its last
// step, or of the step before it when the last produced none and did not complete.
func iterationOutput(results []run.StepResult) string {
	for i := len(results) - 1; i >= 0; i-- {
		if res := results[i]; res.Content != "" || res.Status == run.StatusCompleted {
			return res.Content
		}
	}
	return ""
}
