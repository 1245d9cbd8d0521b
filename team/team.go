// Package team runs teams: a leader model that hands tasks to member agents (or
// teams) and answers with what they did, with Agno's modes and wire names.
//
// A team's run streams TeamRunStarted, the leader's TeamModelRequest*,
// TeamRunContent and TeamToolCall* events, and one terminal TeamRunCompleted,
// TeamRunCancelled or TeamRunError. Each task a member is given is a child run: an
// agent (or team) run with its own run id, the team's run as its parent_run_id, its
// events nested in the team's stream and numbered by it. A cancel of the team's run
// cancels its context, so every member run stops at once, those running in parallel
// and those waiting on a tool or an MCP call included; each ends with its one
// terminal event, and the team's output keeps what the members produced
// (MemberResponses).
package team

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

// Mode is how a team's leader works with its members (Agno's TeamMode).
type Mode string

// The modes.
const (
	// ModeCoordinate (the default): the leader picks members, writes each a task
	// (delegate_task_to_member), and answers from what they return.
	ModeCoordinate Mode = "coordinate"
	// ModeRoute: the leader hands the task to one member, whose answer is the
	// team's, as it is.
	ModeRoute Mode = "route"
	// ModeBroadcast: the leader gives one task to every member at once
	// (delegate_task_to_members) and answers from all their answers.
	ModeBroadcast Mode = "broadcast"
)

// DefaultMaxIterations bounds the leader's model requests in a run when
// MaxIterations is 0.
const DefaultMaxIterations = 10

// ErrMaxIterations is the error of a run whose leader kept calling tools past the
// team's MaxIterations.
var ErrMaxIterations = errors.New("team: leader's model requests exceeded the iteration bound")

// Member is what a team hands tasks to: an agent (Agent) or another team.
type Member interface {
	// MemberID is the id the leader names the member by.
	MemberID() string
	// MemberName is the member's name, which the leader is told with its role.
	MemberName() string
	runMember(ctx context.Context, sc *engine.Scope, task string, opts ...run.Option) (*run.Output, error)
	// validate reports what keeps the member from running; within lists the
	// teams being validated, which a member must not be (a cycle).
	validate(within []*Team) error
}

// Agent returns a as a member of a team; role tells the leader what it is for ("" for
// none).
func Agent(a *agent.Agent, role string) Member { return &agentMember{a: a, role: role} }

type agentMember struct {
	a    *agent.Agent
	role string
}

// AgentOf returns the agent of a member made with Agent, or nil for a team.
func AgentOf(m Member) *agent.Agent {
	if am, ok := m.(*agentMember); ok {
		return am.a
	}
	return nil
}

func (m *agentMember) MemberID() string       { return m.a.AgentID() }
func (m *agentMember) MemberName() string     { return m.a.Name }
func (m *agentMember) validate([]*Team) error { return m.a.Validate() }
func (m *agentMember) runMember(ctx context.Context, sc *engine.Scope, task string, opts ...run.Option) (*run.Output, error) {
	return m.a.RunNested(ctx, sc, task, opts...)
}

// Team is a leader model and its members. Build it as a struct literal; a Team may
// run many times at once.
type Team struct {
	// ID identifies the team in events and routes; it defaults to a slug of Name.
	ID   string
	Name string
	// Role tells a team this one is a member of what it is for.
	Role string
	// Model is the leader's.
	Model        model.Model
	Instructions string
	Members      []Member
	// Mode is how the leader works with the members (ModeCoordinate if empty).
	Mode Mode
	// MaxIterations bounds the leader's model requests in a run
	// (DefaultMaxIterations if 0).
	MaxIterations int
	// Registry is where the team's runs (and its members' runs) can be cancelled;
	// nil means a registry of the team's own.
	Registry *run.Registry
	// Recorder persists the team's runs; nil keeps them in memory only.
	Recorder run.Recorder

	once sync.Once
	reg  *run.Registry
}

// TeamID returns the team's ID: ID, or a slug of Name.
func (t *Team) TeamID() string {
	if t.ID != "" {
		return t.ID
	}
	return run.Slug(t.Name)
}

// MemberID returns the team's ID, as a member of another team.
func (t *Team) MemberID() string { return t.TeamID() }

// MemberName returns the team's name.
func (t *Team) MemberName() string { return t.Name }

func (t *Team) validate(within []*Team) error { return t.check(within) }

func (t *Team) runMember(ctx context.Context, sc *engine.Scope, task string, opts ...run.Option) (*run.Output, error) {
	return t.RunNested(ctx, sc, task, opts...)
}

func (t *Team) registry() *run.Registry {
	if t.Registry != nil {
		return t.Registry
	}
	t.once.Do(func() { t.reg = new(run.Registry) })
	return t.reg
}

// Validate reports what makes the team unable to run: no model, no members, an
// unknown mode, a member that cannot run, two members of one id, a team that is a
// member of itself (directly or through its member teams).
func (t *Team) Validate() error { return t.check(nil) }

func (t *Team) check(within []*Team) error {
	if t == nil {
		return fmt.Errorf("team is nil: %w", run.ErrInvalid)
	}
	if slices.Contains(within, t) {
		return fmt.Errorf("team %q is a member of itself: %w", t.Name, run.ErrInvalid)
	}
	within = append(within, t)
	name := t.Name
	if name == "" {
		name = t.ID
	}
	switch {
	case t.Model == nil:
		return fmt.Errorf("team %q: no model: %w", name, run.ErrInvalid)
	case len(t.Members) == 0:
		return fmt.Errorf("team %q: no members: %w", name, run.ErrInvalid)
	case t.MaxIterations < 0:
		return fmt.Errorf("team %q: negative MaxIterations: %w", name, run.ErrInvalid)
	}
	switch t.Mode {
	case "", ModeCoordinate, ModeRoute, ModeBroadcast:
	default:
		return fmt.Errorf("team %q: unknown mode %q (coordinate, route or broadcast): %w", name, t.Mode, run.ErrInvalid)
	}
	seen := make(map[string]bool)
	for i, m := range t.Members {
		if m == nil {
			return fmt.Errorf("team %q: member %d is nil: %w", name, i, run.ErrInvalid)
		}
		if err := m.validate(within); err != nil {
			return fmt.Errorf("team %q: member %q: %w", name, m.MemberID(), err)
		}
		if seen[m.MemberID()] {
			return fmt.Errorf("team %q: two members with id %q: %w", name, m.MemberID(), run.ErrInvalid)
		}
		seen[m.MemberID()] = true
	}
	return nil
}

// Run runs the team on input and returns its output once it has ended; the error is
// nil when it completed and matches run.ErrCancelled when it was cancelled.
func (t *Team) Run(ctx context.Context, input string, opts ...run.Option) (*run.Output, error) {
	return engine.Result(t.Start(ctx, input, opts...))
}

// Stream runs the team on input and yields its events (its members' included) as
// they happen, ending with its one terminal event. Breaking out of the loop cancels
// the run.
func (t *Team) Stream(ctx context.Context, input string, opts ...run.Option) iter.Seq2[*run.Event, error] {
	return func(yield func(*run.Event, error) bool) {
		x, err := t.Start(ctx, input, opts...)
		engine.Events(x, err, yield)
	}
}

// Start starts a run in the background and returns at once.
func (t *Team) Start(ctx context.Context, input string, opts ...run.Option) (*run.Exec, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	c := engine.Component{Kind: run.KindTeam, ID: t.TeamID(), Name: t.Name, Registry: t.registry(), Recorder: t.Recorder}
	return engine.Start(ctx, c, input, opts, func(o run.Options, base *run.Event, out *run.Output) (func(engine.Run) error, error) {
		if o.Resume != nil && o.Resume.NextEvent < 0 {
			return nil, fmt.Errorf("team %q: cannot resume at event index %d: %w", t.Name, o.Resume.NextEvent, run.ErrInvalid)
		}
		var paused *run.Resume
		if o.Resume != nil && o.Resume.Paused != nil {
			paused = o.Resume
		}
		return func(r engine.Run) error {
			return t.execute(r.Ctx(), t.registry(), &engine.Gate{Log: r.Log}, base, out, input, true, paused)
		}, nil
	})
}

// RunNested runs the team inside another run (a workflow step, a team it is a
// member of), as agent.Agent.RunNested does.
func (t *Team) RunNested(ctx context.Context, sc *engine.Scope, input string, opts ...run.Option) (*run.Output, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	o := run.Apply(opts)
	origin := sc.Origin
	origin.AgentID, origin.AgentName = "", ""
	origin.TeamID, origin.TeamName = t.TeamID(), t.Name
	if o.SessionID != "" {
		origin.SessionID = o.SessionID
	}
	if o.ParentRunID != "" {
		origin.ParentRunID = o.ParentRunID
	}
	base := &run.Event{RunID: o.ID, Origin: &origin}
	out := &run.Output{RunID: o.ID, SessionID: origin.SessionID, UserID: origin.UserID, ParentRunID: origin.ParentRunID,
		TeamID: t.TeamID(), TeamName: t.Name, Status: run.StatusRunning, Input: input, CreatedAt: time.Now().Unix()}
	reg := sc.Registry
	if reg == nil {
		reg = t.registry()
	}
	gate := &engine.Gate{Log: sc.Log}
	// A team in a top-level workflow step may pause with its member: the
	// workflow pauses, and continues the team from its pause.
	spec := engine.Spec{Registry: reg, Base: base, Kind: run.KindTeam, Output: out, Pausable: sc.Pausable}
	var paused *run.Resume
	if o.Resume != nil && o.Resume.Paused != nil {
		paused = o.Resume
	}
	return engine.Nested(ctx, spec, sc.Log, gate.Stop, func(ctx context.Context) error {
		return t.execute(ctx, reg, gate, base, out, input, sc.Pausable, paused)
	})
}

// CancelRun cancels the team's run with the given ID, and with it every member run,
// and waits until it has ended (or ctx is done).
func (t *Team) CancelRun(ctx context.Context, runID string) (run.Status, error) {
	return t.registry().Cancel(ctx, runID, run.ReasonRequested)
}

// leaderTools returns the definitions of the leader's tools in t's mode.
func (t *Team) leaderTools() []tool.Definition {
	if t.Mode == ModeBroadcast {
		return []tool.Definition{{Name: toolDelegateAll, Description: "Give one task to every member of the team at once, " +
			"and get back all their answers. Describe the task and the expected output clearly.",
			Parameters: json.RawMessage(`{"type":"object","properties":{"task":{"type":"string","description":"the task, with everything needed to do it"}},"required":["task"],"additionalProperties":false}`)}}
	}
	ids := make([]string, len(t.Members))
	for i, m := range t.Members {
		ids[i] = m.MemberID()
	}
	enum, _ := json.Marshal(ids)
	return []tool.Definition{{Name: toolDelegate, Description: "Give a task to one member of the team, and get back its answer. " +
		"Describe the task and the expected output clearly.",
		Parameters: json.RawMessage(`{"type":"object","properties":{"member_id":{"type":"string","enum":` + string(enum) +
			`,"description":"the member's id"},"task":{"type":"string","description":"the task, with everything needed to do it"}},"required":["member_id","task"],"additionalProperties":false}`)}}
}

// The leader's tools, by Agno's names.
const (
	toolDelegate    = "delegate_task_to_member"
	toolDelegateAll = "delegate_task_to_members"
)

// leaderInstructions tells the leader its members and its mode.
func (t *Team) leaderInstructions() string {
	var b strings.Builder
	if t.Instructions != "" {
		b.WriteString(t.Instructions)
		b.WriteString("\n\n")
	}
	b.WriteString("You lead a team. Its members:\n")
	for _, m := range t.Members {
		fmt.Fprintf(&b, "- id %s: %s", m.MemberID(), m.MemberName())
		if role := memberRole(m); role != "" {
			b.WriteString(" — " + role)
		}
		b.WriteString("\n")
	}
	switch t.Mode {
	case ModeRoute:
		b.WriteString("Hand the user's request to the one member best suited to it with " + toolDelegate + "; its answer is the team's answer.")
	case ModeBroadcast:
		b.WriteString("Give the task to every member with " + toolDelegateAll + ", then answer from all their answers.")
	default:
		b.WriteString("Give members tasks with " + toolDelegate + " (several at once when they are independent), then answer from what they return.")
	}
	return b.String()
}

func memberRole(m Member) string {
	switch m := m.(type) {
	case *agentMember:
		return m.role
	case *Team:
		return m.Role
	}
	return ""
}

// RunnerInfo names the team as a workflow step's runner (workflow.Runner).
func (t *Team) RunnerInfo() (kind, id string) { return string(run.KindTeam), t.TeamID() }

// Step returns a workflow step that runs team t on the workflow's input (and the
// previous step's output), as a child run of the workflow's.
func Step(name string, t *Team, description string) *workflow.Task {
	return &workflow.Task{Name: name, Description: description, Runner: t}
}
