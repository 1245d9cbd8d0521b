package agentos

import (
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/team"
)

// schemaTeam names GET /teams/{team_id}'s answer in the OpenAPI document.
const schemaTeam = "Team"

// teamInfo is GET /teams/{team_id}'s answer.
type teamInfo struct {
	ID           string       `json:"id"`
	Name         string       `json:"name,omitempty"`
	Mode         string       `json:"mode"`
	Model        *modelInfo   `json:"model,omitempty"`
	Instructions string       `json:"instructions,omitempty"`
	Members      []memberInfo `json:"members"`
}

// memberInfo is one member of a team, as teamInfo lists it.
type memberInfo struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

func teamDetail(t *team.Team) teamInfo {
	info := teamInfo{ID: t.TeamID(), Name: t.Name, Mode: string(t.Mode), Instructions: t.Instructions, Members: []memberInfo{}}
	if info.Mode == "" {
		info.Mode = string(team.ModeCoordinate)
	}
	if d, ok := t.Model.(model.Describer); ok {
		info.Model = &modelInfo{Provider: d.Provider(), Model: d.ModelID()}
	}
	for _, m := range t.Members {
		info.Members = append(info.Members, memberInfo{ID: m.MemberID(), Name: m.MemberName()})
	}
	return info
}

// addTeams lists the host's teams as the routes describe them.
func (s *Server) addTeams() {
	for _, t := range s.host.Teams() {
		c := &component{kind: run.KindTeam, id: t.TeamID(), name: t.Name, info: teamDetail(t)}
		s.components[string(c.kind)+"/"+c.id] = c
		s.teams = append(s.teams, c)
	}
}

func teamSchema() obj {
	return object([]string{"id", "mode", "members"}, obj{"id": str(""), "name": str(""), "instructions": str(""),
		"mode":    obj{"type": "string", "enum": []string{"coordinate", "route", "broadcast"}},
		"model":   object(nil, obj{"provider": str(""), "model": str("")}),
		"members": obj{"type": "array", "items": object([]string{"id"}, obj{"id": str(""), "name": str("")})}})
}
