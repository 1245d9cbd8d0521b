package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// eventData is an event of about 200 bytes, as a streamed content chunk is.
var eventData = []byte(`{"event":"RunContent","run_id":"0197a3c2-0000-7000-8000-000000000000","created_at":1748779200,` +
	`"event_index":0,"agent_id":"writing-agent","session_id":"s","content":"` + strings.Repeat("x", 64) + `"}`)

// BenchmarkAppendEvents appends batches of 500 events (of 50 runs) of ~200 bytes.
func BenchmarkAppendEvents(b *testing.B) {
	s := openTemp(b)
	const batch, runs = 500, 50
	evs := make([]store.Event, batch)
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(batch * len(eventData)))
	for i := 0; b.Loop(); i++ {
		for j := range evs {
			evs[j] = store.Event{RunID: fmt.Sprintf("run-%d-%d", i, j%runs), Index: j / runs,
				Type: run.EventRunContent, Data: eventData, CreatedAt: now}
		}
		if err := s.AppendEvents(b.Context(), evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendEventsAs is BenchmarkAppendEvents fenced (see store.Fencer), as
// the recorder appends: batches of 500 events of 50 stored runs, each run's next 10.
func BenchmarkAppendEventsAs(b *testing.B) {
	s := openTemp(b)
	const batch, runs = 500, 50
	for j := range runs {
		r := &store.Run{ID: fmt.Sprintf("run-%d", j), Kind: run.KindAgent, Status: run.StatusRunning,
			Replica: "bench", LeaseUntil: time.Now().Add(time.Hour)}
		if err := s.CreateRun(b.Context(), r); err != nil {
			b.Fatal(err)
		}
	}
	evs := make([]store.Event, batch)
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(batch * len(eventData)))
	for i := 0; b.Loop(); i++ {
		for j := range evs {
			evs[j] = store.Event{RunID: fmt.Sprintf("run-%d", j%runs), Index: i*batch/runs + j/runs,
				Type: run.EventRunContent, Data: eventData, CreatedAt: now}
		}
		if lost, err := s.AppendEventsAs(b.Context(), "bench", evs); err != nil || len(lost) > 0 {
			b.Fatal(lost, err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// lifecycleEvents is the events of the core workload's run: a two-step workflow,
// 20 chunks a step, every event kept.
const lifecycleEvents = 52

// BenchmarkRunLifecycle persists whole runs from many goroutines: CreateRun,
// AppendEvents of 52 events, UpdateRun to COMPLETED.
func BenchmarkRunLifecycle(b *testing.B) {
	s := openTemp(b)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(64)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		evs := make([]store.Event, lifecycleEvents)
		for pb.Next() {
			id := fmt.Sprintf("run-%d", next.Add(1))
			r := &store.Run{ID: id, SessionID: "bench", Kind: run.KindWorkflow, ComponentID: "article",
				Status: run.StatusRunning, Input: "Write a story about a dragon.", Replica: "bench",
				LeaseUntil: time.Now().Add(time.Minute)}
			r.Output = run.Output{RunID: id, Status: run.StatusRunning, Input: r.Input}
			if err := s.CreateRun(b.Context(), r); err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			for j := range evs {
				evs[j] = store.Event{RunID: id, Index: j, Type: run.EventRunContent, Data: eventData, CreatedAt: now}
			}
			if err := s.AppendEvents(b.Context(), evs); err != nil {
				b.Fatal(err)
			}
			r.Status, r.Output.Status = run.StatusCompleted, run.StatusCompleted
			r.Output.Content = strings.Repeat("word ", 100)
			r.Output.StepResults = []run.StepResult{{StepName: "research", Content: "facts"}, {StepName: "writing", Content: "story"}}
			if err := s.UpdateRun(b.Context(), r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "runs/s")
	if fi, err := os.Stat(s.Path() + "-wal"); err == nil {
		b.ReportMetric(float64(fi.Size())/(1<<20), "wal-MiB")
	}
}

// BenchmarkListenIdlePoll measures one poll of a listener when nothing was stored
// since the last: what every listener pays every poll interval, on a file that
// holds many notices already.
func BenchmarkListenIdlePoll(b *testing.B) {
	s := openTemp(b)
	for i := range 1000 {
		if err := s.CancelRun(b.Context(), fmt.Sprintf("run-%d", i), "requested"); err != nil {
			b.Fatal(err)
		}
	}
	var heard int
	l, err := s.newListener(&store.Notifications{Cancel: func(string, string) { heard++ }})
	if err != nil {
		b.Fatal(err)
	}
	defer l.close()
	if err := l.startOnce(); err != nil {
		b.Fatal(err)
	}
	heard = 0 // the pending intents, delivered on starting
	b.ReportAllocs()
	for b.Loop() {
		if err := l.poll(); err != nil {
			b.Fatal(err)
		}
	}
	if heard > 0 {
		b.Fatalf("%d cancels heard in idle polls", heard)
	}
}

// BenchmarkCancelAcrossStores measures the time from CancelRun on one store to
// the cancel's delivery by the listener of another store on the same file (as
// another process would open it), at the default poll interval: the commit, then
// half a poll interval on average. Each cancel comes at a random moment of the
// poll interval (the wait for it is not timed), as cancels do: a loop of cancels
// back to back would each wait for a whole interval.
func BenchmarkCancelAcrossStores(b *testing.B) {
	path := filepath.Join(b.TempDir(), "kern.db")
	executor, err := Open(b.Context(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer executor.Close()
	other, err := Open(b.Context(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer other.Close()
	heard := make(chan string, 100)
	ctx, stop := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() {
		done <- executor.Listen(ctx, store.Notifications{Cancel: func(id, _ string) { heard <- id }})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	await := func(id string) {
		for got := range heard {
			if got == id {
				return
			}
		}
	}
	if err := other.CancelRun(b.Context(), "warm", ""); err != nil {
		b.Fatal(err)
	}
	await("warm")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		time.Sleep(rand.N(DefaultPollInterval)) // a random phase, not a synchronisation
		b.StartTimer()
		id := fmt.Sprintf("run-%d", i)
		if err := other.CancelRun(b.Context(), id, "requested"); err != nil {
			b.Fatal(err)
		}
		await(id)
	}
}

// BenchmarkAppendLongRuns appends one event to each of 50 runs per call, as a flush
// does when runs stream a word at a time, on runs that already hold pages pages
// each: the cost of a flush must not grow with how long the runs are.
func BenchmarkAppendLongRuns(b *testing.B) {
	for _, pages := range []int{10, 2000} {
		b.Run(fmt.Sprintf("pages=%d", pages), func(b *testing.B) {
			s := openTemp(b)
			const runs = 50
			evs := make([]store.Event, runs)
			now := time.Now()
			next := 0
			flush := func() {
				for j := range evs {
					evs[j] = store.Event{RunID: fmt.Sprintf("run-%d", j), Index: next,
						Type: run.EventRunContent, Data: eventData, CreatedAt: now}
				}
				next++
				if err := s.AppendEvents(b.Context(), evs); err != nil {
					b.Fatal(err)
				}
			}
			for range pages {
				flush()
			}
			b.ReportAllocs()
			for b.Loop() {
				flush()
			}
		})
	}
}

// BenchmarkEnqueue queues runs one at a time (each Enqueue waits for its
// commit), and from 64 goroutines at once (their commits grouped).
func BenchmarkEnqueue(b *testing.B) {
	job := func(id string) *store.Job {
		return &store.Job{ID: id, SessionID: "bench", Kind: run.KindWorkflow, ComponentID: "article",
			Input: "Write a story about a dragon.", Output: run.Output{RunID: id, WorkflowID: "article"}}
	}
	b.Run("serial", func(b *testing.B) {
		s := openTemp(b)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := s.Enqueue(b.Context(), job(fmt.Sprintf("run-%d", i))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		s := openTemp(b)
		var next atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(64)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Enqueue(context.Background(), job(fmt.Sprintf("run-%d", next.Add(1)))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("queued-count", func(b *testing.B) { // the host's bound, checked before each Enqueue
		s := openTemp(b)
		for i := range 1000 {
			if err := s.Enqueue(b.Context(), job(fmt.Sprintf("run-%d", i))); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Queued(b.Context(), 1024); err != nil {
				b.Fatal(err)
			}
		}
	})
}
