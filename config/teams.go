package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/kern-dev/kern/team"
	"github.com/kern-dev/kern/workflow"
)

// teams builds the teams section: each entry a leader model (a key of models),
// instructions, members (keys of agents, or of teams declared before it) and a mode
// (coordinate, route or broadcast).
func (l *loader) teams(n *yaml.Node) []*team.Team {
	l.teamsByKey = make(map[string]*team.Team)
	var out []*team.Team
	for _, e := range l.entries(n, "teams") {
		l.declared["teams."+e.key] = true
		if t := l.team(e); t != nil {
			l.teamsByKey[e.key] = t
			out = append(out, t)
		}
	}
	return out
}

func (l *loader) team(e entry) *team.Team {
	what := fmt.Sprintf("team %q", e.key)
	f := l.fields(e.val, what, "name", "role", "model", "instructions", "members", "mode", "max_iterations")
	if f == nil || !l.required(e.val, f, what, "model", "members") {
		return nil
	}
	t := &team.Team{ID: e.key, Name: l.optStr(f["name"], what+" name"), Role: l.optStr(f["role"], what+" role"),
		Instructions: l.optStr(f["instructions"], what+" instructions"), Mode: team.Mode(l.optStr(f["mode"], what+" mode")),
		MaxIterations: l.count(f["max_iterations"], what+" max_iterations")}
	if t.Name == "" {
		t.Name = e.key
	}
	switch t.Mode {
	case "", team.ModeCoordinate, team.ModeRoute, team.ModeBroadcast:
	default:
		l.errorf(f["mode"], "%s: unknown mode %q (coordinate, route or broadcast)", what, t.Mode)
		return nil
	}
	if ref, ok := l.str(f["model"], what+" model"); ok {
		t.Model = l.models[ref]
		if t.Model == nil && !l.declared["models."+ref] {
			l.errorf(f["model"], "%s: unknown model %q", what, ref)
		}
	}
	members := resolve(f["members"])
	if members.Kind != yaml.SequenceNode || len(members.Content) == 0 {
		l.errorf(members, "%s members must be a non-empty list of agent or team ids, not %s", what, kind(members))
		return nil
	}
	ok := t.Model != nil
	for _, item := range members.Content {
		ref, isStr := l.str(resolve(item), what+" member")
		if !isStr {
			ok = false
			continue
		}
		switch {
		case l.agents[ref] != nil:
			t.Members = append(t.Members, team.Agent(l.agents[ref], ""))
		case l.teamsByKey[ref] != nil:
			t.Members = append(t.Members, l.teamsByKey[ref])
		case l.declared["agents."+ref] || l.declared["teams."+ref]:
			ok = false // broken already, and reported
		default:
			l.errorf(item, "%s: member %q is neither an agent nor a team declared before it", what, ref)
			ok = false
		}
	}
	if !ok {
		return nil
	}
	if err := t.Validate(); err != nil {
		l.errorf(e.keyNode, "%v", err)
		return nil
	}
	return t
}

// teamStep builds a step that runs a team: {name, team, description, timeout, retry}
// and the keys of a step that waits for a person.
func (s *steps) teamStep(n *yaml.Node, f map[string]*yaml.Node) (workflow.Step, string) {
	if f["agent"] != nil {
		s.l.errorf(n, "a step runs an agent or a team, not both")
		return nil, ""
	}
	if !s.l.required(n, f, "step", "name") {
		return nil, ""
	}
	name := s.name(f, "step")
	what := fmt.Sprintf("step %q", name)
	desc := s.l.optStr(f["description"], what+" description")
	ref, ok := s.l.str(f["team"], what+" team")
	if !ok || name == "" {
		return nil, ""
	}
	t := s.l.teamsByKey[ref]
	if t == nil {
		if !s.l.declared["teams."+ref] {
			s.l.errorf(f["team"], "%s: unknown team %q", what, ref)
		}
		return nil, ""
	}
	step := team.Step(name, t, desc)
	step.Timeout = s.l.duration(f["timeout"], what+" timeout")
	step.Retry = s.l.retry(f["retry"], what)
	step.Pause = s.l.stepPause(f, what)
	return step, name
}
