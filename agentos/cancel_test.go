package agentos

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/workflow"
)

var errUnreachable = errors.New("database unreachable")

// failingIntents is a store that cannot keep cancel intents.
type failingIntents struct{ store.Store }

func (failingIntents) CancelRun(context.Context, string, string) error { return errUnreachable }
func (failingIntents) PendingCancel(context.Context, string) (string, bool, error) {
	return "", false, errUnreachable
}
func (failingIntents) Listen(ctx context.Context, _ store.Notifications) error {
	<-ctx.Done()
	return nil
}

// failingEnd is a recorder that cannot persist the end of runs.
type failingEnd struct{ *store.Recorder }

func (r failingEnd) End(ctx context.Context, x *run.Exec) error {
	_ = r.Recorder.End(ctx, x)
	return errUnreachable
}

// TestCancelNotDurable: a cancel whose intent the store cannot keep is
// acknowledged (200) only when the run's end was persisted; otherwise it answers
// 503 with a JSON detail, and the run is cancelled in this process all the same.
func TestCancelNotDurable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		endFail bool
		query   string
		code    int
	}{
		{name: "end stored", code: http.StatusOK},
		{name: "end not stored", endFail: true, code: http.StatusServiceUnavailable},
		{name: "no wait", query: "?wait=false", code: http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sq := openStore(t)
			var rec run.Recorder = store.NewRecorder(sq, store.RecorderOptions{})
			if tc.endFail {
				rec = failingEnd{rec.(*store.Recorder)}
			}
			t.Cleanup(func() { // after the server's Shutdown
				rec.(interface{ Close() error }).Close()
				sq.Close()
			})
			e := newEnv(t, Config{Store: failingIntents{sq}, Recorder: rec, Workflows: []*workflow.Workflow{slowWorkflow("Story")}})
			r, err := e.srv.Host().Start(host.Request{Kind: run.KindWorkflow, Component: "story", Input: "go"})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = r.Exec().Log.Follow(ctx, 0, func(ev *run.Event) bool { return ev.Event != run.EventRunContent })

			code, body := e.do("POST", "/runs/"+r.ID()+"/cancel"+tc.query, "", "")
			if tc.query != "" && code == http.StatusOK {
				// Without wait, the run's end may be stored before the cancel
				// answers: durable after all, and then acknowledged.
				tc.code = http.StatusOK
			}
			if code != tc.code {
				t.Fatalf("cancel: %d %v, want %d", code, body, tc.code)
			}
			if code == http.StatusOK && body["status"] != string(run.StatusCancelled) {
				t.Fatalf("cancel acknowledged with %v, want CANCELLED", body)
			}
			if detail, _ := body["detail"].(string); code != http.StatusOK && !strings.Contains(detail, "could not keep the cancel") {
				t.Fatalf("cancel not durable answered %v, want a detail saying so", body)
			}
			if out := r.Exec().Wait(); out.Status != run.StatusCancelled {
				t.Fatalf("run ended %s, want CANCELLED in this process all the same", out.Status)
			}
		})
	}
}
