package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/kern-dev/kern/team"
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
