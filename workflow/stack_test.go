package workflow_test

import (
	"context"
	"iter"
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// deepSessions is a recorder whose session reads need a deep stack, as a store's
// can (SQLite in pure Go takes more than 8 KiB), depth KiB of it.
type deepSessions struct{ depth int }

func (deepSessions) Begin(context.Context, *run.Exec) error { return nil }
func (deepSessions) End(context.Context, *run.Exec) error   { return nil }
func (d deepSessions) LoadState(context.Context, string) (map[string]any, error) {
	burnStack(d.depth)
	return nil, nil
}
func (deepSessions) SaveState(context.Context, string, *run.Exec, map[string]any) error { return nil }
func (deepSessions) History(context.Context, string, run.Kind, string, int) ([]*run.Output, error) {
	return nil, nil
}

// burnStack takes n KiB of stack.
//
//go:noinline
func burnStack(n int) byte {
	var b [1024]byte
	b[n%len(b)] = byte(n)
	if n <= 1 {
		return b[0]
	}
	return burnStack(n-1) + b[(n*7)%len(b)]
}

// parkedModel signals parked as its stream starts, then waits for the run's end.
type parkedModel struct{ parked chan<- struct{} }

func (m parkedModel) Stream(ctx context.Context, _ *model.Request) iter.Seq2[model.Chunk, error] {
	return func(yield func(model.Chunk, error) bool) {
		m.parked <- struct{}{}
		<-ctx.Done()
		yield(model.Chunk{}, context.Cause(ctx))
	}
}

// stackPerRun returns the goroutine stack memory each of n workflow runs holds
// while its agent waits in its model's stream, the runs' session state read
// through a recorder whose reads take depth KiB of stack.
func stackPerRun(t *testing.T, n, depth int) float64 {
	parked := make(chan struct{}, n)
	a := &agent.Agent{Name: "Parked", Model: parkedModel{parked}}
	wf := &workflow.Workflow{Name: "Parked", Recorder: deepSessions{depth},
		Steps: []workflow.Step{workflow.AgentStep("wait", a, "wait")}}
	stacks := []metrics.Sample{{Name: "/memory/classes/heap/stacks:bytes"}}
	runtime.GC()
	metrics.Read(stacks)
	before := stacks[0].Value.Uint64()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	xs := make([]*run.Exec, n)
	for i := range xs {
		x, err := wf.Start(ctx, "in", run.WithSessionID("s"))
		if err != nil {
			t.Fatal(err)
		}
		xs[i] = x
	}
	for range n {
		<-parked
	}
	runtime.GC() // shrinks a stack used to less than a quarter, by half: once
	metrics.Read(stacks)
	after := stacks[0].Value.Uint64()
	cancel()
	for _, x := range xs {
		<-x.Done()
	}
	return (float64(after) - float64(before)) / float64(n)
}

// TestStoreReadsLeaveRunStacksSmall: a run's goroutine stays parked in its model's
// stream for as long as the run streams; a store read made on it as the run began
// (its session's state) must not leave it a stack grown for that read.
func TestStoreReadsLeaveRunStacksSmall(t *testing.T) {
	const n = 100
	shallow := stackPerRun(t, n, 1)
	deep := stackPerRun(t, n, 256)
	if deep > shallow+4<<10 {
		t.Errorf("stack per parked run: %.0f B after a session read taking 256 KiB of stack, %.0f B after one taking 1 KiB", deep, shallow)
	}
}
