package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// queueHang bounds every wait on a Work loop: far longer than a hand-over takes
// (a rescue takes up to River's 5 s scheduler interval), it only turns a lost job
// into a failure instead of a hung test.
const queueHang = 60 * time.Second

// article is the component of the runs that enqueueRun queues.
var article = store.Component{Kind: run.KindWorkflow, ID: "article"}

// startWork runs s.Work, serving article, until the returned stop is called (or
// the test ends); stop waits for Work to return and fails the test on its error.
func startWork(t testing.TB, s *Store, workers int, fn func(context.Context, *store.Job) error) (stop func()) {
	t.Helper()
	return startServing(t, s, workers, []store.Component{article}, fn)
}

// startServing is startWork for the components in serves.
func startServing(t testing.TB, s *Store, workers int, serves []store.Component, fn func(context.Context, *store.Job) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Work(ctx, workers, serves, fn) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Work: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// enqueueRun queues a run with the given id.
func enqueueRun(t testing.TB, s *Store, id string) {
	t.Helper()
	r := &store.Job{ID: id, SessionID: "s-1", Kind: run.KindWorkflow, ComponentID: "article", Input: "hello " + id}
	if err := s.Enqueue(context.Background(), r); err != nil {
		t.Fatalf("Enqueue(%s): %v", id, err)
	}
}

// receive waits for the next value on ch.
func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(queueHang):
		t.Fatalf("no %s within %v", what, queueHang)
		var zero T
		return zero
	}
}

// gate is what fns wait on until the test opens it; opening twice is harmless.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// openAtEnd opens g when the test ends, before the Work loops started earlier
// are stopped (cleanups run last first): a failed test does not hang on an fn
// that waits at g.
func (g *gate) openAtEnd(t testing.TB) { t.Cleanup(g.open) }

// jobRow is a run's River job as stored.
type jobRow struct {
	state   string
	attempt int
}

// jobsOf returns the River jobs of a run.
func jobsOf(t testing.TB, s *Store, runID string) []jobRow {
	t.Helper()
	rows, err := s.pool.Query(context.Background(),
		"SELECT state::text, attempt FROM "+pgx.Identifier{s.schema, "river_job"}.Sanitize()+" WHERE args->>'run_id' = $1", runID)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (jobRow, error) {
		var j jobRow
		return j, row.Scan(&j.state, &j.attempt)
	})
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// TestQueueEnqueueWork: an enqueued run is stored PENDING with no lease, handed to
// fn once with its record, and its job is done whatever fn returned.
func TestQueueEnqueueWork(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	r := &store.Job{ID: "run-1", SessionID: "s-1", UserID: "u-1", Kind: run.KindWorkflow, ComponentID: "article",
		Status: run.StatusRunning, Replica: "not me", LeaseUntil: time.Now().Add(time.Hour), Input: "Write about dragons."}
	if err := s.Enqueue(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if r.Status != run.StatusPending || r.Replica != "" || !r.LeaseUntil.IsZero() || r.CreatedAt.IsZero() {
		t.Errorf("after Enqueue: status %s, replica %q, lease %v, created %v; want PENDING, none, none, set",
			r.Status, r.Replica, r.LeaseUntil, r.CreatedAt)
	}
	stored, err := s.GetRun(t.Context(), "run-1")
	if err != nil {
		t.Fatal(err)
	}
	if stored.Status != run.StatusPending || stored.Replica != "" || !stored.LeaseUntil.IsZero() {
		t.Errorf("stored run: status %s, replica %q, lease %v; want PENDING with no lease", stored.Status, stored.Replica, stored.LeaseUntil)
	}

	var calls atomic.Int32
	got := make(chan *store.Job, 10)
	stop := startWork(t, s, 4, func(ctx context.Context, j *store.Job) error {
		calls.Add(1)
		got <- j
		return errors.New("the run failed") // logged; the job is done all the same
	})
	j := receive(t, got, "job")
	if j.ID != "run-1" || j.SessionID != "s-1" || j.UserID != "u-1" || j.Kind != run.KindWorkflow ||
		j.ComponentID != "article" || j.Input != "Write about dragons." || j.Status != run.StatusPending {
		t.Errorf("fn got %+v, want the stored record", j)
	}
	stop() // Work returns once River recorded the job's end
	if n := calls.Load(); n != 1 {
		t.Errorf("fn called %d times, want 1", n)
	}
	if jobs := jobsOf(t, s, "run-1"); len(jobs) != 1 || jobs[0] != (jobRow{"completed", 1}) {
		t.Errorf("River jobs of run-1 = %+v, want one, completed at its first attempt", jobs)
	}
}

// TestQueueEnqueueExists: a taken id is refused with ErrExists, and no job is
// queued for it.
func TestQueueEnqueueExists(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	if err := s.CreateRun(t.Context(), &store.Run{ID: "created", Status: run.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	enqueueRun(t, s, "queued")
	for _, id := range []string{"created", "queued"} {
		err := s.Enqueue(t.Context(), &store.Job{ID: id})
		if !errors.Is(err, store.ErrExists) {
			t.Errorf("Enqueue(%s) = %v, want ErrExists", id, err)
		}
	}
	if jobs := jobsOf(t, s, "created"); len(jobs) != 0 {
		t.Errorf("jobs of the created run = %+v, want none", jobs)
	}
	if jobs := jobsOf(t, s, "queued"); len(jobs) != 1 {
		t.Errorf("jobs of the queued run = %+v, want one", jobs)
	}
	if r, err := s.GetRun(t.Context(), "created"); err != nil || r.Status != run.StatusRunning {
		t.Errorf("created run = %+v, %v; want it untouched", r, err)
	}
}

// TestQueueWorkersBound: with workers = 2, never more than two fn run at once in
// the process, and two do.
func TestQueueWorkersBound(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	const n = 8
	for i := range n {
		enqueueRun(t, s, fmt.Sprintf("run-%d", i))
	}
	var (
		active, most atomic.Int32
		started      = make(chan string, n)
		release      = make(chan struct{})
		g            = newGate()
	)
	stop := startWork(t, s, 2, func(ctx context.Context, j *store.Job) error {
		cur := active.Add(1)
		for m := most.Load(); cur > m && !most.CompareAndSwap(m, cur); m = most.Load() {
		}
		started <- j.ID
		select {
		case <-release:
		case <-g.ch:
		}
		active.Add(-1)
		return nil
	})
	g.openAtEnd(t)
	seen := map[string]bool{}
	for range 2 {
		seen[receive(t, started, "start")] = true
	}
	// Two are held; release one at a time: each frees the one slot another takes.
	for len(seen) < n {
		release <- struct{}{}
		seen[receive(t, started, "start")] = true
	}
	g.open()
	stop()
	if m := most.Load(); m != 2 {
		t.Errorf("at most %d fn ran at once, want 2", m)
	}
}

// TestQueueTwoStores: two stores (two replicas) working one schema share its jobs,
// each handed once; a Work loop on another schema sees none of them.
func TestQueueTwoStores(t *testing.T) {
	t.Parallel()
	a := openTest(t)
	b, err := Open(t.Context(), pgtest.URL(), WithSchema(a.Schema()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	other := openTest(t)

	const workers, n = 3, 20
	var (
		mu      sync.Mutex
		handed  = map[string][]string{} // run id → the stores it was handed to
		started = make(chan string, n)
		g       = newGate()
	)
	fn := func(name string) func(context.Context, *store.Job) error {
		return func(ctx context.Context, j *store.Job) error {
			mu.Lock()
			handed[j.ID] = append(handed[j.ID], name)
			mu.Unlock()
			started <- name
			<-g.ch
			return nil
		}
	}
	stopA := startWork(t, a, workers, fn("a"))
	stopB := startWork(t, b, workers, fn("b"))
	var strays atomic.Int32
	stopOther := startWork(t, other, workers, func(context.Context, *store.Job) error { strays.Add(1); return nil })
	g.openAtEnd(t)

	for i := range n {
		enqueueRun(t, a, fmt.Sprintf("run-%d", i))
	}
	// While every fn waits at the gate, each store holds at most `workers` runs:
	// the 2×workers first runs are then shared evenly.
	count := map[string]int{}
	for range 2 * workers {
		count[receive(t, started, "start")]++
	}
	if count["a"] != workers || count["b"] != workers {
		t.Errorf("runs held at once: %v, want %d each", count, workers)
	}
	g.open()
	for range n - 2*workers {
		receive(t, started, "start")
	}
	stopA()
	stopB()
	stopOther()
	for i := range n {
		id := fmt.Sprintf("run-%d", i)
		if got := handed[id]; len(got) != 1 {
			t.Errorf("run %s handed to %v, want exactly one store", id, got)
		}
	}
	if len(handed) != n {
		t.Errorf("%d runs handed, want %d", len(handed), n)
	}
	if k := strays.Load(); k != 0 {
		t.Errorf("a Work loop on another schema was handed %d runs", k)
	}
}

// TestQueueWorkStops: once ctx is done, Work fetches no more, does not cancel the
// running fn, and returns nil once it returned.
func TestQueueWorkStops(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	enqueueRun(t, s, "long")
	var (
		started      = make(chan context.Context, 1)
		g            = newGate()
		workErr      error
		returned     = make(chan struct{})
		workReturned atomic.Bool
		lateWork     atomic.Bool // Work had returned before fn did
	)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		workErr = s.Work(ctx, 1, []store.Component{article}, func(ctx context.Context, j *store.Job) error {
			started <- ctx
			<-g.ch
			lateWork.Store(workReturned.Load())
			return nil
		})
		workReturned.Store(true)
		close(returned)
	}()
	t.Cleanup(func() { g.open(); cancel(); <-returned })

	fnCtx := receive(t, started, "start")
	cancel()
	// Work must wait for the running fn: give it a chance to return too early.
	select {
	case <-returned:
		t.Fatalf("Work returned %v while fn still ran", workErr)
	case <-time.After(200 * time.Millisecond):
	}
	if err := fnCtx.Err(); err != nil {
		t.Errorf("fn's context is done (%v) after Work's was cancelled, want it left to the run", err)
	}
	g.open()
	receive(t, returned, "return of Work")
	if workErr != nil {
		t.Errorf("Work = %v, want nil", workErr)
	}
	if lateWork.Load() {
		t.Error("Work returned before fn did")
	}
	if jobs := jobsOf(t, s, "long"); len(jobs) != 1 || jobs[0].state != "completed" {
		t.Errorf("jobs of the run = %+v, want it completed before Work returned", jobs)
	}
}

// TestQueueRescue: a job left running by a process that died (attempted long ago,
// never finished) is handed to fn again, with the run's record still PENDING.
func TestQueueRescue(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	enqueueRun(t, s, "orphan")
	// What a process that fetched the job and died leaves behind.
	tag, err := s.pool.Exec(t.Context(), "UPDATE "+pgx.Identifier{s.schema, "river_job"}.Sanitize()+
		` SET state = 'running', attempt = 1, attempted_at = now() - interval '2 hours',
			attempted_by = ARRAY['dead-process'] WHERE args->>'run_id' = 'orphan'`)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("leave the job running: %v, %d rows", err, tag.RowsAffected())
	}

	got := make(chan *store.Job, 1)
	stop := startWork(t, s, 2, func(ctx context.Context, j *store.Job) error {
		got <- j
		return nil
	})
	j := receive(t, got, "rescued job")
	if j.ID != "orphan" || j.Status != run.StatusPending || j.Input != "hello orphan" {
		t.Errorf("fn got %+v, want the orphan's PENDING record", j)
	}
	stop()
	if jobs := jobsOf(t, s, "orphan"); len(jobs) != 1 || jobs[0] != (jobRow{"completed", 2}) {
		t.Errorf("jobs of the orphan = %+v, want one, completed at its second attempt", jobs)
	}
}

// TestQueueLongRun: a run whose job has been running longer than queueRescueAfter
// is handed out once more while it still runs; the run is taken, so fn is not
// called again, the job ends done, and the first fn's late end harms nothing. It
// waits for River's rescuer, which runs every 30 s.
func TestQueueLongRun(t *testing.T) {
	if testing.Short() {
		t.Skip("waits up to 30 s for River's rescuer")
	}
	t.Parallel()
	s := openTest(t)
	enqueueRun(t, s, "long")
	var (
		calls = make(chan store.Job, 2)
		g     = newGate()
	)
	stop := startWork(t, s, 2, func(ctx context.Context, j *store.Job) error {
		calls <- *j
		j.Status, j.Replica, j.LeaseUntil = run.StatusRunning, "me", time.Now().Add(time.Hour)
		if err := s.UpdateRun(ctx, j); err != nil {
			return err
		}
		<-g.ch
		return nil
	})
	g.openAtEnd(t)
	if j := receive(t, calls, "first hand-over"); j.Status != run.StatusPending || j.LeaseUntil.IsZero() {
		t.Fatalf("first hand-over: status %s, lease %v; want PENDING, taken", j.Status, j.LeaseUntil)
	}
	// Age the running job as if it had run for two hours.
	if _, err := s.pool.Exec(t.Context(), "UPDATE "+pgx.Identifier{s.schema, "river_job"}.Sanitize()+
		` SET attempted_at = now() - interval '2 hours' WHERE args->>'run_id' = 'long'`); err != nil {
		t.Fatal(err)
	}
	eventually.Succeeds(t, queueHang, func() error { // River's rescuer has no event to wait on
		if jobs := jobsOf(t, s, "long"); len(jobs) != 1 || jobs[0] != (jobRow{"completed", 2}) {
			return fmt.Errorf("jobs of the run = %+v, want one, completed at its second attempt", jobs)
		}
		return nil
	})
	select {
	case j := <-calls:
		t.Errorf("a run already taken was handed to fn again: %+v", j)
	default:
	}
	g.open()
	stop()
}

// TestQueueDeletedRun: a run deleted (with its session) before it started is not
// handed to fn, and its job is dropped rather than retried.
func TestQueueDeletedRun(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	if err := s.SaveSession(t.Context(), &store.Session{ID: "gone", Kind: run.KindWorkflow}); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(t.Context(), &store.Job{ID: "deleted", SessionID: "gone", Kind: run.KindWorkflow, ComponentID: "article"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSession(t.Context(), "gone"); err != nil {
		t.Fatal(err)
	}
	enqueueRun(t, s, "marker") // jobs are fetched in order: with one worker, after the deleted one
	got := make(chan string, 2)
	stop := startWork(t, s, 1, func(ctx context.Context, j *store.Job) error {
		got <- j.ID
		return nil
	})
	if id := receive(t, got, "job"); id != "marker" {
		t.Errorf("fn got %s, want only the marker", id)
	}
	stop()
	if jobs := jobsOf(t, s, "deleted"); len(jobs) != 1 || jobs[0].state != "cancelled" {
		t.Errorf("jobs of the deleted run = %+v, want one, cancelled", jobs)
	}
}

// TestQueueWorkBadInput: Work refuses workers < 1 and a closed store at once.
func TestQueueWorkBadInput(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	nop := func(context.Context, *store.Job) error { return nil }
	serves := []store.Component{article}
	if err := s.Work(t.Context(), 0, serves, nop); err == nil {
		t.Error("Work with 0 workers = nil, want an error")
	}
	s.Close()
	if err := s.Work(t.Context(), 1, serves, nop); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Work on a closed store = %v, want ErrClosed", err)
	}
	if err := s.Enqueue(t.Context(), &store.Job{ID: "x"}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Enqueue on a closed store = %v, want ErrClosed", err)
	}
}

// BenchmarkQueueLatency measures the time from Enqueue on one store to fn on a
// Work loop of another store of the same schema (another replica), one run at a
// time, and reports its median and 99th percentile:
//
//	go test ./store/postgres -run '^$' -bench QueueLatency -benchtime 200x
func BenchmarkQueueLatency(b *testing.B) {
	in := openTest(b)
	out, err := Open(b.Context(), pgtest.URL(), WithSchema(in.Schema()))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	got := make(chan time.Time, 1)
	stop := startWork(b, out, 4, func(ctx context.Context, j *store.Job) error {
		got <- time.Now()
		return nil
	})
	defer stop()
	enqueueRun(b, in, "warm-up") // the Work loop is listening once it is handed this
	receive(b, got, "warm-up")

	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		enqueueRun(b, in, fmt.Sprintf("run-%d", i))
		lat = append(lat, receive(b, got, "job").Sub(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkQueueThroughput measures runs handed per second through Work loops on
// one and on two stores (replicas) of one schema, 8 workers each, from a queue
// that b.N runs were enqueued to beforehand. With run=0 fn returns at once, so
// this is the queue's own cost; with run=20ms each run takes 20 ms, so that the
// workers, not the database, bound the rate:
//
//	go test ./store/postgres -run '^$' -bench QueueThroughput -benchtime 2000x
func BenchmarkQueueThroughput(b *testing.B) {
	for _, c := range []struct {
		stores int
		run    time.Duration
	}{{1, 0}, {2, 0}, {1, 20 * time.Millisecond}, {2, 20 * time.Millisecond}} {
		b.Run(fmt.Sprintf("stores=%d/run=%v", c.stores, c.run), func(b *testing.B) {
			first := openTest(b)
			ss := []*Store{first}
			for range c.stores - 1 {
				s, err := Open(b.Context(), pgtest.URL(), WithSchema(first.Schema()))
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				ss = append(ss, s)
			}
			for i := range b.N {
				enqueueRun(b, first, fmt.Sprintf("run-%d", i))
			}
			var left atomic.Int64
			left.Store(int64(b.N))
			all := make(chan struct{})
			fn := func(ctx context.Context, j *store.Job) error {
				time.Sleep(c.run) // the run
				if left.Add(-1) == 0 {
					close(all)
				}
				return nil
			}
			b.ReportAllocs()
			b.ResetTimer()
			for _, s := range ss {
				defer startWork(b, s, 8, fn)()
			}
			receive(b, all, "all runs")
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
		})
	}
}

// TestQueueSchemaLen: a schema name of MaxSchemaLen bytes holds a working queue;
// a longer one is refused by Open before anything is created.
func TestQueueSchemaLen(t *testing.T) {
	t.Parallel()
	name := pgtest.Schema(t)
	name += strings.Repeat("q", MaxSchemaLen-len(name))
	t.Cleanup(func() {
		if _, err := adminExec("DROP SCHEMA IF EXISTS " + pgx.Identifier{name}.Sanitize() + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	s, err := Open(t.Context(), pgtest.URL(), WithSchema(name))
	if err != nil {
		t.Fatalf("Open with a %d-byte schema name: %v", len(name), err)
	}
	defer s.Close()
	enqueueRun(t, s, "run-1")
	got := make(chan string, 1)
	stop := startWork(t, s, 1, func(ctx context.Context, j *store.Job) error { got <- j.ID; return nil })
	if id := receive(t, got, "job"); id != "run-1" {
		t.Errorf("fn got %s, want run-1", id)
	}
	stop()

	long := name + "x"
	if _, err := Open(t.Context(), pgtest.URL(), WithSchema(long)); err == nil || !strings.Contains(err.Error(), "river_leadership") {
		t.Errorf("Open with a %d-byte schema name = %v, want it refused for the queue's channel names", len(long), err)
	}
	if n, err := adminExec("SELECT 1 FROM pg_namespace WHERE nspname = $1", long); err != nil || n != 0 {
		t.Errorf("schema %s: %d found, %v; want none created", long, n, err)
	}
}

// adminExec runs a statement outside any store and returns the rows it touched.
func adminExec(sql string, args ...any) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgtest.Connect(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}

// TestQueueCancelQueued: a run cancelled while queued ends CANCELLED with one
// terminal event, and no worker starts it; a run a worker took is not cancelled
// that way.
func TestQueueCancelQueued(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	enqueueRun(t, s, "queued")
	ok, err := s.CancelQueued(ctx, "queued", "requested")
	if err != nil || !ok {
		t.Fatalf("CancelQueued: %v, %v; want true", ok, err)
	}
	r, err := s.GetRun(ctx, "queued")
	if err != nil || r.Status != run.StatusCancelled || r.Output.Reason != "requested" {
		t.Fatalf("cancelled queued run: %+v, %v", r, err)
	}
	evs, err := s.Events(ctx, "queued", 0, 0)
	if err != nil || len(evs) != 1 || evs[0].Index != 0 || evs[0].Type != run.EventWorkflowCancelled {
		t.Fatalf("events: %+v, %v; want one WorkflowCancelled at 0", evs, err)
	}
	var ev run.Event
	if err := json.Unmarshal(evs[0].Data, &ev); err != nil || ev.RunID != "queued" || ev.Reason != "requested" || ev.WorkflowID != "article" {
		t.Fatalf("terminal event %s: %+v, %v", evs[0].Data, ev, err)
	}
	if ok, err := s.CancelQueued(ctx, "queued", "again"); ok || err != nil {
		t.Fatalf("second CancelQueued: %v, %v; want false", ok, err)
	}
	if ok, err := s.CancelQueued(ctx, "never-queued", "x"); ok || err != nil {
		t.Fatalf("CancelQueued of an unknown run: %v, %v; want false", ok, err)
	}

	// A worker skips the cancelled run and takes the next one, which then cannot be
	// cancelled as queued.
	started := make(chan *store.Job, 2)
	g := newGate()
	g.openAtEnd(t)
	startWork(t, s, 1, func(ctx context.Context, j *store.Job) error {
		started <- j
		<-g.ch
		return nil
	})
	enqueueRun(t, s, "next")
	j := receive(t, started, "the next run")
	if j.ID != "next" || j.LeaseUntil.IsZero() {
		t.Fatalf("worker got %s with lease %v; want next, taken with a lease", j.ID, j.LeaseUntil)
	}
	if ok, err := s.CancelQueued(ctx, "next", "late"); ok || err != nil {
		t.Fatalf("CancelQueued of a taken run: %v, %v; want false", ok, err)
	}
	g.open()
}

// jobInfo is a run's River job as stored: its queue, its state, and how often it
// was fetched (an entry of attempted_by each time) and put back (snoozed).
type jobInfo struct {
	queue   string
	state   string
	attempt int
	fetches int
	snoozes int
}

// jobInfos returns the River jobs of a run, oldest first.
func jobInfos(t testing.TB, s *Store, runID string) []jobInfo {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT queue, state::text, attempt,
			coalesce(cardinality(attempted_by), 0), coalesce((metadata->>'snoozes')::int, 0)
		FROM `+pgx.Identifier{s.schema, "river_job"}.Sanitize()+` WHERE args->>'run_id' = $1 ORDER BY id`, runID)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (jobInfo, error) {
		var j jobInfo
		return j, row.Scan(&j.queue, &j.state, &j.attempt, &j.fetches, &j.snoozes)
	})
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// enqueueFor queues a run of component c.
func enqueueFor(t testing.TB, s *Store, c store.Component, id string) {
	t.Helper()
	r := &store.Job{ID: id, SessionID: "s-1", Kind: c.Kind, ComponentID: c.ID, Input: "hello " + id}
	if err := s.Enqueue(context.Background(), r); err != nil {
		t.Fatalf("Enqueue(%s): %v", id, err)
	}
}

// riverAccepts reports why River refuses name as a queue's, or nil: River
// checks it when a client is made (which connects to nothing yet).
func riverAccepts(s *Store, name string) error {
	ws := river.NewWorkers()
	river.AddWorker(ws, &runWorker{})
	_, err := river.NewClient(riverpgxv5.New(s.pool), &river.Config{
		Queues: map[string]river.QueueConfig{name: {MaxWorkers: 1}}, Workers: ws})
	return err
}

// TestQueueName: every component gets a queue name that River accepts, that is
// the same each time (a changed name would strand the runs queued under the old
// one), and that no other component gets, whatever its id holds.
func TestQueueName(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	if err := riverAccepts(s, "Kern Runs"); err == nil {
		t.Fatal(`River accepts the queue name "Kern Runs": the check below checks nothing`)
	}
	long := strings.Repeat("x", 1000)
	cut := strings.Repeat("a", 32) + "-b" // the slug is cut where its separator falls
	cases := []struct {
		name string
		c    store.Component
		want string // when set, the exact name
	}{
		{"plain", article, "kern_workflow-article_5f92b6a9ec662500"},
		{"same id, other kind", store.Component{Kind: run.KindAgent, ID: "article"}, ""},
		{"upper case", store.Component{Kind: run.KindWorkflow, ID: "Article"}, ""},
		{"punctuation", store.Component{Kind: run.KindWorkflow, ID: "my article/v2.1"}, ""},
		{"same slug as punctuation", store.Component{Kind: run.KindWorkflow, ID: "my-article-v2-1"}, ""},
		{"underscores", store.Component{Kind: run.KindWorkflow, ID: "__my__article__"}, ""},
		{"pipes", store.Component{Kind: run.KindWorkflow, ID: "a||b"}, ""},
		{"separators only", store.Component{Kind: run.KindWorkflow, ID: "---"}, ""},
		{"empty id", store.Component{Kind: run.KindWorkflow, ID: ""}, ""},
		{"empty kind", store.Component{ID: "article"}, ""},
		{"not ASCII", store.Component{Kind: run.KindAgent, ID: "Écrire un article — 日本"}, ""},
		{"only not ASCII", store.Component{Kind: run.KindAgent, ID: "日本"}, ""},
		{"control characters", store.Component{Kind: run.KindAgent, ID: "a\x00b\nc"}, ""},
		{"long", store.Component{Kind: run.KindWorkflow, ID: long}, ""},
		{"long, last byte differs", store.Component{Kind: run.KindWorkflow, ID: long[:999] + "y"}, ""},
		{"separator at the cut", store.Component{Kind: run.KindWorkflow, ID: cut}, ""},
		{"the legacy queue's name", store.Component{Kind: "kern", ID: "runs"}, ""},
	}
	seen := map[string]string{legacyQueue: "the legacy queue"}
	for _, tc := range cases {
		got := queueOf(tc.c)
		if tc.want != "" && got != tc.want {
			t.Errorf("%s: queueOf(%+v) = %q, want %q", tc.name, tc.c, got, tc.want)
		}
		if again := queueOf(tc.c); again != got {
			t.Errorf("%s: queueOf is not stable: %q, then %q", tc.name, got, again)
		}
		if err := riverAccepts(s, got); err != nil {
			t.Errorf("%s: River refuses queue name %q (%d bytes): %v", tc.name, got, len(got), err)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("%s: queue name %q is also %s's", tc.name, got, prev)
		}
		seen[got] = tc.name
	}
}

// TestQueueRoutesByComponent: a Work loop is handed only runs of the components
// it serves. A run of another component is never fetched by it, however long
// it waits, and is handed at its first fetch to a loop that serves it.
func TestQueueRoutesByComponent(t *testing.T) {
	t.Parallel()
	a := openTest(t)
	b, err := Open(t.Context(), pgtest.URL(), WithSchema(a.Schema()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	other := store.Component{Kind: run.KindAgent, ID: "other"}

	var strays atomic.Int32
	serve := func(c store.Component, got chan<- string) func(context.Context, *store.Job) error {
		return func(ctx context.Context, j *store.Job) error {
			if j.Kind != c.Kind || j.ComponentID != c.ID {
				strays.Add(1)
				return store.ErrNotHere
			}
			got <- j.ID
			return nil
		}
	}
	const n = 10
	gotA, gotB := make(chan string, 2*n), make(chan string, 2*n)
	stopA := startServing(t, a, 4, []store.Component{other}, serve(other, gotA))

	// Queued first, the article run would be fetched first from one queue.
	enqueueFor(t, a, article, "article-0")
	enqueueFor(t, a, other, "other-0")
	if id := receive(t, gotA, "run of other"); id != "other-0" {
		t.Fatalf("A got %s, want other-0", id)
	}
	want := jobInfo{queue: queueOf(article), state: "available"}
	if jobs := jobInfos(t, a, "article-0"); len(jobs) != 1 || jobs[0] != want {
		t.Fatalf("job of article-0 after A was handed a later run: %+v, want %+v (never fetched)", jobs, want)
	}

	stopB := startServing(t, b, 4, []store.Component{article}, serve(article, gotB))
	if id := receive(t, gotB, "run of article"); id != "article-0" {
		t.Fatalf("B got %s, want article-0", id)
	}
	for i := 1; i < n; i++ {
		enqueueFor(t, a, article, fmt.Sprintf("article-%d", i))
		enqueueFor(t, b, other, fmt.Sprintf("other-%d", i))
	}
	for range n - 1 {
		if id := receive(t, gotA, "run of other"); !strings.HasPrefix(id, "other-") {
			t.Errorf("A got %s", id)
		}
		if id := receive(t, gotB, "run of article"); !strings.HasPrefix(id, "article-") {
			t.Errorf("B got %s", id)
		}
	}
	stopA()
	stopB()
	if k := strays.Load(); k != 0 {
		t.Errorf("%d runs handed to a loop that does not serve their component", k)
	}
	for i := range n {
		for _, c := range []store.Component{article, other} {
			id := fmt.Sprintf("%s-%d", c.ID, i)
			want := jobInfo{queue: queueOf(c), state: "completed", attempt: 1, fetches: 1}
			if jobs := jobInfos(t, a, id); len(jobs) != 1 || jobs[0] != want {
				t.Errorf("jobs of %s = %+v, want one, %+v: fetched once, by the loop serving it", id, jobs, want)
			}
		}
	}
}

// TestQueueNotHere: a run whose fn answers store.ErrNotHere (its component no
// longer served) goes back to its queue, no longer taken, and is handed again.
func TestQueueNotHere(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	enqueueRun(t, s, "run-1")
	var calls atomic.Int32
	got := make(chan store.Job, 2)
	stop := startWork(t, s, 1, func(ctx context.Context, j *store.Job) error {
		got <- *j
		if calls.Add(1) == 1 {
			return store.ErrNotHere
		}
		return nil
	})
	for i := range 2 {
		j := receive(t, got, "hand-over")
		if j.ID != "run-1" || j.Status != run.StatusPending || j.LeaseUntil.IsZero() {
			t.Errorf("hand-over %d: %s, status %s, lease %v; want run-1 PENDING, taken", i+1, j.ID, j.Status, j.LeaseUntil)
		}
	}
	stop()
	want := jobInfo{queue: queueOf(article), state: "completed", attempt: 1, fetches: 2, snoozes: 1}
	if jobs := jobInfos(t, s, "run-1"); len(jobs) != 1 || jobs[0] != want {
		t.Errorf("jobs of run-1 = %+v, want one, %+v", jobs, want)
	}
}

// TestQueueLegacyJobs: runs that an older kern queued on its one queue still
// start: any Work loop, whichever components it serves, moves each job to its
// component's queue (a run no longer queued needs none), where a loop serving
// the component is handed it.
func TestQueueLegacyJobs(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	enqueueRun(t, s, "old")
	enqueueRun(t, s, "cancelled")
	if ok, err := s.CancelQueued(t.Context(), "cancelled", "requested"); err != nil || !ok {
		t.Fatalf("CancelQueued: %v, %v", ok, err)
	}
	// What an older kern leaves: the runs' jobs on its one queue.
	if _, err := s.pool.Exec(t.Context(), "UPDATE "+pgx.Identifier{s.schema, "river_job"}.Sanitize()+
		" SET queue = $1", legacyQueue); err != nil {
		t.Fatal(err)
	}

	var strays atomic.Int32
	stop := startServing(t, s, 2, nil, func(context.Context, *store.Job) error { strays.Add(1); return nil })
	moved := jobInfo{queue: legacyQueue, state: "completed", attempt: 1, fetches: 1}
	wantOld := []jobInfo{moved, {queue: queueOf(article), state: "available"}}
	wantCancelled := []jobInfo{moved}
	eventually.Succeeds(t, queueHang, func() error { // River's tables have no event to wait on
		old, cancelled := jobInfos(t, s, "old"), jobInfos(t, s, "cancelled")
		if !slices.Equal(old, wantOld) || !slices.Equal(cancelled, wantCancelled) {
			return fmt.Errorf("jobs of old = %+v, want %+v; of cancelled = %+v, want %+v", old, wantOld, cancelled, wantCancelled)
		}
		return nil
	})
	stop()
	if k := strays.Load(); k != 0 {
		t.Errorf("a Work loop serving nothing was handed %d runs", k)
	}

	got := make(chan string, 2)
	stop = startWork(t, s, 1, func(ctx context.Context, j *store.Job) error { got <- j.ID; return nil })
	if id := receive(t, got, "moved run"); id != "old" {
		t.Errorf("fn got %s, want old", id)
	}
	stop()
	wantOld[1] = jobInfo{queue: queueOf(article), state: "completed", attempt: 1, fetches: 1}
	if jobs := jobInfos(t, s, "old"); !slices.Equal(jobs, wantOld) {
		t.Errorf("jobs of old = %+v, want %+v", jobs, wantOld)
	}
}

// TestQueueWorkersBoundAcrossComponents: the bound on runs at once holds for the
// process, not for each component's queue: serving three components with
// workers = 2, never more than two fn run at once, and every run is handed once.
func TestQueueWorkersBoundAcrossComponents(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	serves := []store.Component{article, {Kind: run.KindAgent, ID: "writer"}, {Kind: run.KindWorkflow, ID: "digest"}}
	const perComponent = 2
	n := perComponent * len(serves)
	for i := range perComponent {
		for _, c := range serves {
			enqueueFor(t, s, c, fmt.Sprintf("%s-%d", c.ID, i))
		}
	}
	var (
		active, most atomic.Int32
		started      = make(chan string, n)
		release      = make(chan struct{})
		g            = newGate()
	)
	stop := startServing(t, s, 2, serves, func(ctx context.Context, j *store.Job) error {
		cur := active.Add(1)
		for m := most.Load(); cur > m && !most.CompareAndSwap(m, cur); m = most.Load() {
		}
		started <- j.ID
		select {
		case <-release:
		case <-g.ch:
		}
		active.Add(-1)
		return nil
	})
	g.openAtEnd(t)
	seen := map[string]int{}
	for range 2 {
		seen[receive(t, started, "start")]++
	}
	for len(seen) < n {
		release <- struct{}{}
		seen[receive(t, started, "start")]++
	}
	g.open()
	stop()
	if m := most.Load(); m != 2 {
		t.Errorf("at most %d fn ran at once, want 2", m)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("run %s handed %d times, want once", id, k)
		}
	}
}
