package client

import (
	"testing"

	"github.com/kern-dev/kern/run"
)

// A team's events decode with their team fields, and a member's with its parent.
func TestDecodeTeamEvents(t *testing.T) {
	ev, err := decodeEvent([]byte(`{"event":"TeamRunContent","run_id":"t1","created_at":1,"event_index":3,"team_id":"desk","team_name":"Desk","session_id":"s","content":"hi"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Event != run.EventTeamRunContent || ev.TeamID != "desk" || ev.TeamName != "Desk" || ev.Content != "hi" || ev.EventIndex != 3 {
		t.Errorf("team event = %+v %+v", ev, ev.Origin)
	}
	ev, err = decodeEvent([]byte(`{"event":"TeamRunCancelled","run_id":"t1","created_at":1,"event_index":9,"team_id":"desk","reason":"requested"}`), nil)
	if err != nil || !ev.Event.Terminal() || ev.Reason != "requested" {
		t.Errorf("TeamRunCancelled = %+v, %v", ev, err)
	}
}
