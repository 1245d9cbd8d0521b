package store_test

import (
	"context"
	"iter"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/workflow"
)

// stampModel streams n chunks, one every interval, each the Unix nanosecond at
// which it was yielded: a reader of the run's events measures how long each took
// to reach it.
type stampModel struct {
	n        int
	interval time.Duration
}

func (m stampModel) Stream(ctx context.Context, _ *model.Request) iter.Seq2[model.Chunk, error] {
	return func(yield func(model.Chunk, error) bool) {
		t := time.NewTicker(m.interval)
		defer t.Stop()
		for i := range m.n {
			select {
			case <-t.C:
			case <-ctx.Done():
				yield(model.Chunk{}, ctx.Err())
				return
			}
			c := model.Chunk{Text: strconv.FormatInt(time.Now().UnixNano(), 10) + " "}
			if i == m.n-1 {
				c.FinishReason = model.FinishStop
			}
			if !yield(c, nil) {
				return
			}
		}
	}
}

// stampLatency returns how long ago the chunk ev carries was yielded, if it is one.
func stampLatency(ev *run.Event) (time.Duration, bool) {
	if ev.Event != run.EventRunContent {
		return 0, false
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(ev.Content), 10, 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(time.Now().UnixNano() - ns), true
}

// BenchmarkDeliveryLatency measures the time from a chunk's emission to its reader
// (50 chunks, one every 2 ms, per run; one run at a time): "live" follows the log
// as it is emitted (what clients got before the durable watermark), "durable" as
// the store acknowledges it (what clients get now), for the memory case (no
// store: both the same) and each store.
func BenchmarkDeliveryLatency(b *testing.B) {
	cases := backends(b)
	cases["memory"] = nil
	for _, name := range []string{"memory", "sqlite", "postgres"} {
		for _, mode := range []string{"live", "durable"} {
			b.Run(name+"/"+mode, func(b *testing.B) {
				w := &workflow.Workflow{Name: "bench", Steps: []workflow.Step{
					workflow.AgentStep("one", &agent.Agent{Name: "A", Model: stampModel{n: 50, interval: 2 * time.Millisecond}}, ""),
				}}
				if open := cases[name]; open != nil {
					rec := store.NewRecorder(open(b), store.RecorderOptions{})
					defer rec.Close()
					w.Recorder = rec
				}
				var lat []time.Duration
				read := func(ev *run.Event) bool {
					if d, ok := stampLatency(ev); ok {
						lat = append(lat, d)
					}
					return true
				}
				b.ReportAllocs()
				for b.Loop() {
					x, err := w.Start(context.Background(), "go")
					if err != nil {
						b.Fatal(err)
					}
					if mode == "live" {
						err = x.Log.Follow(context.Background(), 0, read)
					} else {
						_, err = x.Log.FollowDurable(context.Background(), 0, read)
					}
					if err != nil {
						b.Fatal(err)
					}
					x.Wait()
				}
				reportLatency(b, lat)
			})
		}
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
