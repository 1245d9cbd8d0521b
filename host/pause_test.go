package host

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/internal/testagents"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

// mailer is testagents.Mailer: an agent whose call send_mail waits for a person.
var mailer = testagents.Mailer

// pauseStores opens two handles on one database of each kind, as two processes
// would.
func pauseStores(t *testing.T) map[string][2]store.Store {
	path := filepath.Join(t.TempDir(), "kern.db")
	open := func() store.Store {
		st, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	stores := map[string][2]store.Store{"sqlite": {open(), open()}}
	if pgtest.Ping(context.Background()) == nil || pgtest.InCI() {
		url, schema := pgtest.URL(), pgtest.Schema(t)
		stores["postgres"] = [2]store.Store{openPostgres(t, url, schema), openPostgres(t, url, schema)}
	} else {
		t.Log("!!! PostgreSQL cases skipped: no server")
	}
	return stores
}

// pauseRun starts a run of the mailer on h and returns it once it paused.
func pauseRun(t *testing.T, h *Host) *run.Output {
	t.Helper()
	r, err := h.Start(Request{Kind: run.KindAgent, Component: "mailer", Input: "mail ada", SessionID: "s"})
	if err != nil {
		t.Fatal(err)
	}
	out := r.Exec().Wait()
	if out.Status != run.StatusPaused || len(out.Tools) != 1 || !out.Tools[0].RequiresConfirmation {
		t.Fatalf("run ended %s with tools %+v, want PAUSED waiting for a confirmation", out.Status, out.Tools)
	}
	evs := r.Exec().Log.Events()
	last := evs[len(evs)-1]
	if last.Event != run.EventRunPaused || last.Detail == nil || len(last.Detail.Tools) != 1 || len(last.Detail.Requirements) != 1 {
		t.Fatalf("last event %s %+v, want RunPaused with the tool and its requirement", last.Event, last.Detail)
	}
	return out
}

func confirm(out *run.Output, ok bool, note string) []run.ToolExecution {
	d := out.Tools[0]
	d.Confirmed, d.ConfirmationNote = &ok, note
	return []run.ToolExecution{d}
}

// TestPauseContinue: an agent run pauses on a call that requires confirmation, is
// a row in the store (PAUSED, no lease), and is continued by another process on
// the same database: confirmed, the tool runs; rejected, the model reads the note.
// Of two continues at once exactly one wins; a paused run cancelled ends CANCELLED
// with its terminal event stored after its RunPaused, and cannot be continued.
func TestPauseContinue(t *testing.T) {
	for name, sts := range pauseStores(t) {
		t.Run(name, func(t *testing.T) {
			var sent atomic.Int32
			a := startHost(t, sts[0], Options{Replica: "A", Agents: []*agent.Agent{mailer(&sent)}})
			b := startHost(t, sts[1], Options{Replica: "B", Agents: []*agent.Agent{mailer(&sent)}})
			ctx := context.Background()

			t.Run("confirmed", func(t *testing.T) {
				sent.Store(0)
				out := pauseRun(t, a)
				rec, err := sts[1].GetRun(ctx, out.RunID)
				if err != nil || rec.Status != run.StatusPaused || !rec.LeaseUntil.IsZero() || rec.Output.Paused == nil {
					t.Fatalf("stored run: %+v %v, want PAUSED with no lease and its state", rec, err)
				}
				if sent.Load() != 0 {
					t.Fatal("the tool ran before it was confirmed")
				}
				r, err := b.Continue(ctx, ContinueRequest{Kind: run.KindAgent, Component: "mailer", RunID: out.RunID, Tools: confirm(out, true, "")})
				if err != nil {
					t.Fatal(err)
				}
				done := r.Exec().Wait()
				if done.Status != run.StatusCompleted || done.Content != "Sending. done: sent to ada" || sent.Load() != 1 {
					t.Fatalf("continued run ended %s %q (tool ran %d times)", done.Status, done.Content, sent.Load())
				}
				evs := r.Exec().Log.Events()
				if evs[0].Event != run.EventRunContinued || evs[0].EventIndex != rec.Output.Paused.NextEvent {
					t.Fatalf("first event after continue: %s at %d, want RunContinued at %d", evs[0].Event, evs[0].EventIndex, rec.Output.Paused.NextEvent)
				}
				stored, err := sts[0].GetRun(ctx, out.RunID)
				if err != nil || stored.Status != run.StatusCompleted || stored.Output.Paused != nil {
					t.Fatalf("stored end: %+v %v", stored, err)
				}
				if _, err := a.Continue(ctx, ContinueRequest{Kind: run.KindAgent, Component: "mailer", RunID: out.RunID, Tools: confirm(out, true, "")}); !errors.Is(err, run.ErrNotPaused) {
					t.Fatalf("continue of a completed run: %v, want ErrNotPaused", err)
				}
			})
			t.Run("decided for another pause", func(t *testing.T) {
				sent.Store(0)
				out := pauseRun(t, a)
				// Decisions made for a pause the run has left (continued and paused
				// again since) are refused, not applied to the pause it is in.
				stale := ContinueRequest{Kind: run.KindAgent, Component: "mailer", RunID: out.RunID,
					Tools: confirm(out, true, ""), Pause: out.Paused.NextEvent - 1}
				if _, err := b.Continue(ctx, stale); !errors.Is(err, run.ErrNotPaused) {
					t.Fatalf("continue of another pause: %v, want ErrNotPaused", err)
				}
				if sent.Load() != 0 {
					t.Fatal("the tool ran on decisions made for another pause")
				}
				current := stale
				current.Pause = out.Paused.NextEvent
				r, err := b.Continue(ctx, current)
				if err != nil {
					t.Fatal(err)
				}
				if done := r.Exec().Wait(); done.Status != run.StatusCompleted || sent.Load() != 1 {
					t.Fatalf("continued run ended %s (tool ran %d times)", done.Status, sent.Load())
				}
			})
			t.Run("rejected", func(t *testing.T) {
				sent.Store(0)
				out := pauseRun(t, a)
				r, err := b.Continue(ctx, ContinueRequest{Kind: run.KindAgent, Component: "mailer", RunID: out.RunID, Tools: confirm(out, false, "not to ada")})
				if err != nil {
					t.Fatal(err)
				}
				done := r.Exec().Wait()
				if done.Status != run.StatusCompleted || done.Content != "Sending. done: not to ada" || sent.Load() != 0 {
					t.Fatalf("rejected run ended %s %q (tool ran %d times)", done.Status, done.Content, sent.Load())
				}
			})
			t.Run("mismatch", func(t *testing.T) {
				out := pauseRun(t, a)
				wrong := confirm(out, true, "")
				wrong[0].ToolCallID = "call_other"
				var de *run.DecisionError
				if _, err := b.Continue(ctx, ContinueRequest{Kind: run.KindAgent, Component: "mailer", RunID: out.RunID, Tools: wrong}); !errors.As(err, &de) || len(de.Problems) != 2 {
					t.Fatalf("continue with a decision for another call: %v, want a DecisionError naming both", err)
				}
				undecided := out.Tools
				if _, err := b.Continue(ctx, ContinueRequest{Kind: run.KindAgent, Component: "mailer", RunID: out.RunID, Tools: undecided}); !errors.Is(err, run.ErrInvalid) {
					t.Fatalf("continue without confirmed: %v, want ErrInvalid", err)
				}
				if st, _, err := b.Cancel(ctx, out.RunID, "", true); err != nil || st != run.StatusCancelled {
					t.Fatalf("cancel: %s %v", st, err)
				}
			})
			t.Run("twice at once", func(t *testing.T) {
				out := pauseRun(t, a)
				var wg sync.WaitGroup
				var won, lost atomic.Int32
				for _, h := range []*Host{a, b, a, b} {
					wg.Go(func() {
						r, err := h.Continue(ctx, ContinueRequest{Kind: run.KindAgent, Component: "mailer", RunID: out.RunID, Tools: confirm(out, true, "")})
						switch {
						case err == nil:
							won.Add(1)
							r.Exec().Wait()
						case errors.Is(err, run.ErrNotPaused):
							lost.Add(1)
						default:
							t.Error(err)
						}
					})
				}
				wg.Wait()
				if won.Load() != 1 || lost.Load() != 3 {
					t.Fatalf("%d continues won, %d lost; want exactly one winner", won.Load(), lost.Load())
				}
			})
			t.Run("cancelled", func(t *testing.T) {
				out := pauseRun(t, a)
				st, known, err := b.Cancel(ctx, out.RunID, "", true)
				if err != nil || !known || st != run.StatusCancelled {
					t.Fatalf("cancel of a paused run: %s %v %v, want CANCELLED", st, known, err)
				}
				rec, err := sts[0].GetRun(ctx, out.RunID)
				if err != nil || rec.Status != run.StatusCancelled || rec.Output.Content != "Sending. " {
					t.Fatalf("stored: %+v %v, want CANCELLED with its partial content", rec, err)
				}
				last, err := store.LastEvent(ctx, sts[0], out.RunID)
				if err != nil || last.Type != run.EventRunCancelled || last.Index != out.Paused.NextEvent {
					t.Fatalf("last stored event %+v %v, want RunCancelled at %d", last, err, out.Paused.NextEvent)
				}
				if _, err := a.Continue(ctx, ContinueRequest{Kind: run.KindAgent, Component: "mailer", RunID: out.RunID, Tools: confirm(out, true, "")}); !errors.Is(err, run.ErrNotPaused) {
					t.Fatalf("continue of a cancelled run: %v, want ErrNotPaused", err)
				}
				if st, _, err := a.Cancel(ctx, out.RunID, "", true); err != nil || st != run.StatusCancelled {
					t.Fatalf("second cancel: %s %v", st, err)
				}
			})
			t.Run("cancelled where it paused", func(t *testing.T) {
				out := pauseRun(t, a)
				if st, _, err := a.Cancel(ctx, out.RunID, "", true); err != nil || st != run.StatusCancelled {
					t.Fatalf("cancel on the host it paused on: %s %v, want CANCELLED", st, err)
				}
			})
		})
	}
}

// TestPauseUserInputAndExternal: one turn calls a tool that waits for a person's
// values (set in its arguments before it runs), a tool executed outside kern (its
// result given on continue) and a tool that waits for nobody (it runs before the
// pause, once); the continue must give each what it needs, and the model reads
// every result in the calls' order.
func TestPauseUserInputAndExternal(t *testing.T) {
	var plain atomic.Int32
	post := tool.Func("post", "Posts a letter.", func(ctx context.Context, args struct {
		To      string `json:"to"`
		Address string `json:"address,omitempty"`
	}) (string, error) {
		return "posted to " + args.To + " at " + args.Address, nil
	}, tool.RequiresUserInput(run.UserInputField{Name: "address", FieldType: "str", Description: "Where to"}))
	lookup := tool.Func("lookup", "Looks up in a ledger kept elsewhere.", func(ctx context.Context, args struct{}) (string, error) {
		return "", errors.New("never called here")
	}, tool.ExternalExecution())
	clock := tool.Func("clock", "Tells the time.", func(ctx context.Context, args struct{}) (string, error) {
		plain.Add(1)
		return "noon", nil
	})
	m := &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		var got []string
		for _, msg := range req.Messages {
			if msg.Role == model.RoleTool {
				got = append(got, msg.Content)
			}
		}
		if len(got) > 0 {
			b, _ := json.Marshal(got)
			return scripted.Turn{Text: string(b)}
		}
		return scripted.Turn{ToolCalls: []model.ToolCall{
			{ID: "c1", Name: "post", Arguments: json.RawMessage(`{"to":"ada"}`)},
			{ID: "c2", Name: "lookup"},
			{ID: "c3", Name: "clock"},
		}}
	}}
	clerk := &agent.Agent{Name: "Clerk", Model: m, Tools: []tool.Tool{post, lookup, clock}}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := startHost(t, st, Options{Agents: []*agent.Agent{clerk}})
	r, err := h.Start(Request{Kind: run.KindAgent, Component: "clerk", Input: "go"})
	if err != nil {
		t.Fatal(err)
	}
	out := r.Exec().Wait()
	if out.Status != run.StatusPaused || len(out.Tools) != 2 || !out.Tools[0].RequiresUserInput ||
		len(out.Tools[0].UserInputSchema) != 1 || !out.Tools[1].ExternalExecutionRequired || plain.Load() != 1 {
		t.Fatalf("paused %s with %+v (clock ran %d times)", out.Status, out.Tools, plain.Load())
	}
	ctx := context.Background()
	req := ContinueRequest{Kind: run.KindAgent, Component: "clerk", RunID: out.RunID, Tools: []run.ToolExecution{
		{ToolCallID: "c1"}, {ToolCallID: "c2"},
	}}
	var de *run.DecisionError
	if _, err := h.Continue(ctx, req); !errors.As(err, &de) || len(de.Problems) != 2 {
		t.Fatalf("continue without the values and the result: %v", err)
	}
	req.Tools[0].UserInputSchema = []run.UserInputField{{Name: "address", Value: "1 Lovelace Row"}}
	req.Tools[1].Result = "balance 7"
	c, err := h.Continue(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	done := c.Exec().Wait()
	want := `["posted to ada at 1 Lovelace Row","balance 7","noon"]`
	if done.Status != run.StatusCompleted || done.Content != want || plain.Load() != 1 {
		t.Fatalf("continued run ended %s %q (clock ran %d times), want COMPLETED %s", done.Status, done.Content, plain.Load(), want)
	}
}

// TestAgentPausesInAStep: an agent in a workflow's top-level step that pauses on
// a call that requires confirmation pauses the workflow (its requirement in the
// step's executor_requirements), which another process continues: the agent goes
// on where it paused, and the workflow after it. An agent that would pause inside
// a container (a Parallel) fails its step instead.
func TestAgentPausesInAStep(t *testing.T) {
	for name, sts := range pauseStores(t) {
		t.Run(name, func(t *testing.T) {
			var sent atomic.Int32
			wf := func() *workflow.Workflow {
				return &workflow.Workflow{Name: "Post", Steps: []workflow.Step{
					workflow.AgentStep("draft", echo("drafter"), ""),
					workflow.AgentStep("mail", mailer(&sent), ""),
					workflow.AgentStep("after", echo("closer"), ""),
				}}
			}
			a := startHost(t, sts[0], Options{Replica: "A", Workflows: []*workflow.Workflow{wf()}})
			b := startHost(t, sts[1], Options{Replica: "B", Workflows: []*workflow.Workflow{wf()}})
			r, err := a.Start(Request{Kind: run.KindWorkflow, Component: "post", Input: "mail ada"})
			if err != nil {
				t.Fatal(err)
			}
			out := r.Exec().Wait()
			if out.Status != run.StatusPaused || len(out.StepRequirements) != 1 || !out.StepRequirements[0].RequiresExecutorInput ||
				len(out.StepRequirements[0].ExecutorRequirements) != 1 || len(out.StepResults) != 1 || sent.Load() != 0 {
				t.Fatalf("paused %s with %+v, steps %+v", out.Status, out.StepRequirements, out.StepResults)
			}
			var kinds []string
			for _, ev := range r.Exec().Log.Events() {
				if ev.Event.Pauses() || ev.Event == run.EventStepPaused {
					kinds = append(kinds, string(ev.Event))
				}
			}
			if strings.Join(kinds, ",") != "RunPaused,StepPaused,WorkflowPaused" {
				t.Fatalf("pause events %v", kinds)
			}
			d := out.StepRequirements[0]
			yes := true
			d.ExecutorRequirements[0].Confirmation = &yes // as Agno's RunRequirement.confirm() sets it
			c, err := b.Continue(context.Background(), ContinueRequest{Kind: run.KindWorkflow, Component: "post", RunID: out.RunID, Steps: []run.StepRequirement{d}})
			if err != nil {
				t.Fatal(err)
			}
			done := c.Exec().Wait()
			if done.Status != run.StatusCompleted || len(done.StepResults) != 3 || done.StepResults[1].Content != "Sending. done: sent to ada" || sent.Load() != 1 {
				t.Fatalf("continued: %s %+v (sent %d)", done.Status, done.StepResults, sent.Load())
			}
		})
	}
	t.Run("in a container", func(t *testing.T) {
		var sent atomic.Int32
		wf := &workflow.Workflow{Name: "Post", Steps: []workflow.Step{
			&workflow.Parallel{Name: "fan", Steps: []workflow.Step{workflow.AgentStep("mail", mailer(&sent), "")}},
		}}
		out, err := wf.Run(context.Background(), "mail ada")
		if err == nil || out.Status != run.StatusError || !strings.Contains(out.Error, "cannot pause") || sent.Load() != 0 {
			t.Fatalf("workflow ended %s %q (%v), tool ran %d times; want ERROR saying the step cannot pause", out.Status, out.Error, err, sent.Load())
		}
	})
}

// echo is an agent that answers with the last line of its input.
func echo(name string) *agent.Agent {
	return &agent.Agent{Name: name, Model: &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		in := req.Messages[len(req.Messages)-1].Content
		return scripted.Turn{Text: in[strings.LastIndex(in, "\n")+1:]}
	}}}
}

// reviewed is a workflow whose second step waits for a confirmation (onReject
// says what a rejection does) and whose third for a topic.
func reviewed(onReject workflow.OnReject) *workflow.Workflow {
	return &workflow.Workflow{Name: "Reviewed", Steps: []workflow.Step{
		workflow.AgentStep("draft", echo("drafter"), ""),
		workflow.AgentStep("publish", echo("publisher"), "").WithConfirmation("Publish it?", onReject),
		workflow.AgentStep("tweet", echo("tweeter"), "").WithUserInput("What about?", run.UserInputField{Name: "topic", FieldType: "str"}),
	}}
}

// TestWorkflowStepPauses: a workflow pauses before a step that requires
// confirmation (StepPaused, WorkflowPaused; PAUSED with its finished steps) and is
// continued by another host on the same database: confirmed, the step runs and
// the run pauses again before a step that asks for user input, which the step
// gets; rejected, the step is skipped or the run cancelled, as on_reject says.
func TestWorkflowStepPauses(t *testing.T) {
	for name, sts := range pauseStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			for _, onReject := range []workflow.OnReject{workflow.OnRejectSkip, workflow.OnRejectCancel} {
				a := startHost(t, sts[0], Options{Replica: "A", Workflows: []*workflow.Workflow{reviewed(onReject)}})
				b := startHost(t, sts[1], Options{Replica: "B", Workflows: []*workflow.Workflow{reviewed(onReject)}})
				start := func() *run.Output {
					t.Helper()
					r, err := a.Start(Request{Kind: run.KindWorkflow, Component: "reviewed", Input: "dragons"})
					if err != nil {
						t.Fatal(err)
					}
					out := r.Exec().Wait()
					evs := r.Exec().Log.Events()
					if out.Status != run.StatusPaused || len(out.StepResults) != 1 || len(out.StepRequirements) != 1 ||
						out.StepRequirements[0].StepName != "publish" || !out.StepRequirements[0].RequiresConfirmation ||
						evs[len(evs)-2].Event != run.EventStepPaused || evs[len(evs)-1].Event != run.EventWorkflowPaused {
						t.Fatalf("run: %s, steps %+v, requirements %+v, last events %s %s", out.Status, out.StepResults, out.StepRequirements,
							evs[len(evs)-2].Event, evs[len(evs)-1].Event)
					}
					return out
				}
				cont := func(out *run.Output, d run.StepRequirement) *run.Output {
					t.Helper()
					r, err := b.Continue(ctx, ContinueRequest{Kind: run.KindWorkflow, Component: "reviewed", RunID: out.RunID, Steps: []run.StepRequirement{d}})
					if err != nil {
						t.Fatal(err)
					}
					return r.Exec().Wait()
				}
				t.Run(string(onReject)+"/confirmed", func(t *testing.T) {
					out := start()
					d := out.StepRequirements[0]
					yes := true
					d.Confirmed = &yes
					again := cont(out, d)
					if again.Status != run.StatusPaused || len(again.StepResults) != 2 || again.StepResults[1].Content != "dragons" ||
						len(again.StepRequirements) != 1 || again.StepRequirements[0].StepName != "tweet" {
						t.Fatalf("after confirming: %s %+v %+v", again.Status, again.StepResults, again.StepRequirements)
					}
					if _, err := b.Continue(ctx, ContinueRequest{Kind: run.KindWorkflow, Component: "reviewed", RunID: out.RunID,
						Steps: []run.StepRequirement{{StepID: "tweet"}}}); !errors.Is(err, run.ErrInvalid) {
						t.Fatalf("continue without the topic: %v, want ErrInvalid", err)
					}
					done := cont(again, run.StepRequirement{StepID: "tweet", UserInput: map[string]any{"topic": "flight"}})
					if done.Status != run.StatusCompleted || len(done.StepResults) != 3 || done.Content != `{"topic":"flight"}` {
						t.Fatalf("after the user input: %s %q %+v", done.Status, done.Content, done.StepResults)
					}
				})
				t.Run(string(onReject)+"/rejected", func(t *testing.T) {
					out := start()
					d := out.StepRequirements[0]
					no := false
					d.Confirmed = &no
					after := cont(out, d)
					switch onReject {
					case workflow.OnRejectSkip:
						if after.Status != run.StatusPaused || len(after.StepResults) != 2 || after.StepRequirements[0].StepName != "tweet" {
							t.Fatalf("after a rejection (skip): %s %+v", after.Status, after.StepResults)
						}
						if st, _, err := a.Cancel(ctx, out.RunID, "", true); err != nil || st != run.StatusCancelled {
							t.Fatalf("cancel: %s %v", st, err)
						}
					case workflow.OnRejectCancel:
						if after.Status != run.StatusCancelled || !strings.Contains(after.Reason, "rejected") || len(after.StepResults) != 1 {
							t.Fatalf("after a rejection (cancel): %s %q %+v", after.Status, after.Reason, after.StepResults)
						}
					}
				})
			}
		})
	}
}

// TestPauseExpiry: a pause that expires ends the run as its tool (or step) says:
// CANCELLED, or rejected and continued (the model reads why), on SQLite and
// PostgreSQL (whose index of due pauses the host reads).
func TestPauseExpiry(t *testing.T) {
	for _, onExpiry := range []run.OnExpiry{run.ExpiryCancel, run.ExpiryReject} {
		for name, sts := range pauseStores(t) {
			t.Run(string(onExpiry)+"/"+name, func(t *testing.T) { testPauseExpiry(t, sts[0], onExpiry) })
		}
	}
}

func testPauseExpiry(t *testing.T, st store.Store, onExpiry run.OnExpiry) {
	var sent atomic.Int32
	a := mailer(&sent)
	a.Tools[0] = tool.With(a.Tools[0], tool.Expires(time.Millisecond, onExpiry))
	wf := reviewed(workflow.OnRejectSkip)
	wf.Steps[1].(*workflow.Task).Pause.Expiry, wf.Steps[1].(*workflow.Task).Pause.OnExpiry = time.Millisecond, onExpiry
	h := startHost(t, st, Options{Agents: []*agent.Agent{a}, Workflows: []*workflow.Workflow{wf}, ExpiryInterval: 10 * time.Millisecond})
	ctx := context.Background()
	var ids []string
	for _, req := range []Request{{Kind: run.KindAgent, Component: "mailer", Input: "mail ada"}, {Kind: run.KindWorkflow, Component: "reviewed", Input: "dragons"}} {
		r, err := h.Start(req)
		if err != nil {
			t.Fatal(err)
		}
		if out := r.Exec().Wait(); out.Status != run.StatusPaused || out.Paused.ExpiresAt.IsZero() || out.Paused.OnExpiry != onExpiry {
			t.Fatalf("paused %s, %+v", out.Status, out.Paused)
		}
		ids = append(ids, r.ID())
	}
	// The agent's run ends; the workflow's, rejected with skip, pauses again
	// before its next step (which cannot expire).
	want := []run.Status{run.StatusCancelled, run.StatusCancelled}
	if onExpiry == run.ExpiryReject {
		want = []run.Status{run.StatusCompleted, run.StatusPaused}
	}
	for i, id := range ids {
		eventually.Succeeds(t, 10*time.Second, func() error {
			rec, err := st.GetRun(ctx, id)
			if err != nil || rec.Status != want[i] || want[i] == run.StatusPaused && rec.Output.StepRequirements[0].StepName != "tweet" {
				return fmt.Errorf("run %d: %v %v, want %s", i, rec.Status, err, want[i])
			}
			if rec.Status == run.StatusCancelled && rec.Output.Reason != run.ReasonExpired ||
				rec.Status == run.StatusCompleted && rec.Output.Content != "Sending. done: "+run.ReasonExpired {
				return fmt.Errorf("run %d: %s %q %q", i, rec.Status, rec.Output.Reason, rec.Output.Content)
			}
			return nil
		})
	}
	if sent.Load() != 0 {
		t.Error("a tool ran without a confirmation")
	}
}

// TestRouteSelection: a Router that asks a person for its route pauses before
// it, offering its choices; continued with a selection, it runs the chosen steps;
// a choice it does not have, or two for a router that takes one, is refused.
func TestRouteSelection(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	say := func(text string) *agent.Agent { return &agent.Agent{Name: text, Model: scripted.New(text)} }
	wf := &workflow.Workflow{Name: "Routed", Steps: []workflow.Step{
		workflow.AgentStep("draft", say("draft"), ""),
		&workflow.Router{Name: "pick", Ask: &workflow.RouteQuestion{Message: "Where to?"}, Choices: []workflow.Step{
			workflow.AgentStep("blog", say("blogged"), ""), workflow.AgentStep("mail", say("mailed"), ""),
		}},
	}}
	h := startHost(t, st, Options{Workflows: []*workflow.Workflow{wf}})
	r, err := h.Start(Request{Kind: run.KindWorkflow, Component: "routed", Input: "go"})
	if err != nil {
		t.Fatal(err)
	}
	out := r.Exec().Wait()
	if out.Status != run.StatusPaused || len(out.StepRequirements) != 1 || !out.StepRequirements[0].RequiresRouteSelection ||
		strings.Join(out.StepRequirements[0].AvailableChoices, ",") != "blog,mail" {
		t.Fatalf("paused %s with %+v", out.Status, out.StepRequirements)
	}
	ctx := context.Background()
	for _, bad := range [][]string{nil, {"fax"}, {"blog", "mail"}} {
		d := out.StepRequirements[0]
		d.SelectedChoices = bad
		if _, err := h.Continue(ctx, ContinueRequest{Kind: run.KindWorkflow, Component: "routed", RunID: out.RunID, Steps: []run.StepRequirement{d}}); !errors.Is(err, run.ErrInvalid) {
			t.Fatalf("selection %v: %v, want ErrInvalid", bad, err)
		}
	}
	d := out.StepRequirements[0]
	d.SelectedChoices = []string{"mail"}
	c, err := h.Continue(ctx, ContinueRequest{Kind: run.KindWorkflow, Component: "routed", RunID: out.RunID, Steps: []run.StepRequirement{d}})
	if err != nil {
		t.Fatal(err)
	}
	if done := c.Exec().Wait(); done.Status != run.StatusCompleted || done.Content != "mailed" {
		t.Fatalf("after the selection: %s %q", done.Status, done.Content)
	}
}

// TestPauseInMemory: a host without a store keeps a paused run in memory (as
// durable as the process): it continues it, once, and cancels another, which
// ends CANCELLED with its partial output.
func TestPauseInMemory(t *testing.T) {
	var sent atomic.Int32
	h := startHost(t, nil, Options{Agents: []*agent.Agent{mailer(&sent)}})
	ctx := context.Background()
	pause := func() *run.Output {
		r, err := h.Start(Request{Kind: run.KindAgent, Component: "mailer", Input: "mail ada"})
		if err != nil {
			t.Fatal(err)
		}
		out := r.Exec().Wait()
		if out.Status != run.StatusPaused {
			t.Fatalf("run ended %s, want PAUSED", out.Status)
		}
		return out
	}
	out := pause()
	c, err := h.Continue(ctx, ContinueRequest{Kind: run.KindAgent, Component: "mailer", RunID: out.RunID, Tools: confirm(out, true, "")})
	if err != nil {
		t.Fatal(err)
	}
	if done := c.Exec().Wait(); done.Status != run.StatusCompleted || done.Content != "Sending. done: sent to ada" || sent.Load() != 1 {
		t.Fatalf("continued: %s %q", done.Status, done.Content)
	}
	if _, err := h.Continue(ctx, ContinueRequest{Kind: run.KindAgent, Component: "mailer", RunID: out.RunID, Tools: confirm(out, true, "")}); !errors.Is(err, run.ErrNotPaused) {
		t.Fatalf("second continue: %v, want ErrNotPaused", err)
	}
	out = pause()
	st, known, err := h.Cancel(ctx, out.RunID, "", true)
	if err != nil || !known || st != run.StatusCancelled {
		t.Fatalf("cancel of a paused run in memory: %s %v %v", st, known, err)
	}
	if got := h.Lookup(out.RunID).Output(); got.Status != run.StatusCancelled || got.Content != "Sending. " {
		t.Fatalf("cancelled run: %s %q, want CANCELLED with its partial output", got.Status, got.Content)
	}
	if _, err := h.Continue(ctx, ContinueRequest{Kind: run.KindAgent, Component: "mailer", RunID: out.RunID, Tools: confirm(out, true, "")}); !errors.Is(err, run.ErrNotPaused) {
		t.Fatalf("continue of a cancelled run: %v, want ErrNotPaused", err)
	}
}

// gated is a workflow whose condition waits for a person's confirmation:
// confirmed, it runs its steps ("published"); rejected, as onReject says — its
// else steps ("archived", when withElse), a skip, or a cancel.
func gated(onReject workflow.OnReject, withElse bool) *workflow.Workflow {
	say := func(name, text string) workflow.Step {
		return workflow.FuncStep(name, func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			return workflow.StepOutput{Content: text + ": " + in.Previous}, nil
		})
	}
	gate := &workflow.Condition{Name: "gate", Steps: []workflow.Step{say("publish", "published")}}
	if withElse {
		gate.Else = []workflow.Step{say("archive", "archived")}
	}
	return &workflow.Workflow{Name: "Gated", Steps: []workflow.Step{
		workflow.AgentStep("draft", echo("drafter"), ""),
		gate.WithConfirmation("Publish it?", onReject),
	}}
}

// TestConditionConfirmation: a top-level condition that asks for a confirmation
// pauses before it (StepPaused of a Condition, with its on_reject) and is
// continued by another host on the same database: confirmed, it runs its steps;
// rejected, it runs its else steps (on_reject else, the default), is skipped (no
// else steps, or on_reject skip) or ends the run CANCELLED (on_reject cancel).
func TestConditionConfirmation(t *testing.T) {
	cases := []struct {
		name     string
		onReject workflow.OnReject
		withElse bool
		confirm  bool
		status   run.Status
		content  string
	}{
		{"else/confirmed", "", true, true, run.StatusCompleted, "published: dragons"},
		{"else/rejected", "", true, false, run.StatusCompleted, "archived: dragons"},
		{"else/rejected-no-else", workflow.OnRejectElse, false, false, run.StatusCompleted, "dragons"},
		{"skip/rejected", workflow.OnRejectSkip, true, false, run.StatusCompleted, "dragons"},
		{"cancel/rejected", workflow.OnRejectCancel, true, false, run.StatusCancelled, "dragons"},
	}
	for name, sts := range pauseStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					a := startHost(t, sts[0], Options{Replica: "A", Workflows: []*workflow.Workflow{gated(tc.onReject, tc.withElse)}})
					b := startHost(t, sts[1], Options{Replica: "B", Workflows: []*workflow.Workflow{gated(tc.onReject, tc.withElse)}})
					r, err := a.Start(Request{Kind: run.KindWorkflow, Component: "gated", Input: "dragons"})
					if err != nil {
						t.Fatal(err)
					}
					out := r.Exec().Wait()
					wantReject := string(cmp.Or(tc.onReject, workflow.OnRejectElse))
					if out.Status != run.StatusPaused || len(out.StepRequirements) != 1 {
						t.Fatalf("run: %s, requirements %+v", out.Status, out.StepRequirements)
					}
					if req := out.StepRequirements[0]; req.StepName != "gate" || req.StepType != "Condition" ||
						!req.RequiresConfirmation || req.OnReject != wantReject || req.ConfirmationMessage != "Publish it?" {
						t.Fatalf("requirement %+v; want the gate's confirmation, on_reject %s", req, wantReject)
					}
					d := out.StepRequirements[0]
					d.Confirmed = &tc.confirm
					c, err := b.Continue(ctx, ContinueRequest{Kind: run.KindWorkflow, Component: "gated", RunID: out.RunID, Steps: []run.StepRequirement{d}})
					if err != nil {
						t.Fatal(err)
					}
					done := c.Exec().Wait()
					if done.Status != tc.status || done.Content != tc.content {
						t.Fatalf("after the decision: %s %q (%q); want %s %q", done.Status, done.Content, done.Reason, tc.status, tc.content)
					}
					if rec, err := sts[0].GetRun(ctx, out.RunID); err != nil || rec.Status != tc.status {
						t.Fatalf("stored run: %v, %v; want %s", rec, err, tc.status)
					}
				})
			}
		})
	}
}
