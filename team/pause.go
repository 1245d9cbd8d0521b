package team

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
)

// pauseState is what a team run keeps when a member paused for a person: the
// leader's conversation up to its turn with Calls, the results of the calls
// that ended, and the member runs that wait, by the id of the call that gave
// them their task. It is the run's Paused.State.
type pauseState struct {
	Messages        []model.Message          `json:"messages"`
	Calls           []model.ToolCall         `json:"calls"`
	Results         map[string]model.Message `json:"results,omitempty"`
	Members         map[string]memberPause   `json:"members"`
	Iteration       int                      `json:"iteration"` // the leader's model requests made
	Content         string                   `json:"content,omitempty"`
	Metrics         run.Metrics              `json:"metrics"` // the leader's
	MemberResponses []*run.Output            `json:"member_responses,omitempty"`
}

// memberPause is a member run that paused: whose, on what task, and its pause.
type memberPause struct {
	MemberID string              `json:"member_id"`
	Task     string              `json:"task"`
	RunID    string              `json:"run_id"`
	Paused   *run.Paused         `json:"paused"`
	Tools    []run.ToolExecution `json:"tools"`
	// Requirements are the member run's, with the member named.
	Requirements []run.Requirement `json:"requirements,omitempty"`
	// Renamed maps the ids the team shows for calls of this member whose ids
	// another waiting member's call has too (its run id, "/", the call's id) to
	// the member's own.
	Renamed map[string]string `json:"renamed,omitempty"`
}

// rename gives mp's calls whose ids seen holds (another member's calls) ids of
// their own, and adds its calls' ids to seen.
func (mp *memberPause) rename(seen map[string]bool) {
	for i := range mp.Tools {
		id := mp.Tools[i].ToolCallID
		if seen[id] {
			shown := mp.RunID + "/" + id
			if mp.Renamed == nil {
				mp.Renamed = make(map[string]string)
			}
			mp.Renamed[shown] = id
			mp.Tools[i].ToolCallID = shown
			for j := range mp.Requirements {
				if te := mp.Requirements[j].ToolExecution; te != nil && te.ToolCallID == id {
					c := *te
					c.ToolCallID = shown
					mp.Requirements[j].ToolExecution, mp.Requirements[j].ID = &c, shown
				}
			}
			id = shown
		}
		seen[id] = true
	}
}

// pausedState decodes the state a paused run of t continues from.
func (t *Team) pausedState(p *run.Paused) (*pauseState, error) {
	var st pauseState
	if p == nil || json.Unmarshal(p.State, &st) != nil || len(st.Members) == 0 {
		return nil, fmt.Errorf("team %q: no paused state to continue from: %w", t.Name, run.ErrInvalid)
	}
	return &st, nil
}

// delegated returns what the leader's call callID, which gave member m task,
// returns once the member's run (out, err) ended or paused: a member run that
// paused is kept to continue, and the call answers run.ErrPaused.
func (l *leaderRun) delegated(callID string, m Member, task string, sc *engine.Scope) func(*run.Output, error) (string, error) {
	return func(out *run.Output, err error) (string, error) {
		switch {
		case errors.Is(err, run.ErrPaused) && out != nil && out.Paused != nil && sc.Pausable:
			mp := memberPause{MemberID: m.MemberID(), Task: task, RunID: out.RunID, Paused: out.Paused,
				Tools: slices.Clone(out.Tools)}
			for _, r := range out.Requirements {
				r.MemberAgentID, r.MemberAgentName, r.MemberRunID = m.MemberID(), m.MemberName(), out.RunID
				mp.Requirements = append(mp.Requirements, r)
			}
			l.mu.Lock()
			if l.paused == nil {
				l.paused = make(map[string]memberPause)
			}
			l.paused[callID] = mp
			l.mu.Unlock()
			return "", run.ErrPaused
		case err != nil:
			return "", err
		}
		if l.t.Mode == ModeRoute {
			l.mu.Lock()
			l.answer = out
			l.mu.Unlock()
		}
		return out.Content, nil
	}
}

// pauseIfWaiting pauses the team run when members of this turn wait for a
// person: it keeps the leader's conversation (msgs, up to its turn with calls),
// the results of the calls that ended and the members' pauses in the run's
// output, with the members' pending calls and requirements, and returns
// run.ErrPaused. It returns nil when no member waits.
func (l *leaderRun) pauseIfWaiting(msgs []model.Message, calls []model.ToolCall, results []model.Message, iteration int, content string) error {
	l.mu.Lock()
	waiting := l.paused
	l.paused = nil
	members := slices.Clone(l.members)
	l.mu.Unlock()
	if len(waiting) == 0 {
		return nil
	}
	st := pauseState{Messages: msgs, Calls: calls, Results: make(map[string]model.Message), Members: waiting,
		Iteration: iteration, Content: content, Metrics: l.out.Metrics, MemberResponses: members}
	out := l.out
	out.Tools, out.Requirements = nil, nil
	var expires *run.Paused
	seen := make(map[string]bool)
	for i, c := range calls {
		mp, ok := waiting[c.ID]
		if !ok {
			st.Results[c.ID] = results[i]
			continue
		}
		mp.rename(seen)
		waiting[c.ID] = mp
		out.Tools = append(out.Tools, mp.Tools...)
		out.Requirements = append(out.Requirements, mp.Requirements...)
		if p := mp.Paused; !p.ExpiresAt.IsZero() && (expires == nil || p.ExpiresAt.Before(expires.ExpiresAt)) {
			expires = p
		}
	}
	state, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("team %q: keep the paused state: %w", l.t.Name, err)
	}
	out.Paused = &run.Paused{State: state}
	if expires != nil {
		out.Paused.ExpiresAt, out.Paused.OnExpiry = expires.ExpiresAt, expires.OnExpiry
	}
	return run.ErrPaused
}

// continueCalls ends the calls of the leader's turn that st paused in: the
// calls that had ended keep their results; each member that waited continues
// from its pause with decisions (those of its calls), at once, and its call ends
// when it does (or it pauses again). It returns one tool message per call, in
// the calls' order.
func (l *leaderRun) continueCalls(ctx context.Context, st *pauseState, decisions []run.ToolExecution) []model.Message {
	msgs := make([]model.Message, len(st.Calls))
	var wg sync.WaitGroup
	for i, c := range st.Calls {
		mp, ok := st.Members[c.ID]
		if !ok {
			msgs[i] = st.Results[c.ID]
			continue
		}
		var m Member
		for _, mm := range l.t.Members {
			if mm.MemberID() == mp.MemberID {
				m = mm
			}
		}
		if m == nil {
			msgs[i] = l.endCall(c, "", fmt.Errorf("no member %q in the team any more", mp.MemberID))
			continue
		}
		var mine []run.ToolExecution
		for _, d := range decisions {
			if slices.ContainsFunc(mp.Tools, func(t run.ToolExecution) bool { return t.ToolCallID == d.ToolCallID }) {
				if own, ok := mp.Renamed[d.ToolCallID]; ok {
					d.ToolCallID = own
				}
				mine = append(mine, d)
			}
		}
		wg.Go(func() {
			resume := &run.Resume{Paused: mp.Paused, Decisions: mine}
			result, err := l.delegated(c.ID, m, mp.Task, l.scope)(l.runMember(ctx, l.scope, m, mp.Task, run.WithID(mp.RunID), run.WithResume(resume)))
			if errors.Is(err, run.ErrPaused) {
				msgs[i] = model.Message{Role: model.RoleTool, ToolCallID: c.ID, ToolName: c.Name}
				return
			}
			msgs[i] = l.endCall(c, result, err)
		})
	}
	wg.Wait()
	return msgs
}
