package agentos

import (
	"bufio"
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/workflow"
)

// stampModel streams n chunks, one every interval, each the Unix nanosecond at
// which it was yielded, so that a client measures how long each took to reach it.
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

// BenchmarkSSEDeliveryLatency measures, over HTTP, the time from a chunk's
// emission to its SSE frame read by the client (50 chunks, one every 2 ms, per
// run; one stream at a time), with no store and with SQLite.
func BenchmarkSSEDeliveryLatency(b *testing.B) {
	for _, name := range []string{"memory", "sqlite"} {
		b.Run(name, func(b *testing.B) {
			wf := &workflow.Workflow{Name: "bench", Steps: []workflow.Step{
				workflow.AgentStep("one", &agent.Agent{Name: "A", Model: stampModel{n: 50, interval: 2 * time.Millisecond}}, ""),
			}}
			srv, err := New(benchConfig(b, name, wf))
			if err != nil {
				b.Fatal(err)
			}
			ts := httptest.NewServer(srv.Handler())
			defer ts.Close()
			defer srv.Shutdown(context.Background())
			var lat []time.Duration
			b.ReportAllocs()
			for b.Loop() {
				resp, err := ts.Client().Post(ts.URL+"/workflows/bench/runs", formType, strings.NewReader("message=go&stream=true"))
				if err != nil {
					b.Fatal(err)
				}
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
				sc := bufio.NewScanner(resp.Body)
				sc.Buffer(nil, 1<<20)
				for sc.Scan() {
					line := sc.Text()
					if !strings.HasPrefix(line, "data: ") {
						continue
					}
					var ev run.Event
					if err := json.Unmarshal([]byte(line[len("data: "):]), &ev); err != nil {
						b.Fatal(err)
					}
					if ev.Event != run.EventRunContent {
						continue
					}
					if ns, err := strconv.ParseInt(strings.TrimSpace(ev.Content), 10, 64); err == nil {
						lat = append(lat, time.Duration(time.Now().UnixNano()-ns))
					}
				}
				resp.Body.Close()
			}
			ts.Client().CloseIdleConnections()
			if len(lat) > 0 {
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}

// benchConfig serves wf with no store ("memory") or on a SQLite file of the
// benchmark's own ("sqlite"), every event stored before it is sent; the store
// is closed once the benchmark ends.
func benchConfig(b *testing.B, name string, wf *workflow.Workflow) Config {
	cfg := Config{Workflows: []*workflow.Workflow{wf}}
	if name == "sqlite" {
		st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "kern.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		rec := store.NewRecorder(st, store.RecorderOptions{})
		b.Cleanup(func() { rec.Close() })
		cfg.Store, cfg.Recorder = st, rec
	}
	return cfg
}
