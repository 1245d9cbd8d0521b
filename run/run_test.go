package run_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/run"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewID(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	prev := ""
	for range 10000 { // many to a millisecond
		id := run.NewID()
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 || seen[id] {
			t.Fatalf("bad or repeated id %q: %v", id, err)
		}
		if id <= prev {
			t.Fatalf("id %q made after %q sorts before it", id, prev)
		}
		prev = id
		if sec, _ := u.Time().UnixTime(); time.Since(time.Unix(sec, 0)) > time.Hour {
			t.Fatalf("id %q carries time %d", id, sec)
		}
		seen[id] = true
	}
}

func TestSlug(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"Research Agent":           "research-agent",
		"  Article -- Workflow!  ": "article-workflow",
		"Étape 2":                  "étape-2",
		"":                         "",
	}
	for in, want := range tests {
		if got := run.Slug(in); got != want {
			t.Errorf("Slug(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEventJSON(t *testing.T) {
	t.Parallel()
	zero := 0
	ev := &run.Event{Event: run.EventRunContent, RunID: "r", CreatedAt: 1700000000, EventIndex: 3,
		Origin: &run.Origin{WorkflowRunID: "w", StepName: "research", StepIndex: &zero}, Content: "hi"}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"event":"RunContent","run_id":"r","created_at":1700000000,"event_index":3,"workflow_run_id":"w","step_name":"research","step_index":0,"content":"hi"}`
	if string(b) != want {
		t.Errorf("JSON:\n got %s\nwant %s", b, want)
	}
	var back0 run.Event
	if err := json.Unmarshal(b, &back0); err != nil || back0.StepName != "research" || *back0.StepIndex != 0 || back0.Detail != nil {
		t.Errorf("round trip = %+v, %v", back0, err)
	}

	// Detail's fields sit at the top level too, and come back.
	yes := true
	ev = &run.Event{Event: run.EventConditionExecutionStarted, RunID: "r", Origin: &run.Origin{WorkflowID: "w"},
		Detail: &run.Detail{ConditionResult: &yes, StepResults: []run.StepResult{{StepName: "a", Content: "x"}}}}
	b, _ = json.Marshal(ev)
	want = `{"event":"ConditionExecutionStarted","run_id":"r","created_at":0,"event_index":0,"workflow_id":"w","condition_result":true,"step_results":[{"step_name":"a","content":"x"}]}`
	if string(b) != want {
		t.Errorf("JSON with detail:\n got %s\nwant %s", b, want)
	}
	var back1 run.Event
	if err := json.Unmarshal(b, &back1); err != nil || back1.Detail == nil || !*back1.Detail.ConditionResult || back1.WorkflowID != "w" {
		t.Errorf("round trip with detail = %+v, %v", back1, err)
	}

	m := run.Metrics{Duration: 1500 * time.Millisecond, TimeToFirstToken: 250 * time.Millisecond, InputTokens: 1, OutputTokens: 2, TotalTokens: 3}
	b, _ = json.Marshal(m)
	if string(b) != `{"input_tokens":1,"output_tokens":2,"total_tokens":3,"duration":1.5,"time_to_first_token":0.25}` {
		t.Errorf("metrics JSON = %s", b)
	}
	var back run.Metrics
	if err := json.Unmarshal(b, &back); err != nil || back != m {
		t.Errorf("metrics round trip = %+v, %v", back, err)
	}
}

func TestTerminal(t *testing.T) {
	t.Parallel()
	for _, st := range []run.Status{run.StatusCompleted, run.StatusCancelled, run.StatusError} {
		if !st.Terminal() {
			t.Errorf("%s not terminal", st)
		}
	}
	for _, st := range []run.Status{run.StatusPending, run.StatusRunning, run.StatusPaused} {
		if st.Terminal() {
			t.Errorf("%s terminal", st)
		}
	}
	for k, want := range map[run.Kind][3]run.EventType{
		run.KindAgent:    {run.EventRunCompleted, run.EventRunCancelled, run.EventRunError},
		run.KindWorkflow: {run.EventWorkflowCompleted, run.EventWorkflowCancelled, run.EventWorkflowError},
	} {
		for i, st := range []run.Status{run.StatusCompleted, run.StatusCancelled, run.StatusError} {
			if got := k.TerminalEvent(st); got != want[i] || !got.Terminal() {
				t.Errorf("kind %s, %s: %s", k, st, got)
			}
		}
	}
}

func TestRegistryMemoryIsBounded(t *testing.T) {
	t.Parallel()
	reg := &run.Registry{MaxMemory: 10}
	for i := range 100 {
		reg.Cancel(t.Context(), fmt.Sprint("intent-", i), "x")
		e, _ := engine.Begin(reg, t.Context(), fmt.Sprint("run-", i), nil)
		e.Finish(nil)
		e.Close()
	}
	// The oldest are forgotten: an old intent no longer cancels, an old run is unknown.
	e, _ := engine.Begin(reg, t.Context(), "intent-0", nil)
	if e.Ctx.Err() != nil {
		t.Error("an intent older than MaxMemory still applied")
	}
	e.Finish(nil)
	e.Close()
	if st, _ := reg.Cancel(t.Context(), "run-0", "x"); st != run.StatusPending {
		t.Errorf("a run older than MaxMemory still reported %s", st)
	}
	if st, _ := reg.Cancel(t.Context(), "run-99", "x"); st != run.StatusCompleted {
		t.Errorf("a recent run reported %s", st)
	}

	// Memory is checked when an intent is used, not only when another is kept.
	reg = &run.Registry{Memory: time.Nanosecond}
	now := time.Now()
	run.SetRegistryClock(reg, func() time.Time { return now })
	reg.Cancel(t.Context(), "old", "x")
	now = now.Add(time.Millisecond) // the intent ages past Memory
	e, _ = engine.Begin(reg, t.Context(), "old", nil)
	if e.Ctx.Err() != nil {
		t.Error("an expired intent still applied")
	}
	e.Finish(nil)
	e.Close()
	now = now.Add(time.Millisecond) // the end status ages past Memory
	if st, _ := reg.Cancel(t.Context(), "old", "x"); st != run.StatusPending {
		t.Errorf("an expired end status still reported: %s", st)
	}
}

// TestRegistryMemoryIsBoundedInBytes: long ids and reasons are forgotten, oldest
// first, once those kept hold more than MaxMemoryBytes, however few they are.
func TestRegistryMemoryIsBoundedInBytes(t *testing.T) {
	t.Parallel()
	reg := &run.Registry{MaxMemoryBytes: 10_000}
	long := func(i int) string { return fmt.Sprintf("%04d-%s", i, strings.Repeat("x", 995)) } // 1,000 bytes
	for i := range 20 {
		reg.Cancel(t.Context(), long(i), "x")
	}
	for _, c := range []struct {
		id      string
		applied bool
	}{{long(0), false}, {long(10), false}, {long(11), true}, {long(19), true}} {
		e, err := engine.Begin(reg, t.Context(), c.id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if applied := e.Ctx.Err() != nil; applied != c.applied {
			t.Errorf("intent %.4s applied: %v, want %v", c.id, applied, c.applied)
		}
		e.Finish(nil)
		e.Close()
	}
}

func BenchmarkSlug(b *testing.B) {
	for _, name := range []string{"research", "Research Agent"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				run.Slug(name)
			}
		})
	}
}

// TestLogManyEvents checks indexes and pointers across many segments.
