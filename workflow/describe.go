package workflow

// StepInfo describes one step of a workflow, for listings such as a server's
// GET /workflows/{workflow_id}.
type StepInfo struct {
	Name string `json:"name"`
	// Kind is "agent" or "function" for a Task, else "steps", "parallel",
	// "condition", "loop" or "router".
	Kind        string `json:"kind"`
	Description string `json:"description,omitempty"`
	// AgentID is the id of a Task's agent.
	AgentID string `json:"agent_id,omitempty"`
	// TeamID is the id of a Task's team (a Runner of kind "team").
	TeamID string `json:"team_id,omitempty"`
	// MaxRetries is how many times a step may run again after its first attempt
	// (Agno's name); TimeoutSeconds bounds each attempt. Zero: none.
	MaxRetries     int     `json:"max_retries,omitempty"`
	TimeoutSeconds float64 `json:"timeout_seconds,omitempty"`
	// Steps are a container's steps (a Router's choices).
	Steps []StepInfo `json:"steps,omitempty"`
}

// Describe returns the names, kinds and descriptions of steps and of the steps they
// contain, in order. A nil step is left out.
func Describe(steps []Step) []StepInfo {
	infos := make([]StepInfo, 0, len(steps))
	for _, s := range steps {
		var info StepInfo
		switch s := s.(type) {
		case *Task:
			info = StepInfo{Name: s.Name, Kind: "function", Description: s.Description}
			if s.Agent != nil {
				info.Kind, info.AgentID = "agent", s.Agent.AgentID()
			}
			if s.Runner != nil {
				var id string
				if info.Kind, id = s.Runner.RunnerInfo(); info.Kind == "team" {
					info.TeamID = id
				}
			}
			info.describePolicy(Policy{Timeout: s.Timeout, Retry: s.Retry})
		case *Steps:
			info = StepInfo{Name: s.Name, Kind: "steps", Description: s.Description, Steps: Describe(s.Steps)}
			info.describePolicy(s.Policy)
		case *Parallel:
			info = StepInfo{Name: s.Name, Kind: "parallel", Description: s.Description, Steps: Describe(s.Steps)}
			info.describePolicy(s.Policy)
		case *Condition:
			info = StepInfo{Name: s.Name, Kind: "condition", Description: s.Description, Steps: Describe(s.Steps)}
			info.describePolicy(s.Policy)
		case *Loop:
			info = StepInfo{Name: s.Name, Kind: "loop", Description: s.Description, Steps: Describe(s.Steps)}
			info.describePolicy(s.Policy)
		case *Router:
			info = StepInfo{Name: s.Name, Kind: "router", Description: s.Description, Steps: Describe(s.Choices)}
			info.describePolicy(s.Policy)
		default:
			continue
		}
		infos = append(infos, info)
	}
	return infos
}

func (info *StepInfo) describePolicy(p Policy) {
	if p.Retry != nil {
		info.MaxRetries = p.Retry.Attempts - 1
	}
	info.TimeoutSeconds = p.Timeout.Seconds()
}
