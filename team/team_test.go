package team_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/team"
	"github.com/kern-dev/kern/tool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func call(name, args string) model.ToolCall {
	return model.ToolCall{Name: name, Arguments: json.RawMessage(args)}
}

func member(id, answer string) *agent.Agent {
	return &agent.Agent{ID: id, Name: strings.ToUpper(id[:1]) + id[1:], Model: scripted.New(answer)}
}

// collect runs the team and returns its events and final output.
func collect(t *testing.T, tm *team.Team, input string) ([]*run.Event, *run.Output) {
	t.Helper()
	x, err := tm.Start(t.Context(), input)
	if err != nil {
		t.Fatal(err)
	}
	var evs []*run.Event
	for ev, err := range x.Stream {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs, x.Wait()
}

func types(evs []*run.Event, runID string) []run.EventType {
	var ts []run.EventType
	for _, ev := range evs {
		if ev.RunID == runID {
			ts = append(ts, ev.Event)
		}
	}
	return ts
}

// terminals counts each run's terminal events.
func terminals(evs []*run.Event) map[string]int {
	n := map[string]int{}
	for _, ev := range evs {
		if ev.Event.Terminal() {
			n[ev.RunID]++
		}
	}
	return n
}

func TestCoordinate(t *testing.T) {
	var leaderReqs []*model.Request
	var mu sync.Mutex
	leader := &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		mu.Lock()
		leaderReqs = append(leaderReqs, req)
		n := len(leaderReqs)
		mu.Unlock()
		if n == 1 {
			return scripted.Turn{Text: "Asking. ", ToolCalls: []model.ToolCall{
				call("delegate_task_to_member", `{"member_id":"researcher","task":"find facts"}`),
				call("delegate_task_to_member", `{"member_id":"writer","task":"write it"}`),
			}}
		}
		return scripted.Turn{Text: "Both done."}
	}}
	tm := &team.Team{Name: "Newsroom", Model: leader, Instructions: "Write news.",
		Members: []team.Member{team.Agent(member("researcher", "facts found"), "finds facts"), team.Agent(member("writer", "article written"), "")}}
	evs, out := collect(t, tm, "a story")
	if out.Status != run.StatusCompleted || out.Content != "Asking. Both done." || out.TeamID != "newsroom" {
		t.Fatalf("output = %+v", out)
	}
	// The two calls run in parallel: their events interleave in any order.
	want := []run.EventType{run.EventTeamRunStarted, run.EventTeamModelRequestStarted, run.EventTeamRunContent,
		run.EventTeamModelRequestCompleted, "tool", "tool", "tool", "tool", run.EventTeamModelRequestStarted,
		run.EventTeamRunContent, run.EventTeamRunContent, run.EventTeamModelRequestCompleted, run.EventTeamRunContentCompleted, run.EventTeamRunCompleted}
	got := types(evs, out.RunID)
	for i, ev := range got {
		if ev == run.EventTeamToolCallStarted || ev == run.EventTeamToolCallCompleted {
			got[i] = "tool"
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("team events =\n%v\nwant\n%v", got, want)
	}
	if len(out.MemberResponses) != 2 {
		t.Fatalf("member responses = %d", len(out.MemberResponses))
	}
	var leaderTokens int
	for _, ev := range evs {
		if ev.Event == run.EventTeamModelRequestCompleted {
			leaderTokens += ev.Metrics.OutputTokens
		}
	}
	members := out.MemberResponses[0].Metrics.OutputTokens + out.MemberResponses[1].Metrics.OutputTokens
	if leaderTokens == 0 || members == 0 || out.Metrics.OutputTokens != leaderTokens+members {
		t.Errorf("output tokens: team %d, leader %d, members %d", out.Metrics.OutputTokens, leaderTokens, members)
	}
	for _, mr := range out.MemberResponses {
		if mr.ParentRunID != out.RunID || mr.RunID == out.RunID || mr.Status != run.StatusCompleted {
			t.Errorf("member run %+v", mr)
		}
	}
	for id, n := range terminals(evs) {
		if n != 1 {
			t.Errorf("run %s: %d terminal events", id, n)
		}
	}
	if len(terminals(evs)) != 3 {
		t.Errorf("terminal events of %d runs, want 3", len(terminals(evs)))
	}
	// Member events are nested in the team's stream, numbered by it.
	for i, ev := range evs {
		if ev.EventIndex != i {
			t.Fatalf("event %d has index %d", i, ev.EventIndex)
		}
		if ev.RunID != out.RunID && (ev.ParentRunID != out.RunID || ev.AgentID == "") {
			t.Errorf("member event %s: parent %q agent %q", ev.Event, ev.ParentRunID, ev.AgentID)
		}
	}
	second := leaderReqs[1].Messages
	if got := second[len(second)-2].Content + "|" + second[len(second)-1].Content; got != "facts found|article written" {
		t.Errorf("tool results the leader read = %q", got)
	}
	if !strings.Contains(leaderReqs[0].Instructions, "researcher: Researcher — finds facts") {
		t.Errorf("leader instructions = %q", leaderReqs[0].Instructions)
	}
}

func TestRoute(t *testing.T) {
	leader := &scripted.Model{Turns: []scripted.Turn{{ToolCalls: []model.ToolCall{
		call("delegate_task_to_member", `{"member_id":"billing","task":"refund order 7"}`)}}, {Text: "never asked"}}}
	tm := &team.Team{Name: "Support", Model: leader, Mode: team.ModeRoute,
		Members: []team.Member{team.Agent(member("billing", "refund issued"), ""), team.Agent(member("tech", "rebooted"), "")}}
	evs, out := collect(t, tm, "refund please")
	if out.Status != run.StatusCompleted || out.Content != "refund issued" {
		t.Fatalf("output = %+v", out)
	}
	if got := types(evs, out.RunID); slices.Contains(got, run.EventTeamRunContent) == false || got[len(got)-1] != run.EventTeamRunCompleted {
		t.Errorf("team events = %v", got)
	}
}

func TestBroadcast(t *testing.T) {
	var second *model.Request
	leader := &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		if len(req.Messages) == 1 {
			if req.Tools[0].Name != "delegate_task_to_members" {
				t.Errorf("broadcast leader's tool = %s", req.Tools[0].Name)
			}
			return scripted.Turn{ToolCalls: []model.ToolCall{call("delegate_task_to_members", `{"task":"review"}`)}}
		}
		second = req
		return scripted.Turn{Text: "Combined."}
	}}
	tm := &team.Team{Name: "Panel", Model: leader, Mode: team.ModeBroadcast,
		Members: []team.Member{team.Agent(member("a", "yes"), ""), team.Agent(member("b", "no"), ""), team.Agent(member("c", "maybe"), "")}}
	_, out := collect(t, tm, "review this")
	if out.Status != run.StatusCompleted || out.Content != "Combined." || len(out.MemberResponses) != 3 {
		t.Fatalf("output = %+v", out)
	}
	got := second.Messages[len(second.Messages)-1].Content
	for _, want := range []string{"(a):\nyes", "(b):\nno", "(c):\nmaybe"} {
		if !strings.Contains(got, want) {
			t.Errorf("combined answers %q lack %q", got, want)
		}
	}
}

func TestUnknownMemberIsToolError(t *testing.T) {
	leader := &scripted.Model{Turns: []scripted.Turn{{ToolCalls: []model.ToolCall{
		call("delegate_task_to_member", `{"member_id":"ghost","task":"x"}`)}}, {Text: "ok"}}}
	tm := &team.Team{Name: "T", Model: leader, Members: []team.Member{team.Agent(member("real", "r"), "")}}
	evs, out := collect(t, tm, "go")
	if out.Status != run.StatusCompleted {
		t.Fatalf("status %s", out.Status)
	}
	if !slices.Contains(types(evs, out.RunID), run.EventTeamToolCallError) {
		t.Error("no TeamToolCallError for an unknown member")
	}
}

func TestValidate(t *testing.T) {
	m := scripted.New("x")
	a := team.Agent(member("a", "x"), "")
	loopA := &team.Team{Name: "A", Model: m}
	loopB := &team.Team{Name: "B", Model: m, Members: []team.Member{loopA}}
	loopA.Members = []team.Member{loopB}
	for name, tm := range map[string]*team.Team{
		"cycle":        loopA,
		"no model":     {Name: "t", Members: []team.Member{a}},
		"no members":   {Name: "t", Model: m},
		"bad mode":     {Name: "t", Model: m, Mode: "vote", Members: []team.Member{a}},
		"twice":        {Name: "t", Model: m, Members: []team.Member{a, a}},
		"member error": {Name: "t", Model: m, Members: []team.Member{team.Agent(&agent.Agent{Name: "nomodel"}, "")}},
	} {
		if err := tm.Validate(); !errors.Is(err, run.ErrInvalid) {
			t.Errorf("%s: Validate() = %v", name, err)
		}
	}
}

// A team as a member of a team: its run is a child of the outer team's, and its
// members' runs are children of its own.
func TestNestedTeam(t *testing.T) {
	inner := &team.Team{Name: "Inner", Model: &scripted.Model{Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{call("delegate_task_to_member", `{"member_id":"x","task":"t"}`)}}, {Text: "inner done"}}},
		Members: []team.Member{team.Agent(member("x", "x did it"), "")}}
	outer := &team.Team{Name: "Outer", Mode: team.ModeRoute, Model: &scripted.Model{Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{call("delegate_task_to_member", `{"member_id":"inner","task":"t"}`)}}}},
		Members: []team.Member{inner}}
	evs, out := collect(t, outer, "go")
	if out.Status != run.StatusCompleted || out.Content != "inner done" {
		t.Fatalf("output = %+v", out)
	}
	innerRun := out.MemberResponses[0]
	if innerRun.TeamID != "inner" || innerRun.ParentRunID != out.RunID {
		t.Errorf("inner run = %+v", innerRun)
	}
	var sawInnerMember bool
	for _, ev := range evs {
		if ev.AgentID == "x" && ev.ParentRunID == innerRun.RunID {
			sawInnerMember = true
		}
	}
	if !sawInnerMember {
		t.Error("the inner team's member events do not name the inner run as parent")
	}
}

// blockingTool waits until its call is cancelled, telling started first.
func blockingTool(started chan<- string) tool.Tool {
	return tool.Func("wait_forever", "Waits.", func(ctx context.Context, _ struct{}) (string, error) {
		started <- "tool"
		<-ctx.Done()
		return "", context.Cause(ctx)
	})
}

// streamingMember streams a first word, then stalls.
func streamingMember(id string) *agent.Agent {
	return &agent.Agent{ID: id, Name: id, Model: &scripted.Model{Turns: []scripted.Turn{{Text: "first second third"}}, Delay: time.Hour}}
}

// cancelTeam starts a broadcast team of members (streaming ones, and one waiting
// in a tool call), waits until each member is under way, cancels the team, and
// returns its events, its output, and how long from the cancel until every member
// run's terminal event was out.
func cancelTeam(t testing.TB, streaming int) ([]*run.Event, *run.Output, time.Duration) {
	started := make(chan string, streaming+1)
	members := []team.Member{team.Agent(&agent.Agent{ID: "toolish", Name: "Toolish", Tools: []tool.Tool{blockingTool(started)},
		Model: &scripted.Model{Turns: []scripted.Turn{{ToolCalls: []model.ToolCall{{Name: "wait_forever"}}}, {Text: "never"}}}}, "")}
	for i := range streaming {
		members = append(members, team.Agent(streamingMember(fmt.Sprintf("streamer%d", i)), ""))
	}
	tm := &team.Team{Name: "Crew", Mode: team.ModeBroadcast, Members: members, Model: &scripted.Model{Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{call("delegate_task_to_members", `{"task":"go"}`)}}, {Text: "never"}}}}
	x, err := tm.Start(context.Background(), "go")
	if err != nil {
		t.Fatal(err)
	}
	var evs []*run.Event
	memberRuns := map[string]bool{}
	under := 0
	var cancelAt time.Time
	ended := 0
	var latency time.Duration
	for ev, err := range x.Stream {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
		if ev.RunID != x.ID && ev.Event == run.EventRunStarted {
			memberRuns[ev.RunID] = true
		}
		if ev.Event == run.EventRunContent && ev.RunID != x.ID {
			under++
		}
		if ev.RunID != x.ID && ev.Event.Terminal() {
			if ended++; ended == len(members) {
				latency = time.Since(cancelAt)
			}
		}
		if under == streaming && cancelAt.IsZero() {
			<-started // the tool call is under way too
			cancelAt = time.Now()
			go tm.CancelRun(context.Background(), x.ID)
		}
	}
	return evs, x.Wait(), latency
}

// A team's cancel cancels every member run at once: two streaming in parallel and
// one waiting in a tool call. Each ends with one terminal event; no goroutine is
// left (TestMain's goleak).
func TestCancelReachesEveryMember(t *testing.T) {
	evs, out, latency := cancelTeam(t, 2)
	if out.Status != run.StatusCancelled {
		t.Fatalf("team status = %s", out.Status)
	}
	if got := evs[len(evs)-1].Event; got != run.EventTeamRunCancelled {
		t.Errorf("last event = %s", got)
	}
	n := terminals(evs)
	if len(n) != 4 {
		t.Errorf("terminal events of %d runs, want 4 (the team and 3 members)", len(n))
	}
	for id, c := range n {
		if c != 1 {
			t.Errorf("run %s: %d terminal events", id, c)
		}
	}
	if len(out.MemberResponses) != 3 {
		t.Fatalf("member responses = %d, want 3", len(out.MemberResponses))
	}
	for _, mr := range out.MemberResponses {
		if mr.Status != run.StatusCancelled {
			t.Errorf("member %s: %s", mr.AgentID, mr.Status)
		}
		if strings.HasPrefix(mr.AgentID, "streamer") && mr.Content != "first " {
			t.Errorf("member %s kept %q, want its first word", mr.AgentID, mr.Content)
		}
	}
	t.Logf("cancel -> every member terminal: %v", latency)
}

// TestMeasureTeamCancel reports cancel -> all members terminal for a team of 4
// members (3 streaming, 1 in a tool call), p50/p99, when KERN_MEASURE=1.
func TestMeasureTeamCancel(t *testing.T) {
	if os.Getenv("KERN_MEASURE") == "" {
		t.Skip("set KERN_MEASURE=1 to measure")
	}
	var ds []time.Duration
	for range 200 {
		_, out, d := cancelTeam(t, 3)
		if out.Status != run.StatusCancelled {
			t.Fatal(out.Status)
		}
		ds = append(ds, d)
	}
	slices.Sort(ds)
	t.Logf("team of 4: cancel -> all members terminal p50 %v p99 %v (n=%d)", ds[len(ds)/2], ds[len(ds)*99/100], len(ds))
}
