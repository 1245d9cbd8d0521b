package host

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/postgres"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/workflow"
)

// volatile is a store that does not keep cancel intents: a host on it cancels a
// run executing here without storing the intent first, as hosts did before a
// local cancel was made durable. Its runs, events and fencing are the store's.
type volatile struct {
	store.Store
	store.Fencer
	store.RunsWriter
}

// volatileEnds is volatile on a store that writes a run's last events and its end
// in one transaction (store.EndWriter), as it does without the cancel's intent.
type volatileEnds struct {
	volatile
	store.EndWriter
}

// BenchmarkHostCancel measures what a durable local cancel costs: the time from
// Host.Cancel (wait) of a streaming run executing here to its answer, which comes
// once the run's end is stored, on each store with the intent stored first
// ("durable") and without it ("volatile", the store's Canceller hidden).
func BenchmarkHostCancel(b *testing.B) {
	stores := map[string]func(b *testing.B) store.Store{
		"sqlite": func(b *testing.B) store.Store {
			st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "kern.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		},
		"postgres": func(b *testing.B) store.Store {
			pgtest.Need(b)
			st, err := postgres.Open(context.Background(), pgtest.URL(), postgres.WithSchema(pgtest.Schema(b)))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		for _, durable := range []bool{true, false} {
			mode := map[bool]string{true: "durable", false: "volatile"}[durable]
			b.Run(name+"/"+mode, func(b *testing.B) {
				st := stores[name](b)
				if !durable {
					v := volatile{st, st.(store.Fencer), st.(store.RunsWriter)}
					st = v
					if ew, ok := v.Store.(store.EndWriter); ok {
						st = volatileEnds{v, ew}
					}
				}
				wf := &workflow.Workflow{Name: "bench", Steps: []workflow.Step{workflow.AgentStep("write",
					&agent.Agent{Name: "writer", Model: &scripted.Model{
						Turns: []scripted.Turn{{Text: strings.Repeat("word ", 1000)}},
						Delay: 10 * time.Millisecond,
					}}, "")}}
				h, err := New(st, Options{Workflows: []*workflow.Workflow{wf}, KeepRuns: 1})
				if err != nil {
					b.Fatal(err)
				}
				defer h.Close()
				ctx := context.Background()
				var lat []time.Duration
				for b.Loop() {
					r, err := h.Start(Request{Kind: run.KindWorkflow, Component: "bench", Input: "go"})
					if err != nil {
						b.Fatal(err)
					}
					_ = r.Exec().Log.Follow(ctx, 0, func(ev *run.Event) bool { return ev.Event != run.EventRunContent })
					start := time.Now()
					st, _, err := h.Cancel(ctx, r.ID(), "", true)
					lat = append(lat, time.Since(start))
					if err != nil || st != run.StatusCancelled {
						b.Fatalf("cancel: %s, %v", st, err)
					}
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			})
		}
	}
}
