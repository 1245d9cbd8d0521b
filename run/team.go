package run

// KindTeam is the kind of a team's run (package team).
const KindTeam Kind = "team"

// Team events: a team's own run, as Agno names them; its members' runs are agent (or
// team) runs nested in its stream, with the team's run as their parent_run_id.
const (
	EventTeamRunStarted            EventType = "TeamRunStarted"
	EventTeamRunContent            EventType = "TeamRunContent"
	EventTeamRunContentCompleted   EventType = "TeamRunContentCompleted"
	EventTeamRunCompleted          EventType = "TeamRunCompleted"
	EventTeamRunError              EventType = "TeamRunError"
	EventTeamRunCancelled          EventType = "TeamRunCancelled"
	EventTeamToolCallStarted       EventType = "TeamToolCallStarted"
	EventTeamToolCallCompleted     EventType = "TeamToolCallCompleted"
	EventTeamToolCallError         EventType = "TeamToolCallError"
	EventTeamModelRequestStarted   EventType = "TeamModelRequestStarted"
	EventTeamModelRequestCompleted EventType = "TeamModelRequestCompleted"
	// EventTeamRunPaused ends a team run's execution PAUSED: a member waits for a
	// person (its tools and requirements, with the member's ids, in the event).
	EventTeamRunPaused EventType = "TeamRunPaused"
	// EventTeamRunContinued starts a continued team run's execution.
	EventTeamRunContinued EventType = "TeamRunContinued"
)

// teamTerminalEvent returns the event type that ends a team's run in status st.
func teamTerminalEvent(st Status) EventType {
	switch st {
	case StatusCompleted:
		return EventTeamRunCompleted
	case StatusCancelled:
		return EventTeamRunCancelled
	case StatusPaused:
		return EventTeamRunPaused
	}
	return EventTeamRunError
}
