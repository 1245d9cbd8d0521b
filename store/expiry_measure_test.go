package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/postgres"
	"github.com/kern-dev/kern/store/sqlite"
)

// TestMeasureExpiryLook reports what one look for expired pauses costs with many
// runs paused (none due): the index read (Pauser.ExpiredPauses) against a read
// of every paused run's output (what the expiry loop did before), on SQLite and
// PostgreSQL. It runs with KERN_MEASURE=1 only.
func TestMeasureExpiryLook(t *testing.T) {
	if os.Getenv("KERN_MEASURE") == "" {
		t.Skip("set KERN_MEASURE=1 to measure")
	}
	const n = 5000
	ctx := context.Background()
	stores := map[string]store.Store{}
	sq, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	stores["sqlite"] = sq
	if pgtest.Ping(ctx) == nil {
		pg, err := postgres.Open(ctx, pgtest.URL(), postgres.WithSchema(pgtest.Schema(t)))
		if err != nil {
			t.Fatal(err)
		}
		defer pg.Close()
		stores["postgres"] = pg
	}
	for name, st := range stores {
		later := time.Now().Add(time.Hour)
		for i := range n {
			id := fmt.Sprintf("run-%05d", i)
			r := &store.Run{ID: id, Kind: run.KindAgent, ComponentID: "mailer", Status: run.StatusRunning, Input: "mail ada",
				Output: run.Output{RunID: id, Status: run.StatusRunning, Content: "Sending. "}}
			if err := st.CreateRun(ctx, r); err != nil {
				t.Fatal(err)
			}
			r.Status, r.Output.Status = run.StatusPaused, run.StatusPaused
			r.Output.Paused = &run.Paused{NextEvent: 5, State: []byte(`{"messages":[{"role":"user","content":"mail ada"}]}`)}
			if i%2 == 0 {
				r.Output.Paused.ExpiresAt = later // half expire, none is due
			}
			if err := st.UpdateRun(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		const looks = 20
		start := time.Now()
		for range looks {
			if got, err := st.(store.Pauser).ExpiredPauses(ctx, store.ExpiredQuery{Before: time.Now()}); err != nil || len(got) != 0 {
				t.Fatal(len(got), err)
			}
		}
		index := time.Since(start) / looks
		start = time.Now()
		for range looks {
			for off := 0; ; off += 100 {
				runs, err := st.ListRuns(ctx, store.RunQuery{Status: run.StatusPaused, Kind: run.KindAgent, ComponentID: "mailer", Limit: 100, Offset: off})
				if err != nil {
					t.Fatal(err)
				}
				if len(runs) < 100 {
					break
				}
			}
		}
		scan := time.Since(start) / looks
		t.Logf("%s, %d paused runs (none due): one look %v through the index, %v reading every paused run", name, n, index, scan)
	}
}
