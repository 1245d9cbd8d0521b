package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// benchEvent is a RunContent event of about 200 bytes, as a streamed chunk is.
var benchEvent = []byte(`{"event":"RunContent","run_id":"0197a5b2-4c1e-7d3a-9f00-1234567890ab","created_at":1748779200,"event_index":17,` +
	`"agent_id":"writing-agent","session_id":"s-1","content":"` + strings.Repeat("dragon ", 5) + `"}`)

// coreRun stores one run of the core workload: created RUNNING, 52 events (2 steps
// × 20 chunks and their start, step and end events), ended COMPLETED.
func coreRun(ctx context.Context, s store.Store, id string, evs []store.Event) error {
	r := &store.Run{ID: id, SessionID: "s-1", Kind: run.KindWorkflow, ComponentID: "article",
		Status: run.StatusRunning, Input: "Write a very long story about a dragon who learns to code."}
	if err := s.CreateRun(ctx, r); err != nil {
		return err
	}
	for i := range evs {
		evs[i] = store.Event{RunID: id, Index: i, Type: run.EventRunContent, Data: benchEvent}
	}
	if err := s.AppendEvents(ctx, evs); err != nil {
		return err
	}
	r.Status = run.StatusCompleted
	r.Output = run.Output{RunID: id, Status: run.StatusCompleted, Content: strings.Repeat("dragon ", 40)}
	return s.UpdateRun(ctx, r)
}

// BenchmarkRunLifecycle measures runs persisted per second from many concurrent
// runs: CreateRun, AppendEvents of 52 events of ~200 B, UpdateRun.
func BenchmarkRunLifecycle(b *testing.B) {
	s := openTest(b)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8) // 8 runs per core, more than the pool's connections
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		evs := make([]store.Event, 52)
		for pb.Next() {
			id := fmt.Sprintf("run-%d", n.Add(1))
			if err := coreRun(b.Context(), s, id, evs); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
}

// BenchmarkAppendEvents measures batches of 500 events (10 runs × 50) from one
// caller, as the runtime's recorder writes them.
func BenchmarkAppendEvents(b *testing.B) {
	s := openTest(b)
	const runs, per = 10, 50
	evs := make([]store.Event, runs*per)
	b.ReportAllocs()
	b.SetBytes(int64(len(evs) * len(benchEvent)))
	for i := 0; b.Loop(); i++ {
		for r := range runs {
			id := fmt.Sprintf("run-%d-%d", i, r)
			for k := range per {
				evs[r*per+k] = store.Event{RunID: id, Index: k, Type: run.EventRunContent, Data: benchEvent}
			}
		}
		if err := s.AppendEvents(b.Context(), evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendEventsAs is BenchmarkAppendEvents fenced (see store.Fencer), as
// the recorder appends: batches of 500 events of 10 stored runs, each run's next 50.
func BenchmarkAppendEventsAs(b *testing.B) {
	s := openTest(b)
	const runs, per = 10, 50
	for r := range runs {
		rn := &store.Run{ID: fmt.Sprintf("run-%d", r), Kind: run.KindAgent, Status: run.StatusRunning,
			Replica: "bench", LeaseUntil: time.Now().Add(time.Hour)}
		if err := s.CreateRun(b.Context(), rn); err != nil {
			b.Fatal(err)
		}
	}
	evs := make([]store.Event, runs*per)
	b.ReportAllocs()
	b.SetBytes(int64(len(evs) * len(benchEvent)))
	for i := 0; b.Loop(); i++ {
		for r := range runs {
			id := fmt.Sprintf("run-%d", r)
			for k := range per {
				evs[r*per+k] = store.Event{RunID: id, Index: i*per + k, Type: run.EventRunContent, Data: benchEvent}
			}
		}
		if lost, err := s.AppendEventsAs(b.Context(), "bench", evs); err != nil || len(lost) > 0 {
			b.Fatal(lost, err)
		}
	}
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
}
