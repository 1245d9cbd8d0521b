package agentos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/postgres"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/workflow"
)

// What a run's clients are told is what its store holds (DESIGN: "a run's clients
// hear only what its owner could make durable"). These tests take the store away
// under a run streamed over HTTP, for less and for more than the run's lease, and
// check what the client read against what the store keeps: contiguous indexes, one
// terminal event, under each index the stored event, and the stored status the
// terminal event the client got.

// outageWorkflow checkpoints a short first step, then streams a long second one,
// during which the store goes away.
func outageWorkflow() *workflow.Workflow {
	words := strings.Repeat("word ", 40)
	writer := &agent.Agent{Name: "Writer", Model: &scripted.Model{Turns: []scripted.Turn{{Text: words}}, Delay: 40 * time.Millisecond}}
	return &workflow.Workflow{Name: "Outage", Steps: []workflow.Step{
		workflow.FuncStep("one", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			return workflow.StepOutput{Content: "one."}, nil
		}),
		workflow.AgentStep("two", writer, "write"),
	}}
}

// outage takes a store away and gives it back.
type outage interface {
	begin(t *testing.T)
	end(t *testing.T)
}

// pgOutage is a PostgreSQL database of the test's own that refuses connections
// while the outage lasts (never the shared server: other tests use it).
type pgOutage struct {
	admin *pgx.Conn
	name  string
	url   string
}

func newPGOutage(t *testing.T) *pgOutage {
	t.Helper()
	pgtest.Need(t)
	ctx := context.Background()
	admin, err := pgtest.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	o := &pgOutage{admin: admin, name: "kern_durable_" + hex.EncodeToString(b)}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+o.name); err != nil {
		admin.Close(ctx)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+o.name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", o.name, err)
		}
		admin.Close(ctx)
	})
	cfg := pgtest.Config(t)
	o.url = fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, o.name)
	return o
}

func (o *pgOutage) begin(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if _, err := o.admin.Exec(ctx, "ALTER DATABASE "+o.name+" ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	if _, err := o.admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", o.name); err != nil {
		t.Fatal(err)
	}
}

func (o *pgOutage) end(t *testing.T) {
	t.Helper()
	if _, err := o.admin.Exec(context.Background(), "ALTER DATABASE "+o.name+" ALLOW_CONNECTIONS true"); err != nil {
		t.Fatal(err)
	}
}

// failingStore is a SQLite store whose writes fail while down is set, as on a
// full disk; reads go on.
type failingStore struct {
	*sqlite.Store
	down atomic.Bool
}

var errDiskFull = errors.New("database or disk is full (test)")

func (s *failingStore) fail() error {
	if s.down.Load() {
		return errDiskFull
	}
	return nil
}

func (s *failingStore) CreateRun(ctx context.Context, r *store.Run) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.CreateRun(ctx, r)
}

func (s *failingStore) UpdateRun(ctx context.Context, r *store.Run) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.UpdateRun(ctx, r)
}

func (s *failingStore) AppendEvents(ctx context.Context, evs []store.Event) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.AppendEvents(ctx, evs)
}

func (s *failingStore) RenewLeases(ctx context.Context, replica string, ids []string, until time.Time) ([]string, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.Store.RenewLeases(ctx, replica, ids, until)
}

func (s *failingStore) Claim(ctx context.Context, replica string, now, until time.Time, limit int) ([]*store.Run, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.Store.Claim(ctx, replica, now, until, limit)
}

func (s *failingStore) CancelRun(ctx context.Context, runID, reason string) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.CancelRun(ctx, runID, reason)
}

func (s *failingStore) begin(*testing.T) { s.down.Store(true) }
func (s *failingStore) end(*testing.T)   { s.down.Store(false) }

func TestStreamThroughStoreOutage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		pg     bool
		lease  time.Duration
		long   bool // the outage lasts until the recorder gave up on the run
		cancel bool // a cancel is sent during the outage
	}{
		{name: "sqlite/shorter than the lease", lease: 30 * time.Second},
		{name: "sqlite/longer than the lease", lease: time.Second, long: true},
		{name: "sqlite/cancel during an outage longer than the lease", lease: time.Second, long: true, cancel: true},
		{name: "postgres/shorter than the lease", pg: true, lease: 30 * time.Second},
		{name: "postgres/longer than the lease", pg: true, lease: time.Second, long: true},
		{name: "postgres/cancel during an outage longer than the lease", pg: true, lease: time.Second, long: true, cancel: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var (
				st  store.Store
				out outage
			)
			if tt.pg {
				o := newPGOutage(t)
				pst, err := postgres.Open(context.Background(), o.url)
				if err != nil {
					t.Fatal(err)
				}
				st, out = pst, o
			} else {
				sst, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kern.db"))
				if err != nil {
					t.Fatal(err)
				}
				fs := &failingStore{Store: sst}
				st, out = fs, fs
			}
			e := newEnv(t, Config{Store: st, Lease: tt.lease, Workflows: []*workflow.Workflow{outageWorkflow()}})
			e.store = st
			streamThroughOutage(t, e, out, tt.long, tt.cancel)
		})
	}
}

func streamThroughOutage(t *testing.T, e *env, out outage, long, cancel bool) {
	s := e.openStream("POST", "/workflows/outage/runs", formType, form("message", "go", "stream", "true"))
	var got []frame
	for content := 0; content < 3; {
		f, ok := s.next()
		if !ok {
			t.Fatalf("stream ended early: %v", events(got))
		}
		got = append(got, f)
		if f.ev.Event == run.EventRunContent {
			content++
		}
	}
	id := got[0].ev.RunID
	lr := e.srv.host.Lookup(id)
	if lr == nil || lr.Exec() == nil {
		t.Fatalf("run %s not live here", id)
	}

	out.begin(t)
	cancelled := false
	if cancel {
		code, body := e.do("POST", "/runs/"+id+"/cancel?wait=false", "", "")
		cancelled = code == http.StatusOK
		t.Logf("cancel during the outage: %d %v", code, body)
	}
	if long {
		// The recorder gives up on the run once its lease lapsed: the run ends here,
		// unstored, and is this process's no more.
		select {
		case <-lr.Exec().Done():
		case <-time.After(30 * time.Second):
			t.Fatal("the run did not end here while its store was away for longer than its lease")
		}
	}
	out.end(t)

	answered := ""
	if cancel && !cancelled {
		// Refused while the store was away ("retry it"): retried, it is stored, and
		// the run, wherever it went on, ends as the answer says.
		eventually.Succeeds(t, 20*time.Second, func() error { // polling an HTTP API
			code, body := e.do("POST", "/runs/"+id+"/cancel?wait=true", "", "")
			if code != http.StatusOK {
				return fmt.Errorf("cancel: %d %v", code, body)
			}
			answered = fmt.Sprint(body["status"])
			return nil
		})
	}
	got = append(got, s.rest()...)
	body := waitStatus(t, e, id)
	if answered != "" && body["status"] != answered {
		t.Errorf("a cancel answered %s, then the run ended %v", answered, body["status"])
	}
	stored, err := e.store.Events(context.Background(), id, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, got, 0, id, got[len(got)-1].ev.Event)
	last := got[len(got)-1].ev
	if want := run.KindWorkflow.TerminalEvent(run.Status(fmt.Sprint(body["status"]))); last.Event != want {
		t.Errorf("client's terminal event %s, stored status %v", last.Event, body["status"])
	}
	if cancelled && body["status"] != string(run.StatusCancelled) {
		t.Errorf("a cancel acknowledged during the outage, then the run ended %v", body["status"])
	}
	if !cancel && body["status"] != string(run.StatusCompleted) {
		t.Errorf("stored status %v %v, want COMPLETED", body["status"], body["error"])
	}
	if len(stored) != len(got) {
		t.Errorf("client read %d events, the store holds %d: %v", len(got), len(stored), events(got))
	}
	for i := range min(len(stored), len(got)) {
		var ev run.Event
		if err := json.Unmarshal(stored[i].Data, &ev); err != nil {
			t.Fatal(err)
		}
		if stored[i].Index != got[i].id || !reflect.DeepEqual(ev, got[i].ev) {
			t.Errorf("event %d: client read %s %q, the store holds %d %s %q", got[i].id,
				got[i].ev.Event, got[i].ev.Content, stored[i].Index, ev.Event, ev.Content)
		}
	}

	// A client that resumes after any index it was told reads the same.
	from := len(got) / 2
	r := e.openStream("GET", fmt.Sprintf("/workflows/outage/runs/%s/resume", id), "", "",
		"Last-Event-ID", fmt.Sprint(from))
	again := r.rest()
	if len(again) != len(got)-from-1 {
		t.Fatalf("resumed after %d: read %v, want %v", from, events(again), events(got[from+1:]))
	}
	for i, f := range again {
		if w := got[from+1+i]; f.id != w.id || f.data != w.data && !reflect.DeepEqual(f.ev, w.ev) {
			t.Errorf("resumed: event %d %s, first read %d %s", f.id, f.event, w.id, w.event)
		}
	}
	t.Logf("%d events, %v", len(got), body["status"])
}

// TestAnswerThroughStoreOutage: a run asked for without a stream, which this
// process loses while its store is away for longer than its lease, is answered
// with its end as stored by the run's next owner (here this process's recovery,
// once the store is back), not with its end here.
func TestAnswerThroughStoreOutage(t *testing.T) {
	t.Parallel()
	sst, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	fs := &failingStore{Store: sst}
	e := newEnv(t, Config{Store: fs, Lease: time.Second, Workflows: []*workflow.Workflow{outageWorkflow()}})
	e.store = fs
	type answer struct {
		code int
		body map[string]any
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		code, body, err := e.try("POST", "/workflows/outage/runs", formType, form("message", "go", "stream", "false"))
		answered <- answer{code, body, err}
	}()
	var lr *host.Run
	eventually.Succeeds(t, 10*time.Second, func() error { // nothing to wait on: the run has no id yet
		for _, r := range e.srv.host.Runs() {
			if x := r.Exec(); x != nil && x.Log.Len() > 5 {
				lr = r
				return nil
			}
		}
		return errors.New("no run streaming yet")
	})
	fs.begin(t)
	select {
	case <-lr.Exec().Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not end here while its store was away for longer than its lease")
	}
	local := lr.Exec().Output().Status
	fs.end(t)
	a := <-answered
	if a.err != nil {
		t.Fatal(a.err)
	}
	t.Logf("ended %s here; answered %d %v", local, a.code, a.body["status"])
	body := waitStatus(t, e, lr.ID())
	if a.code != http.StatusOK || a.body["status"] != body["status"] || body["status"] != string(run.StatusCompleted) {
		t.Fatalf("answered %d %v, stored %v (ended %s here); want the stored end, COMPLETED", a.code, a.body["status"], body["status"], local)
	}
}

// TestStreamOfARunTakenOver: another replica (played by the test, writing to the
// store as one would) claims a run this server streams; once a lease renewal
// finds it out, this server stops speaking for the run: its client reads, after
// the events it had, those the new owner stores, with contiguous indexes, and the
// new owner's end, never this server's cancel.
func TestStreamOfARunTakenOver(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	e := newEnv(t, Config{Store: st, Lease: time.Second, Workflows: []*workflow.Workflow{outageWorkflow()}})
	e.store = st
	s := e.openStream("POST", "/workflows/outage/runs", formType, form("message", "go", "stream", "true"))
	got := s.until(run.EventRunContent)
	id := got[0].ev.RunID
	lr := e.srv.host.Lookup(id)
	if lr == nil || lr.Exec() == nil {
		t.Fatalf("run %s not live here", id)
	}

	// B claims the run, as it would once A's lease lapsed while A stalled.
	ctx := context.Background()
	rec, err := st.GetRun(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	rec.Replica, rec.LeaseUntil = "B", time.Now().Add(time.Minute)
	if err := st.UpdateRun(ctx, rec); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lr.Exec().Done():
	case <-time.After(30 * time.Second):
		t.Fatal("this server's renewals did not find the run taken over")
	}
	if out := lr.Exec().Output(); out.Status != run.StatusCancelled || out.Reason != store.ReasonTakenOver {
		t.Fatalf("the run ended %s (%q) here, want CANCELLED %q", out.Status, out.Reason, store.ReasonTakenOver)
	}

	// B goes on after what is stored, and ends the run.
	last, err := store.LastEvent(ctx, st, id)
	if err != nil {
		t.Fatal(err)
	}
	rec.Status, rec.Output.Status, rec.Output.Content = run.StatusCompleted, run.StatusCompleted, "B's end"
	content := run.Event{Event: run.EventRunContent, RunID: id, EventIndex: last.Index + 1, Content: "B's", CreatedAt: time.Now().Unix()}
	data, err := content.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	end, err := store.EndEvent(rec, last.Index+2, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AppendEvents(ctx, []store.Event{{RunID: id, Index: last.Index + 1, Type: content.Event, Data: data, CreatedAt: time.Now()}, end}); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateRun(ctx, rec); err != nil {
		t.Fatal(err)
	}

	got = append(got, s.rest()...)
	checkRun(t, got, 0, id, run.EventWorkflowCompleted)
	if n := len(got); got[n-2].ev.Content != "B's" || got[n-2].id != last.Index+1 {
		t.Errorf("the client's last events %v, want B's after index %d", events(got[n-3:]), last.Index)
	}
}
