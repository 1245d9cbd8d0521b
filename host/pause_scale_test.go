package host

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/postgres"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/tool"
)

// pauseMany starts n runs of the mailer on h, at most 16 at once, and returns
// their outputs once each has paused.
func pauseMany(t testing.TB, h *Host, n int) []*run.Output {
	outs := make([]*run.Output, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r, err := h.Start(Request{Kind: run.KindAgent, Component: "mailer", Input: "mail ada"})
			if err != nil {
				t.Error(err)
				return
			}
			outs[i] = r.Exec().Wait()
		})
	}
	wg.Wait()
	return outs
}

// idle returns the goroutines and live heap bytes after a collection.
func idle() (int, uint64) {
	var ms runtime.MemStats
	for range 2 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapAlloc
}

// TestPausedRunsHoldNothing: 1,000 paused runs in one host hold no goroutine and
// no memory: the goroutines and the live heap after they paused are what they
// were idle, within noise.
func TestPausedRunsHoldNothing(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var sent atomic.Int32
	h := startHost(t, st, Options{Agents: []*agent.Agent{mailer(&sent)}})
	pauseMany(t, h, 20) // warm the pools, the caches, the statements
	g0, heap0 := idle()
	outs := pauseMany(t, h, 1000)
	for _, o := range outs {
		if o == nil || o.Status != run.StatusPaused {
			t.Fatalf("a run did not pause: %+v", o)
		}
	}
	// A run's last goroutines (its end's handling, the store's write of it) may
	// still be on their way out as its output arrives: wait for them, not for the
	// goroutines a paused run would hold for good.
	var g1 int
	var heap1 uint64
	eventually.Succeeds(t, 10*time.Second, func() error {
		if g1, heap1 = idle(); g1 > g0+2 {
			return fmt.Errorf("1,000 paused runs hold %d goroutines more than idle", g1-g0)
		}
		return nil
	})
	t.Logf("idle: %d goroutines, %.1f MB heap; with 1,000 paused runs: %d goroutines, %.1f MB heap",
		g0, float64(heap0)/1e6, g1, float64(heap1)/1e6)
	// Noise: the store's statement and page caches; a paused run holding its
	// state (a few KB) would show as several MB.
	if heap1 > heap0+2<<20 {
		t.Errorf("1,000 paused runs hold %.1f MB more heap than idle", float64(heap1-heap0)/1e6)
	}
	if sent.Load() != 0 {
		t.Error("a tool ran before it was confirmed")
	}
}

// TestMeasurePauses reports, on SQLite and PostgreSQL, the latency of a continue
// (the request to the confirmed tool running) p50/p99, what a pause costs (a run
// that pauses against one of the same shape whose tool needs no confirmation),
// and paused runs per GB of database. It runs with KERN_MEASURE=1 only.
func TestMeasurePauses(t *testing.T) {
	if os.Getenv("KERN_MEASURE") == "" {
		t.Skip("set KERN_MEASURE=1 to measure pauses")
	}
	const n = 300
	dir := t.TempDir()
	stores := map[string]func() store.Store{
		"sqlite": func() store.Store {
			st, err := sqlite.Open(context.Background(), filepath.Join(dir, "kern.db"))
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
	}
	if pgtest.Ping(context.Background()) == nil {
		schema := pgtest.Schema(t)
		stores["postgres"] = func() store.Store {
			st, err := postgres.Open(context.Background(), pgtest.URL(), postgres.WithSchema(schema))
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
	}
	for name, open := range stores {
		st := open()
		ran := make(chan time.Time, n)
		send := tool.Func("send_mail", "Sends a mail.", func(ctx context.Context, args struct {
			To string `json:"to"`
		}) (string, error) {
			ran <- time.Now()
			return "sent", nil
		}, tool.RequiresConfirmation())
		free := tool.Func("send_mail", "Sends a mail.", func(ctx context.Context, args struct {
			To string `json:"to"`
		}) (string, error) {
			return "sent", nil
		})
		m := &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
			if req.Messages[len(req.Messages)-1].Role == model.RoleTool {
				return scripted.Turn{Text: "done"}
			}
			return scripted.Turn{Text: "Sending. ", ToolCalls: []model.ToolCall{{ID: "call_1", Name: "send_mail", Arguments: json.RawMessage(`{"to":"ada"}`)}}}
		}}
		h, err := New(st, Options{Logger: slog.New(slog.DiscardHandler), Agents: []*agent.Agent{
			{Name: "mailer", Model: m, Tools: []tool.Tool{send}},
			{Name: "free", Model: m, Tools: []tool.Tool{free}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		timeRuns := func(comp string) (time.Duration, []*run.Output) {
			start := time.Now()
			var outs []*run.Output
			for range n {
				r, err := h.Start(Request{Kind: run.KindAgent, Component: comp, Input: "mail ada"})
				if err != nil {
					t.Fatal(err)
				}
				outs = append(outs, r.Exec().Wait())
			}
			return time.Since(start) / n, outs
		}
		size0 := dbSize(t, name, st, dir)
		paused, outs := timeRuns("mailer")
		size1 := dbSize(t, name, st, dir)
		plain, _ := timeRuns("free")
		var lat []time.Duration
		for _, o := range outs {
			d := o.Tools[0]
			yes := true
			d.Confirmed = &yes
			t0 := time.Now()
			r, err := h.Continue(ctx, ContinueRequest{Kind: run.KindAgent, Component: "mailer", RunID: o.RunID, Tools: []run.ToolExecution{d}})
			if err != nil {
				t.Fatal(err)
			}
			lat = append(lat, (<-ran).Sub(t0))
			r.Exec().Wait()
		}
		slices.Sort(lat)
		perRun := float64(size1-size0) / n
		if name == "sqlite" {
			perRun = logicalSize(t, st, outs) / n // the file grows by WAL pages, in bulk
		}
		t.Logf("%s: continue (request → tool running) p50 %v p99 %v; a run that pauses %v vs %v that does not (pause cost %v); %.1f KB stored per paused run (%s paused runs per GB)",
			name, lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond),
			paused.Round(time.Microsecond), plain.Round(time.Microsecond), (paused - plain).Round(time.Microsecond),
			perRun/1e3, fmt.Sprintf("%.0f", 1e9/perRun))
		h.Close()
		st.Close()
	}
}

// logicalSize returns the bytes stored of the runs: their rows' output and their
// events, as encoded.
func logicalSize(t *testing.T, st store.Store, outs []*run.Output) float64 {
	var n int
	for _, o := range outs {
		rec, err := st.GetRun(context.Background(), o.RunID)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(rec.Output)
		n += len(b) + len(rec.Input)
		evs, err := st.Events(context.Background(), o.RunID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			n += len(ev.Data)
		}
	}
	return float64(n)
}

// dbSize returns the bytes the database holds: the SQLite file and its WAL, or
// the PostgreSQL schema's runs and event pages tables.
func dbSize(t *testing.T, name string, st store.Store, dir string) int64 {
	if name == "sqlite" {
		var n int64
		for _, f := range []string{"kern.db", "kern.db-wal"} {
			if fi, err := os.Stat(filepath.Join(dir, f)); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	conn, err := pgtest.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	schema := st.(*postgres.Store).Schema()
	var n int64
	err = conn.QueryRow(context.Background(), `SELECT pg_total_relation_size(format('%I.runs', $1::text)) + pg_total_relation_size(format('%I.event_pages', $1::text))`, schema).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
