package host

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/workflow"
)

// syncBuffer is a log destination safe for the recovery loop's goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRecoveryLogsNameTheDeadReplica: the logs of a run taken over and of a run
// ended "interrupted" name, as from_replica, the replica that left it behind,
// not the one recovering it.
func TestRecoveryLogsNameTheDeadReplica(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	past := time.Now().Add(-time.Minute)
	left := func(id, component string) {
		err := st.CreateRun(ctx, &store.Run{ID: id, SessionID: "s", Kind: run.KindWorkflow, ComponentID: component,
			Status: run.StatusRunning, Input: "go", Output: run.Output{RunID: id, WorkflowID: component},
			Replica: "dead-" + id, LeaseUntil: past, CreatedAt: past, UpdatedAt: past})
		if err != nil {
			t.Fatal(err)
		}
	}
	left("resumed", "quick") // never started: taken over
	left("ended", "gone")    // of a workflow no longer served: ended ERROR

	var logs syncBuffer
	sig := testSignals{recovered: make(chan struct{}, 1), recoverTick: make(chan time.Time)}
	h, err := newHost(st, Options{Replica: "B", Workflows: []*workflow.Workflow{quickWorkflow("Quick")},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, sig)
	if err != nil {
		t.Fatal(err)
	}
	<-sig.recovered
	if r := h.Lookup("resumed"); r != nil {
		if out, err := r.Wait(ctx); err != nil || out.Status != run.StatusCompleted {
			t.Errorf("taken-over run ended %s, %v", out.Status, err)
		}
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`msg="host: took over a run left behind" run_id=resumed component=quick from_replica=dead-resumed `,
		`run_id=ended component=gone from_replica=dead-ended`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}
