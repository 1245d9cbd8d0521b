package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-dev/kern/client"
	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/postgres"
)

// The tests of this file run several `kern serve` processes (replicas) on one
// PostgreSQL database, each test in a schema of its own, and check that they act as
// one system (issue 6): a cancel reaches a run from any replica, a stream can be
// followed from any replica, background runs are shared through a queue, a run whose
// replica is killed is taken over, and a replica that loses its database for a while
// still hears the cancels sent meanwhile. Each test ends by checking in the database
// that every run ended once.

const (
	replicasYAML = "testdata/replicas.yaml"      // three-steps, quick, hold
	onceYAML     = "testdata/replicas-once.yaml" // three-steps-once, resumable: false
	testLease    = 2 * time.Second               // --lease of the replicas
	// patience bounds each wait for an event, a status or a process: far longer than
	// any of them takes, so that a broken contract fails in seconds, not minutes.
	patience = 30 * time.Second
)

// replicaDB returns kern's --db URL on a fresh schema (see pgtest.Schema), and
// the schema's name.
func replicaDB(t *testing.T) (db, schema string) {
	t.Helper()
	schema = pgtest.Schema(t)
	return pgtest.SchemaURL(schema), schema
}

// replica is a `kern serve` process of a test.
type replica struct {
	name   string
	url    string
	proc   *child
	client *client.Client
}

// startReplica starts kern serve on a free loopback port, named name, on the
// database db, serving the workflows of the kern.yaml config, with a lease of lease,
// and checks that GET /config names it.
func startReplica(t *testing.T, db, name, config string, lease time.Duration, extra ...string) *replica {
	t.Helper()
	args := append([]string{"--replica", name, "--lease", lease.String(), "--config", config, "--shutdown-grace", "0"}, extra...)
	c, u := startServe(t, db, args...)
	kc, err := client.New(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{name: name, url: u, proc: c, client: kc}
	var cfg struct {
		ReplicaID string `json:"replica_id"`
	}
	if code := r.call(t, "GET", "/config", nil, &cfg); code != http.StatusOK || cfg.ReplicaID != name {
		t.Fatalf("GET /config on %s: %d, replica_id %q; want 200 and %q", name, code, cfg.ReplicaID, name)
	}
	return r
}

// kill kills the replica with SIGKILL and waits for it.
func (r *replica) kill(t *testing.T) {
	t.Helper()
	r.proc.cmd.Process.Signal(syscall.SIGKILL)
	r.proc.wait(t)
}

// stop stops the replicas with SIGTERM and checks that they exit 0.
func stop(t *testing.T, rs ...*replica) {
	t.Helper()
	for _, r := range rs {
		r.proc.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, r := range rs {
		if code := r.proc.wait(t); code != 0 {
			t.Errorf("replica %s exited %d on SIGTERM:\n%s", r.name, code, r.proc.stderr)
		}
	}
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// call sends a request (a form body when form is not nil) and decodes its JSON
// answer into v when v is not nil; it returns the status code.
func (r *replica) call(t *testing.T, method, path string, body url.Values, v any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(body.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, r.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, r.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s on %s: reading the answer: %v", method, path, r.name, err)
	}
	if v != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s on %s: %s: answer %q: %v", method, path, r.name, resp.Status, b, err)
		}
	}
	return resp.StatusCode
}

// runInfo is what a replica answers about a run.
type runInfo struct {
	RunID       string            `json:"run_id"`
	Status      run.Status        `json:"status"`
	Replica     string            `json:"replica"`
	Error       string            `json:"error"`
	Reason      string            `json:"reason"`
	StepResults []json.RawMessage `json:"step_results"`
}

func (r *replica) getRun(t *testing.T, id string) runInfo {
	t.Helper()
	var ri runInfo
	if code := r.call(t, "GET", "/runs/"+id, nil, &ri); code != http.StatusOK {
		t.Fatalf("GET /runs/%s on %s: %d", id, r.name, code)
	}
	return ri
}

// cancel cancels a run through r (waiting for its end unless wait is false) and
// returns the status answered.
func (r *replica) cancel(t *testing.T, id string, wait bool) run.Status {
	t.Helper()
	var ans runInfo
	path := "/runs/" + id + "/cancel"
	if !wait {
		path += "?wait=false"
	}
	if code := r.call(t, "POST", path, nil, &ans); code != http.StatusOK {
		t.Fatalf("POST %s on %s: %d", path, r.name, code)
	}
	return ans.Status
}

// background queues a background run of workflow wf through r and returns its id.
func (r *replica) background(t *testing.T, wf, message string) string {
	t.Helper()
	var ans runInfo
	code := r.call(t, "POST", "/workflows/"+wf+"/runs", form("message", message, "background", "true"), &ans)
	if code != http.StatusAccepted || ans.RunID == "" || ans.Status != run.StatusPending {
		t.Fatalf("background run of %s on %s: %d %+v; want 202 with a run_id, PENDING", wf, r.name, code, ans)
	}
	return ans.RunID
}

// awaitRun polls r until the run satisfies ok, and returns what r answered then.
func (r *replica) awaitRun(t *testing.T, id, what string, ok func(runInfo) bool) runInfo {
	t.Helper()
	var ri runInfo
	eventually.Succeeds(t, patience, func() error {
		if ri = r.getRun(t, id); !ok(ri) {
			return fmt.Errorf("run %s on %s: not %s: %+v", id, r.name, what, ri)
		}
		return nil
	})
	return ri
}

func ended(ri runInfo) bool { return ri.Status.Terminal() }

// awaitStored polls r until it knows the run id: a run started on another replica
// is known once that replica stored it, shortly after it started.
func (r *replica) awaitStored(t *testing.T, id string) {
	t.Helper()
	eventually.Succeeds(t, patience, func() error {
		code := r.call(t, "GET", "/runs/"+id, nil, nil)
		switch code {
		case http.StatusOK:
			return nil
		case http.StatusNotFound:
			return fmt.Errorf("GET /runs/%s on %s: %d, want 200", id, r.name, code)
		}
		t.Fatalf("GET /runs/%s on %s: %d, want 200", id, r.name, code)
		return nil
	})
}

// sseEvent is one event of a stream, as the client read it.
type sseEvent struct {
	ID   int    // the SSE id: its index
	Name string // its type
	Data string // its JSON, as kern writes it
	run.Event
}

// sseStream reads a run's event stream in its own goroutine.
type sseStream struct {
	what string // for messages: "A: POST /workflows/..."

	mu      sync.Mutex // guards the fields below
	events  []sseEvent
	err     error         // why the stream ended: nil at the run's terminal event
	changed chan struct{} // closed at the next event; replaced then
	done    chan struct{} // closed once the stream ended
}

// stream starts a run of workflow wf on r and returns its event stream.
func (r *replica) stream(t *testing.T, wf, message string) *sseStream {
	t.Helper()
	return r.read(t, "POST /workflows/"+wf+"/runs", func(ctx context.Context) iter.Seq2[*run.Event, error] {
		return r.client.Workflow(wf).Stream(ctx, client.RunRequest{Message: message})
	})
}

// follow resumes the stream of run id of workflow wf on r after the event at index
// after (-1: from the first event).
func (r *replica) follow(t *testing.T, wf, id string, after int) *sseStream {
	t.Helper()
	return r.read(t, "POST /workflows/"+wf+"/runs/"+id+"/resume", func(ctx context.Context) iter.Seq2[*run.Event, error] {
		return r.client.Workflow(wf).Resume(ctx, id, after)
	})
}

// read reads the events open yields in a goroutine, until the test ends.
func (r *replica) read(t *testing.T, what string, open func(context.Context) iter.Seq2[*run.Event, error]) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &sseStream{what: r.name + ": " + what, changed: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for ev, err := range open(ctx) {
			if err != nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
				return
			}
			data, err := ev.AppendJSON(nil)
			if err != nil {
				data = []byte(err.Error())
			}
			s.add(sseEvent{ID: ev.EventIndex, Name: string(ev.Event), Data: string(data), Event: *ev})
		}
	}()
	t.Cleanup(func() { cancel(); <-s.done })
	return s
}

func (s *sseStream) add(ev sseEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev)
	close(s.changed)
	s.changed = make(chan struct{})
}

// seen returns the events received so far.
func (s *sseStream) seen() []sseEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// waitFor waits for the first event that satisfies ok and returns it with when it
// was seen.
func (s *sseStream) waitFor(t *testing.T, what string, ok func(sseEvent) bool) (sseEvent, time.Time) {
	t.Helper()
	timer := time.NewTimer(patience)
	defer timer.Stop()
	for {
		s.mu.Lock()
		i := slices.IndexFunc(s.events, ok)
		changed := s.changed
		s.mu.Unlock()
		if i >= 0 {
			return s.seen()[i], time.Now()
		}
		select {
		case <-changed:
		case <-s.done:
			if i := slices.IndexFunc(s.seen(), ok); i >= 0 {
				return s.seen()[i], time.Now()
			}
			t.Fatalf("%s: the stream ended without %s (%v):\n%s", s.what, what, s.err, summary(s.seen()))
		case <-timer.C:
			t.Fatalf("%s: no %s after %v:\n%s", s.what, what, patience, summary(s.seen()))
		}
	}
}

// end waits for the stream to end and returns its events.
func (s *sseStream) end(t *testing.T) []sseEvent {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(patience):
		t.Fatalf("%s: the stream did not end within %v:\n%s", s.what, patience, summary(s.seen()))
	}
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		t.Errorf("%s: the stream broke: %v", s.what, err)
	}
	return s.seen()
}

// kind matches the events of type e, of any run.
func kind(e run.EventType) func(sseEvent) bool {
	return func(ev sseEvent) bool { return ev.Event.Event == e }
}

// is matches the events of type e of the run id.
func is(e run.EventType, id string) func(sseEvent) bool {
	return func(ev sseEvent) bool { return ev.Event.Event == e && ev.RunID == id }
}

// step matches the event e of the top-level step at index i of the workflow run id
// (nested agent events carry their own run id).
func step(e run.EventType, id string, i int) func(sseEvent) bool {
	return func(ev sseEvent) bool {
		return ev.Event.Event == e && ev.RunID == id && ev.Origin != nil && ev.StepIndex != nil && *ev.StepIndex == i
	}
}

func count(evs []sseEvent, ok func(sseEvent) bool) int {
	n := 0
	for _, ev := range evs {
		if ok(ev) {
			n++
		}
	}
	return n
}

// summary lists events one a line, runs of content chunks folded into one line.
func summary(evs []sseEvent) string {
	var b strings.Builder
	for i := 0; i < len(evs); i++ {
		ev := evs[i]
		j := i
		for j+1 < len(evs) && ev.Name == string(run.EventRunContent) && evs[j+1].Name == ev.Name && evs[j+1].RunID == ev.RunID {
			j++
		}
		if j > i {
			fmt.Fprintf(&b, "  %d..%d %s ×%d  run %s\n", ev.ID, evs[j].ID, ev.Name, j-i+1, ev.RunID)
			i = j
			continue
		}
		stepName := ""
		if ev.Origin != nil {
			stepName = ev.StepName
		}
		fmt.Fprintf(&b, "  %d %s %s run %s %s%s\n", ev.ID, ev.Name, stepName, ev.RunID, ev.Reason, ev.Error)
	}
	return b.String()
}

// checkEvents checks that evs are the events of run id from index from on, each
// once and in order, ending with its one terminal event, of type terminal.
func checkEvents(t *testing.T, what string, evs []sseEvent, from int, id string, terminal run.EventType) {
	t.Helper()
	for i, ev := range evs {
		if ev.ID != from+i || ev.EventIndex != from+i || ev.Name != string(ev.Event.Event) {
			t.Errorf("%s: event #%d is %d %s (event_index %d), want index %d: lost, repeated or reordered:\n%s",
				what, i, ev.ID, ev.Name, ev.EventIndex, from+i, summary(evs))
			return
		}
	}
	ends := count(evs, func(ev sseEvent) bool { return ev.RunID == id && ev.Event.Event.Terminal() })
	if len(evs) == 0 || ends != 1 || evs[len(evs)-1].Event.Event != terminal || evs[len(evs)-1].RunID != id {
		t.Errorf("%s: want one terminal event of run %s, %s, at the end; got %d:\n%s", what, id, terminal, ends, summary(evs))
	}
}

// sameEvents checks that got are the events want, byte for byte.
func sameEvents(t *testing.T, what string, got, want []sseEvent) {
	t.Helper()
	for i := range max(len(got), len(want)) {
		if i >= len(got) || i >= len(want) || got[i].ID != want[i].ID || got[i].Name != want[i].Name || got[i].Data != want[i].Data {
			t.Errorf("%s: the events differ from #%d on; got:\n%swant:\n%s", what, i, summary(got), summary(want))
			return
		}
	}
}

// TestReplicasCancelAndFollow: a run streamed from replica A, cancelled through B,
// ends CANCELLED on A's stream and in B's answer; its stream is replayed whole from
// C. A run followed live from B and C, from the start and from the middle, gives them
// A's events, and a cancel through C that does not wait ends it on every stream. A
// run cancelled through B the moment it starts on A ends CANCELLED too.
func TestReplicasCancelAndFollow(t *testing.T) {
	t.Parallel()
	db, schema := replicaDB(t)
	a := startReplica(t, db, "A", replicasYAML, testLease)
	b := startReplica(t, db, "B", replicasYAML, testLease)
	c := startReplica(t, db, "C", replicasYAML, testLease)

	s := a.stream(t, "three-steps", "cancel me from B")
	first, _ := s.waitFor(t, "WorkflowStarted", kind(run.EventWorkflowStarted))
	id := first.RunID
	s.waitFor(t, "content", kind(run.EventRunContent))
	b.awaitStored(t, id)
	if st := b.cancel(t, id, true); st != run.StatusCancelled {
		t.Errorf("cancel through B (wait=true) of a run on A: %s, want CANCELLED", st)
	}
	evs := s.end(t)
	checkEvents(t, "A's stream", evs, 0, id, run.EventWorkflowCancelled)
	for _, r := range []*replica{a, b, c} {
		if ri := r.awaitRun(t, id, "ended", ended); ri.Status != run.StatusCancelled || ri.Replica != "A" {
			t.Errorf("GET /runs/%s on %s: %s on replica %q, want CANCELLED on A", id, r.name, ri.Status, ri.Replica)
		}
	}
	var ri runInfo
	if code := c.call(t, "GET", "/workflows/three-steps/runs/"+id, nil, &ri); code != http.StatusOK || ri.Replica != "A" {
		t.Errorf("GET /workflows/three-steps/runs/%s on C: %d, replica %q; want 200, A", id, code, ri.Replica)
	}
	sameEvents(t, "C replaying from -1", c.follow(t, "three-steps", id, -1).end(t), evs)
	sameEvents(t, "C replaying from 0", c.follow(t, "three-steps", id, 0).end(t), evs[min(1, len(evs)):])

	// Followed live, across a step's end.
	s = a.stream(t, "three-steps", "follow me")
	first, _ = s.waitFor(t, "WorkflowStarted", kind(run.EventWorkflowStarted))
	id = first.RunID
	b.awaitStored(t, id)
	fb := b.follow(t, "three-steps", id, -1)
	mid, _ := fb.waitFor(t, "the second step", step(run.EventStepStarted, id, 1))
	fc := c.follow(t, "three-steps", id, mid.ID)
	fc.waitFor(t, "content after the second step started", kind(run.EventRunContent))
	if st := c.cancel(t, id, false); st.Terminal() && st != run.StatusCancelled {
		t.Errorf("cancel through C (wait=false): %s, want RUNNING or CANCELLED", st)
	}
	evs = s.end(t)
	checkEvents(t, "A's stream", evs, 0, id, run.EventWorkflowCancelled)
	sameEvents(t, "B following from -1", fb.end(t), evs)
	sameEvents(t, "C following from the second step", fc.end(t), evs[min(mid.ID+1, len(evs)):])
	if ri = b.awaitRun(t, id, "ended", ended); ri.Status != run.StatusCancelled {
		t.Errorf("run %s: %s, want CANCELLED", id, ri.Status)
	}

	// Cancelled through B as soon as it started, maybe before A stored it: the
	// intent is kept (PENDING) or the run has ended; either way it ends CANCELLED.
	s = a.stream(t, "three-steps", "cancel me at once")
	first, _ = s.waitFor(t, "WorkflowStarted", kind(run.EventWorkflowStarted))
	id = first.RunID
	if st := b.cancel(t, id, true); st != run.StatusPending && st != run.StatusCancelled {
		t.Errorf("cancel through B of a run just started on A: %s, want PENDING or CANCELLED", st)
	}
	checkEvents(t, "A's stream", s.end(t), 0, id, run.EventWorkflowCancelled)
	if ri = c.awaitRun(t, id, "ended", ended); ri.Status != run.StatusCancelled {
		t.Errorf("run %s: %s, want CANCELLED", id, ri.Status)
	}

	checkRunsEnded(t, schema)
	stop(t, a, b, c)
}

// listRuns lists the runs of workflow wf through r.
func (r *replica) listRuns(t *testing.T, wf string) []runInfo {
	t.Helper()
	var runs []runInfo
	if code := r.call(t, "GET", "/workflows/"+wf+"/runs?limit=10000", nil, &runs); code != http.StatusOK {
		t.Fatalf("GET /workflows/%s/runs on %s: %d", wf, r.name, code)
	}
	return runs
}

// byStatus groups runs by status, their ids in ascending order.
func byStatus(runs []runInfo) map[run.Status][]string {
	m := map[run.Status][]string{}
	for _, ri := range runs {
		m[ri.Status] = append(m[ri.Status], ri.RunID)
	}
	for _, ids := range m {
		slices.Sort(ids)
	}
	return m
}

// counts says how many runs each status has.
func counts(groups map[run.Status][]string) map[run.Status]int {
	m := map[run.Status]int{}
	for st, ids := range groups {
		m[st] = len(ids)
	}
	return m
}

// TestReplicasBackground: background runs queued on either replica run on either;
// once every worker of both is busy, runs wait PENDING; some are cancelled while
// queued (they end CANCELLED without running) and some while running, through
// either replica; a freed worker takes the next queued run.
func TestReplicasBackground(t *testing.T) {
	t.Parallel()
	workers, flags := 2, []string{"--workers", "2"}
	db, schema := replicaDB(t)
	a := startReplica(t, db, "A", replicasYAML, testLease, flags...)
	b := startReplica(t, db, "B", replicasYAML, testLease, flags...)
	rs := []*replica{a, b}
	named := map[string]*replica{"A": a, "B": b}
	other := map[string]*replica{"A": b, "B": a}

	var quick []string
	for i := range 4 {
		quick = append(quick, rs[i%2].background(t, "quick", "quick "+strconv.Itoa(i)))
	}
	for i, id := range quick {
		ri := rs[(i+1)%2].awaitRun(t, id, "ended", ended)
		if ri.Status != run.StatusCompleted || (ri.Replica != "A" && ri.Replica != "B") {
			t.Errorf("background run %s: %s on replica %q, want COMPLETED on A or B", id, ri.Status, ri.Replica)
		}
	}

	// Every worker busy, three runs queued.
	busy := 2 * workers
	for i := range busy + 3 {
		rs[i%2].background(t, "hold", "hold "+strconv.Itoa(i))
	}
	t.Logf("%d workers per replica: %d background runs of hold queued", workers, busy+3)
	var groups map[run.Status][]string
	eventually.Wait(t.Context(), patience, func() error { // checked below
		groups = byStatus(a.listRuns(t, "hold"))
		if len(groups[run.StatusRunning]) < busy {
			return errors.New("workers not all busy")
		}
		return nil
	})
	running, queued := groups[run.StatusRunning], groups[run.StatusPending]
	if len(running) != busy || len(queued) != 3 {
		t.Fatalf("%d RUNNING and %d PENDING, want %d (%d workers × 2 replicas) and 3: %v",
			len(running), len(queued), busy, workers, counts(groups))
	}
	perReplica := map[string]int{}
	replicaOf := map[string]string{}
	for _, id := range running {
		ri := a.getRun(t, id)
		perReplica[ri.Replica]++
		replicaOf[id] = ri.Replica
	}
	if perReplica["A"] != workers || perReplica["B"] != workers {
		t.Errorf("running per replica: %v, want %d on each of A and B", perReplica, workers)
	}

	// Cancelled while queued, through either replica: CANCELLED at once.
	for i, id := range queued[:2] {
		if st := rs[i].cancel(t, id, true); st != run.StatusCancelled {
			t.Errorf("cancel of queued run %s through %s: %s, want CANCELLED", id, rs[i].name, st)
		}
	}
	// Cancelled while running, through the replica that runs it and through the other.
	if st := other[replicaOf[running[0]]].cancel(t, running[0], true); st != run.StatusCancelled {
		t.Errorf("cancel of run %s running on %s through the other replica: %s, want CANCELLED", running[0], replicaOf[running[0]], st)
	}
	if st := named[replicaOf[running[1]]].cancel(t, running[1], true); st != run.StatusCancelled {
		t.Errorf("cancel of run %s through %s, which runs it: %s, want CANCELLED", running[1], replicaOf[running[1]], st)
	}
	// Two workers are free: the last queued run starts.
	last := b.awaitRun(t, queued[2], "RUNNING", func(ri runInfo) bool { return ri.Status != run.StatusPending })
	if last.Status != run.StatusRunning {
		t.Errorf("queued run %s once workers were free: %s, want RUNNING", queued[2], last.Status)
	}
	for _, id := range append(queued[:2:2], running[:2]...) {
		if ri := b.getRun(t, id); ri.Status != run.StatusCancelled {
			t.Errorf("run %s: %s after its cancel, want CANCELLED", id, ri.Status)
		}
	}
	for _, id := range queued[:2] {
		evs := b.follow(t, "hold", id, -1).end(t)
		checkEvents(t, "stored events of a run cancelled while queued", evs, 0, id, run.EventWorkflowCancelled)
		if n := count(evs, kind(run.EventStepStarted)); n != 0 {
			t.Errorf("run %s, cancelled while queued, ran: %d StepStarted:\n%s", id, n, summary(evs))
		}
	}

	// The rest, cancelled without waiting, all end CANCELLED.
	for i, ri := range a.listRuns(t, "hold") {
		if !ri.Status.Terminal() {
			rs[i%2].cancel(t, ri.RunID, false)
		}
	}
	eventually.Wait(t.Context(), patience, func() error { // checked below
		groups = byStatus(b.listRuns(t, "hold"))
		if len(groups[run.StatusCancelled]) != busy+3 {
			return errors.New("not all cancelled")
		}
		return nil
	})
	if len(groups[run.StatusCancelled]) != busy+3 {
		t.Errorf("after cancelling every hold run: %v, want all %d CANCELLED", counts(groups), busy+3)
	}

	checkRunsEnded(t, schema)
	stop(t, a, b)
}

// TestReplicaTakeover kills (SIGKILL) the replica executing a three-step workflow
// once its first step completed: the other replica takes the run over after the
// lease lapsed and resumes it from the second step, without running the first again;
// a workflow that is not resumable ends ERROR "interrupted" instead. The run is
// followed from the other replica all along.
func TestReplicaTakeover(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, config, workflow string
		want                   run.Status
		terminal               run.EventType
		steps                  int // step results at the end
	}{
		{"resumable", replicasYAML, "three-steps", run.StatusCompleted, run.EventWorkflowCompleted, 3},
		{"not resumable", onceYAML, "three-steps-once", run.StatusError, run.EventWorkflowError, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, schema := replicaDB(t)
			a := startReplica(t, db, "A", tt.config, testLease)
			b := startReplica(t, db, "B", tt.config, testLease)

			s := a.stream(t, tt.workflow, "survive")
			first, _ := s.waitFor(t, "WorkflowStarted", kind(run.EventWorkflowStarted))
			id := first.RunID
			s.waitFor(t, "content", kind(run.EventRunContent))
			b.awaitStored(t, id)
			f := b.follow(t, tt.workflow, id, -1)
			// Seen on B, the first step's end is stored: its output is checkpointed.
			f.waitFor(t, "the first step's end", step(run.EventStepCompleted, id, 0))
			f.waitFor(t, "the second step's content", func(ev sseEvent) bool {
				return ev.Event.Event == run.EventRunContent && ev.Origin != nil && ev.StepIndex != nil && *ev.StepIndex == 1
			})
			killed := time.Now()
			a.kill(t)

			ri := b.awaitRun(t, id, "taken over", func(ri runInfo) bool { return ri.Replica != "A" || ri.Status.Terminal() })
			took := time.Since(killed)
			t.Logf("takeover %v after kill -9 (lease %v): run %s on %q, %s", took.Round(time.Millisecond), testLease, id, ri.Replica, ri.Status)
			if limit := 2 * testLease; took > limit {
				t.Errorf("run %s taken over %v after its replica died; want within about lease + lease/3 (at most %v)", id, took, limit)
			}
			evs := f.end(t)
			checkEvents(t, "B following from -1 across the takeover", evs, 0, id, tt.terminal)
			ri = b.awaitRun(t, id, "ended", ended)
			if ri.Status != tt.want || (tt.want == run.StatusCompleted && ri.Replica != "B") {
				t.Errorf("run %s: %s on %q, want %s (on B when resumed)", id, ri.Status, ri.Replica, tt.want)
			}
			if tt.steps >= 0 && len(ri.StepResults) != tt.steps {
				t.Errorf("run %s: %d step results, want %d", id, len(ri.StepResults), tt.steps)
			}
			if tt.want == run.StatusError && !strings.Contains(ri.Error, "interrupted") {
				t.Errorf("run %s: error %q, want \"interrupted\"", id, ri.Error)
			}
			stored := b.follow(t, tt.workflow, id, -1).end(t)
			sameEvents(t, "the stored events replayed on B", stored, evs)
			for _, e := range []run.EventType{run.EventStepStarted, run.EventStepCompleted} {
				if n := count(stored, step(e, id, 0)); n != 1 {
					t.Errorf("run %s: the first step's %s %d times in the stored events, want once (finished steps are not run again):\n%s",
						id, e, n, summary(stored))
				}
			}
			if tt.want == run.StatusCompleted {
				if n := count(stored, step(run.EventStepCompleted, id, 2)); n != 1 {
					t.Errorf("run %s: the last step completed %d times, want once:\n%s", id, n, summary(stored))
				}
			}
			checkRunsEnded(t, schema)
			stop(t, b)
		})
	}
}

// pgProxy is a TCP proxy between a replica and PostgreSQL that a test can cut:
// every connection closed, new ones closed as soon as accepted, until restored.
type pgProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex // guards cut and conns
	cut   bool
	conns map[net.Conn]bool

	wg sync.WaitGroup // the accept loop and the pipes
}

// startProxy proxies a loopback port to target (host:port), until the test ends.
func startProxy(t *testing.T, target string) *pgProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.sever()
		p.wg.Wait()
	})
	return p
}

func (p *pgProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.keep(c) {
			continue
		}
		p.wg.Add(1)
		go p.pipe(c)
	}
}

// keep adds c to the connections, or closes it while the proxy is cut.
func (p *pgProxy) keep(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *pgProxy) drop(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(p.conns, c)
	}
}

// pipe copies between c and a connection to the target until either side closes.
func (p *pgProxy) pipe(c net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		p.drop(c)
		return
	}
	if !p.keep(up) {
		p.drop(c)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(up, c)
		p.drop(c, up)
	}()
	io.Copy(c, up)
	p.drop(c, up)
	<-done
}

// sever closes every connection, and those made until restore.
func (p *pgProxy) sever() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

func (p *pgProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// TestReplicaDatabaseCut cuts replica D from PostgreSQL (through a proxy) while it
// executes a run, cancels the run through replica A meanwhile, and restores the
// connection: D hears the cancel once it reconnects, and the run ends CANCELLED.
func TestReplicaDatabaseCut(t *testing.T) {
	t.Parallel()
	db, schema := replicaDB(t)
	u, err := url.Parse(db)
	if err != nil || u.Host == "" {
		t.Fatalf("KERN_TEST_POSTGRES_URL must be a postgres:// URL with a host for this test: %q (%v)", pgtest.URL(), err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	proxy := startProxy(t, target)
	u.Host = proxy.ln.Addr().String()

	// A lease of 3 s outlives the cut (1 s) with a renewal to spare: A must not
	// take the run over.
	const lease, cut = 3 * time.Second, time.Second
	a := startReplica(t, db, "A", replicasYAML, lease)
	d := startReplica(t, u.String(), "D", replicasYAML, lease)

	s := d.stream(t, "hold", "cut me off")
	first, _ := s.waitFor(t, "WorkflowStarted", kind(run.EventWorkflowStarted))
	id := first.RunID
	s.waitFor(t, "content", kind(run.EventRunContent))
	a.awaitStored(t, id) // D stores the run with its first flush, after its first events
	a.awaitRun(t, id, "RUNNING on D", func(ri runInfo) bool { return ri.Status == run.StatusRunning })

	proxy.sever()
	cutAt := time.Now()
	if st := a.cancel(t, id, false); st.Terminal() && st != run.StatusCancelled {
		t.Errorf("cancel through A while D is cut off: %s", st)
	}
	time.Sleep(time.Until(cutAt.Add(cut))) // the outage itself: nothing to wait for
	early := count(s.seen(), is(run.EventWorkflowCancelled, id))
	proxy.restore()
	restored := time.Now()

	_, at := s.waitFor(t, "WorkflowCancelled once D reconnected", is(run.EventWorkflowCancelled, id))
	t.Logf("cancel reached D %v after its database came back (cut %v; cancelled before the restore: %v)",
		at.Sub(restored).Round(time.Millisecond), cut, early > 0)
	checkEvents(t, "D's stream", s.end(t), 0, id, run.EventWorkflowCancelled)
	if ri := a.awaitRun(t, id, "ended", ended); ri.Status != run.StatusCancelled || ri.Replica != "D" {
		t.Errorf("run %s: %s on %q, want CANCELLED on D", id, ri.Status, ri.Replica)
	}

	checkRunsEnded(t, schema)
	stop(t, a, d)
}

// checkRunsEnded checks in the database that every run of the schema ended: its
// status is terminal, and it has exactly one terminal event (a nested run: at most
// one, since a killed replica cannot send it); every run's stored events are
// numbered 0..n, and the last is the run's terminal event. It polls for a while, so
// that ends still being written can land.
func checkRunsEnded(t *testing.T, schema string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*patience)
	defer cancel()
	conn, err := pgtest.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	st, err := postgres.Open(ctx, pgtest.SchemaURL(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = eventually.Wait(ctx, patience, func() error {
		problems, err := runProblems(ctx, conn, st, schema)
		if err != nil {
			t.Fatalf("reading the runs of schema %s: %v", schema, err)
		}
		if len(problems) > 0 {
			return fmt.Errorf("runs that did not end once:\n  %s", strings.Join(problems, "\n  "))
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// runProblems lists what is wrong with the runs of schema, as checkRunsEnded checks:
// the runs read through conn, their events through st (which stores them in pages).
func runProblems(ctx context.Context, conn *pgx.Conn, st *postgres.Store, schema string) ([]string, error) {
	table := func(name string) string { return pgx.Identifier{schema, name}.Sanitize() }
	type stored struct {
		parent string
		status run.Status
		ends   int // terminal events carrying its run id
	}
	runs := map[string]*stored{}
	rows, err := conn.Query(ctx, "SELECT run_id, parent_run_id, status FROM "+table("runs"))
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id string
		r := &stored{}
		if err := rows.Scan(&id, &r.parent, &r.status); err != nil {
			return nil, err
		}
		runs[id] = r
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	type logInfo struct {
		n, first, last int
		lastType       string
		lastRunID      string
	}
	logs := map[string]*logInfo{}
	runOf := func(ev store.Event) string {
		var v struct {
			RunID string `json:"run_id"`
		}
		json.Unmarshal(ev.Data, &v) //nolint:errcheck // an event without one names no run
		return v.RunID
	}
	var ends []string // the run ids of the terminal events
	for id := range runs {
		evs, err := st.Events(ctx, id, 0, 0)
		if err != nil {
			return nil, err
		}
		if len(evs) == 0 {
			continue
		}
		last := evs[len(evs)-1]
		logs[id] = &logInfo{n: len(evs), first: evs[0].Index, last: last.Index, lastType: string(last.Type), lastRunID: runOf(last)}
		for _, ev := range evs {
			if ev.Type.Terminal() {
				ends = append(ends, runOf(ev))
			}
		}
	}
	for _, id := range ends {
		if r := runs[id]; r != nil {
			r.ends++
		}
	}

	var problems []string
	for id, r := range runs {
		if !r.status.Terminal() {
			problems = append(problems, fmt.Sprintf("run %s is %s", id, r.status))
		}
		if top := r.parent == ""; (top && r.ends != 1) || r.ends > 1 {
			problems = append(problems, fmt.Sprintf("run %s (parent %q, %s) has %d terminal events", id, r.parent, r.status, r.ends))
		}
	}
	for id, l := range logs {
		if l.first != 0 || l.last != l.n-1 {
			problems = append(problems, fmt.Sprintf("run %s: %d events numbered %d..%d", id, l.n, l.first, l.last))
		}
		if !run.EventType(l.lastType).Terminal() || l.lastRunID != id {
			problems = append(problems, fmt.Sprintf("run %s: the last event is %s of run %s, not the run's terminal event", id, l.lastType, l.lastRunID))
		}
	}
	slices.Sort(problems)
	return problems, nil
}
