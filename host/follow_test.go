package host

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/tool"
)

// TestFollowPastNestedAgentEnd: an agent that calls another agent as a tool
// stores the inner run's RunCompleted in its own stream; Follow goes on past it to
// the followed run's own terminal event, and yields every stored event.
func TestFollowPastNestedAgentEnd(t *testing.T) {
	ctx := context.Background()
	st := sqliteStore(t, filepath.Join(t.TempDir(), "kern.db"))
	inner := &agent.Agent{Name: "Researcher", Model: scripted.New("dragons fly")}
	args, err := json.Marshal(map[string]string{"input": "dragons?"})
	if err != nil {
		t.Fatal(err)
	}
	outer := &agent.Agent{Name: "Lead", Tools: []tool.Tool{agent.AsTool(inner, "Finds facts")},
		Model: &scripted.Model{Turns: []scripted.Turn{
			{ToolCalls: []model.ToolCall{{Name: "researcher", Arguments: args}}}, {Text: "done"}}}}
	h := startHost(t, st, Options{Agents: []*agent.Agent{outer}, NoRecovery: true})
	r, err := h.Start(Request{Kind: run.KindAgent, Component: "lead", Input: "go", SessionID: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := r.Wait(ctx); out.Status != run.StatusCompleted {
		t.Fatalf("run ended %s", out.Status)
	}
	rec, err := st.GetRun(ctx, r.ID())
	if err != nil {
		t.Fatal(err)
	}
	all, err := st.Events(ctx, r.ID(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	nested := 0
	for i := range all {
		if all[i].Type.Terminal() && !all[i].Ends(r.ID()) {
			nested++
		}
	}
	if nested == 0 {
		t.Fatalf("no nested run's end among the stored events %v: the test tests nothing", all)
	}
	var got []store.Event
	if err := h.Follow(ctx, rec, 0, func(evs []store.Event) bool {
		got = append(got, evs...)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(all) || !got[len(got)-1].Ends(r.ID()) {
		t.Fatalf("Follow yielded %d of the %d stored events, the last %s; want all, to the run's own end",
			len(got), len(all), got[len(got)-1].Type)
	}
}

// sqliteStore opens a SQLite store on path, closed when the test ends (after the
// hosts on it, whose cleanups were registered later).
func sqliteStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
