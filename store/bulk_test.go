package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
)

// bulkGate holds the first write that carries the events of one run (a call of the
// recorder's bulk: the run neither ends nor checkpoints then), or renews its lease,
// until released, and tells when it holds it.
type bulkGate struct {
	mu      sync.Mutex // guards run
	run     string     // the run whose first write it holds; "" once held
	held    chan struct{}
	release chan struct{}
	once    sync.Once
}

// open lets the write held go on, and the next ones.
func (g *bulkGate) open() { g.once.Do(func() { close(g.release) }) }

func newBulkGate(id string) *bulkGate {
	return &bulkGate{run: id, held: make(chan struct{}), release: make(chan struct{})}
}

// events holds the write of evs if it is the one to hold.
func (g *bulkGate) events(evs []store.Event) {
	g.wait(func(id string) bool {
		return slices.ContainsFunc(evs, func(ev store.Event) bool { return ev.RunID == id })
	})
}

// wait holds the write if it is the one to hold: has tells whether it carries a
// run's events or lease.
func (g *bulkGate) wait(has func(id string) bool) {
	g.mu.Lock()
	hold := g.run != "" && has(g.run)
	if hold {
		g.run = ""
	}
	g.mu.Unlock()
	if hold {
		close(g.held)
		<-g.release
	}
}

// gatedMem is the recorder tests' store in memory (no EndWriter: a run's last
// events and its end are two writes), its writes of events held by a bulkGate.
type gatedMem struct {
	*memStore
	gate *bulkGate
}

func (g *gatedMem) AppendEvents(ctx context.Context, evs []store.Event) error {
	g.gate.events(evs)
	return g.memStore.AppendEvents(ctx, evs)
}

// gatedSQLite is a SQLite store (an EndWriter and a Fencer), its fenced writes of
// events held by a bulkGate.
type gatedSQLite struct {
	*sqlite.Store
	gate *bulkGate
}

func (g *gatedSQLite) AppendEventsAs(ctx context.Context, replica string, evs []store.Event) ([]string, error) {
	g.gate.events(evs)
	return g.Store.AppendEventsAs(ctx, replica, evs)
}

// endSignal is a recorder that tells when a run's End is called.
type endSignal struct {
	*store.Recorder
	ending chan struct{}
}

func (e *endSignal) End(ctx context.Context, x *run.Exec) error {
	close(e.ending)
	return e.Recorder.End(ctx, x)
}

// TestRecorderUrgentWritesPassTheBulk: while a call of the recorder's bulk (the
// live events of other runs) is in flight, another run begins, emits and ends,
// its Begin and End answered: what a caller waits for does not wait for the bulk.
// The end of a run whose events that call carries waits for it, and lands after
// them: the run's events are stored in order, with no gap, its end last.
func TestRecorderUrgentWritesPassTheBulk(t *testing.T) {
	for _, backend := range []string{"memory", "sqlite"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			id := run.NewID()
			gate := newBulkGate(id)
			var st store.Store
			switch backend {
			case "memory":
				st = &gatedMem{memStore: newMemStore(), gate: gate}
			case "sqlite":
				db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kern.db"))
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				st = &gatedSQLite{Store: db, gate: gate}
			}
			// The bulk at once, under load as when idle.
			rec := store.NewRecorder(st, store.RecorderOptions{Replica: "A", FlushInterval: time.Millisecond, Lease: time.Hour, NoRecovery: true})
			defer rec.Close()
			defer gate.open() // before Close, which waits for the write held

			bulked := &endSignal{Recorder: rec, ending: make(chan struct{})}
			end := make(chan struct{})
			x, err := goRun(t.Context(), bulked, id, nil, func(x engine.Run) error {
				emit(x, "live", run.EventWorkflowStarted, run.EventStepStarted)
				<-end
				emit(x, "last", run.EventRunContent)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			<-gate.held // the bulk's call with the run's first events
			close(end)
			<-bulked.ending

			other, err := goRun(t.Context(), rec, run.NewID(), nil, func(x engine.Run) error {
				emit(x, "other", run.EventWorkflowStarted, run.EventStepStarted)
				return nil
			})
			if err != nil {
				t.Fatalf("Begin while the bulk's call was in flight: %v", err)
			}
			if out := other.Wait(); out.Status != run.StatusCompleted || other.PersistErr() != nil {
				t.Fatalf("other run ended %s %q, persist error %v", out.Status, out.Error, other.PersistErr())
			}
			if evs, _ := st.Events(t.Context(), other.ID, 0, 0); len(evs) != 3 {
				t.Errorf("other run: %d events stored with its end, want 3", len(evs))
			}
			select {
			case <-x.Done():
				t.Fatal("the run ended while the write of its first events was in flight")
			default:
			}
			if got, err := st.GetRun(t.Context(), id); err != nil || got.Status != run.StatusRunning {
				t.Fatalf("the run's record while its first events were in flight: %+v, %v; want RUNNING", got, err)
			}

			gate.open()
			if out := x.Wait(); out.Status != run.StatusCompleted || x.PersistErr() != nil {
				t.Fatalf("run ended %s %q, persist error %v", out.Status, out.Error, x.PersistErr())
			}
			evs, err := st.Events(t.Context(), id, 0, 0)
			if err != nil || len(evs) != 4 {
				t.Fatalf("stored events: %d, %v; want 4", len(evs), err)
			}
			for i, ev := range evs {
				if ev.Index != i {
					t.Fatalf("stored event %d has index %d: %+v", i, ev.Index, evs)
				}
			}
			if evs[3].Type != run.EventWorkflowCompleted {
				t.Errorf("last stored event %s, want WorkflowCompleted", evs[3].Type)
			}
			if got, err := st.GetRun(t.Context(), id); err != nil || got.Status != run.StatusCompleted {
				t.Fatalf("stored run: %+v, %v; want COMPLETED", got, err)
			}
		})
	}
}

// gatedRenewals is the recorder tests' store in memory, its renewals of leases
// held by a bulkGate.
type gatedRenewals struct {
	*memStore
	gate *bulkGate
}

func (g *gatedRenewals) RenewLeases(ctx context.Context, replica string, ids []string, until time.Time) ([]string, error) {
	g.gate.wait(func(id string) bool { return slices.Contains(ids, id) })
	return g.memStore.RenewLeases(ctx, replica, ids, until)
}

// TestRecorderEndAfterRenewal: a run that ends while the bulk renews its lease has
// its end written once the renewal returned, so that the renewal, which the store
// refuses for a run that ended, does not find it lost; meanwhile another run
// begins and ends.
func TestRecorderEndAfterRenewal(t *testing.T) {
	t.Parallel()
	id := run.NewID()
	gate := newBulkGate(id)
	st := &gatedRenewals{memStore: newMemStore(), gate: gate}
	clk := store.NewTestClock()
	const lease = time.Hour
	rec := store.NewRecorder(st, store.WithClock(store.RecorderOptions{Replica: "A", FlushInterval: time.Millisecond, Lease: lease, NoRecovery: true}, clk))
	defer rec.Close()
	defer gate.open()

	renewing := &endSignal{Recorder: rec, ending: make(chan struct{})}
	ready, end := make(chan error, 1), make(chan struct{})
	x, err := goRun(t.Context(), renewing, id, nil, func(x engine.Run) error {
		emit(x, "", run.EventWorkflowStarted)
		ready <- rec.Checkpoint(t.Context(), x.X, nil) // its record and events are stored
		<-end
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-ready; err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	clk.Advance(lease / 3) // the leases are due to be renewed
	<-gate.held
	close(end)
	<-renewing.ending

	other, err := goRun(t.Context(), rec, run.NewID(), nil, func(x engine.Run) error {
		emit(x, "other", run.EventWorkflowStarted)
		return nil
	})
	if err != nil {
		t.Fatalf("Begin while a renewal was in flight: %v", err)
	}
	if out := other.Wait(); out.Status != run.StatusCompleted || other.PersistErr() != nil {
		t.Fatalf("other run ended %s %q, persist error %v", out.Status, out.Error, other.PersistErr())
	}
	select {
	case <-x.Done():
		t.Fatal("the run ended while the renewal of its lease was in flight")
	default:
	}

	gate.open()
	if out := x.Wait(); out.Status != run.StatusCompleted || x.PersistErr() != nil {
		t.Fatalf("run ended %s %q, persist error %v", out.Status, out.Error, x.PersistErr())
	}
	if got, err := st.GetRun(t.Context(), id); err != nil || got.Status != run.StatusCompleted {
		t.Fatalf("stored run: %+v, %v; want COMPLETED", got, err)
	}
}

// limitedMem is the recorder tests' store in memory, a BulkLimiter: it tells how
// many runs' events each write carried, and when every run has n events stored.
type limitedMem struct {
	*memStore
	most int

	mu     sync.Mutex // guards counts, widest, wait
	counts map[string]int
	widest int // the most runs one write carried
	wait   []limitWait
}

// limitWait is a wait for runs runs to have n events stored each.
type limitWait struct {
	runs, n int
	done    chan struct{}
}

func (l *limitedMem) BulkRuns() int { return l.most }

func (l *limitedMem) AppendEvents(ctx context.Context, evs []store.Event) error {
	if err := l.memStore.AppendEvents(ctx, evs); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	runs := map[string]bool{}
	for _, ev := range evs {
		runs[ev.RunID] = true
		l.counts[ev.RunID]++
	}
	l.widest = max(l.widest, len(runs))
	l.wait = slices.DeleteFunc(l.wait, func(w limitWait) bool {
		have := 0
		for _, c := range l.counts {
			if c >= w.n {
				have++
			}
		}
		if have >= w.runs {
			close(w.done)
			return true
		}
		return false
	})
	return nil
}

// stored returns a channel closed once runs runs have n events stored each.
func (l *limitedMem) stored(runs, n int) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := limitWait{runs: runs, n: n, done: make(chan struct{})}
	l.wait = append(l.wait, w)
	return w.done
}

// TestRecorderBulkLimiter: the bulk's calls to a BulkLimiter carry the events of
// BulkRuns runs at most, however many runs have events to write.
func TestRecorderBulkLimiter(t *testing.T) {
	t.Parallel()
	const runs, most = 40, 8
	st := &limitedMem{memStore: newMemStore(), most: most, counts: map[string]int{}}
	rec := store.NewRecorder(st, store.RecorderOptions{Replica: "A", FlushInterval: time.Millisecond, NoRecovery: true})
	defer rec.Close()
	first, second := st.stored(runs, 1), st.stored(runs, 2)
	next, end := make(chan struct{}), make(chan struct{})
	goNext, goEnd := sync.OnceFunc(func() { close(next) }), sync.OnceFunc(func() { close(end) })
	defer goEnd() // a run started is never left waiting, however the test ends
	defer goNext()
	var xs []*run.Exec
	for i := range runs {
		x, err := goRun(t.Context(), rec, run.NewID(), nil, func(x engine.Run) error {
			emit(x, "one", run.EventWorkflowStarted)
			<-next
			emit(x, "two", run.EventRunContent)
			<-end
			return nil
		})
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		xs = append(xs, x)
	}
	waitFor := func(c <-chan struct{}, what string) {
		select {
		case <-c:
		case <-time.After(time.Minute):
			t.Fatalf("the runs' events were not all stored %s", what)
		}
	}
	waitFor(first, "once") // the bulk's calls took their measure
	goNext()
	waitFor(second, "twice")
	// Until the runs end, every write of their events is the bulk's (their ends
	// write all of theirs at once).
	st.mu.Lock()
	widest := st.widest
	st.mu.Unlock()
	goEnd()
	for _, x := range xs {
		if out := x.Wait(); out.Status != run.StatusCompleted || x.PersistErr() != nil {
			t.Fatalf("run ended %s %q, persist error %v", out.Status, out.Error, x.PersistErr())
		}
	}
	if widest > most {
		t.Errorf("a write of the bulk carried the events of %d runs; want %d at most", widest, most)
	}
}

// pacedMem is the recorder tests' store in memory, a BulkLimiter whose writes of
// events take callTime each; it notes each write's runs and when it ran.
type pacedMem struct {
	*memStore
	callTime atomic.Int64 // nanoseconds

	mu    sync.Mutex // guards calls
	calls []bulkCallSeen
}

// bulkCallSeen is a write of events as the store saw it.
type bulkCallSeen struct {
	first, last string // the least and the greatest run id it carried
	start, end  time.Time
}

// newPaced returns a pacedMem whose writes of events take 2 ms, and a recorder
// writing to it, closed once the test's other cleanups (its runs' ends) are done.
func newPaced(t *testing.T) (*pacedMem, *store.Recorder) {
	st := &pacedMem{memStore: newMemStore()}
	st.callTime.Store(int64(2 * time.Millisecond))
	rec := store.NewRecorder(st, store.RecorderOptions{Replica: "A", FlushInterval: time.Millisecond, NoRecovery: true})
	t.Cleanup(func() { rec.Close() })
	return st, rec
}

func (p *pacedMem) BulkRuns() int { return 8 }

func (p *pacedMem) AppendEvents(ctx context.Context, evs []store.Event) error {
	start := time.Now()
	time.Sleep(time.Duration(p.callTime.Load())) // a store that takes its time
	err := p.memStore.AppendEvents(ctx, evs)
	if len(evs) == 0 {
		return err
	}
	seen := bulkCallSeen{first: evs[0].RunID, last: evs[0].RunID, start: start, end: time.Now()}
	for _, ev := range evs {
		seen.first, seen.last = min(seen.first, ev.RunID), max(seen.last, ev.RunID)
	}
	p.mu.Lock()
	p.calls = append(p.calls, seen)
	p.mu.Unlock()
	return err
}

// gaps returns, for each two writes of one bulk one after the other (the second's
// runs follow the first's: a bulk writes its runs in the order of their ids), how
// long the first took and the pause between them.
func (p *pacedMem) gaps() (took, pause []time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 1; i < len(p.calls); i++ {
		a, b := p.calls[i-1], p.calls[i]
		if b.first > a.last {
			took, pause = append(took, a.end.Sub(a.start)), append(pause, b.start.Sub(a.end))
		}
	}
	return took, pause
}

// TestRecorderBulkPauses: within its window, the bulk pauses after each call
// twice as long as the call took, so that an urgent write finds the store (and
// the cores) busy with the bulk a third of the time, not all of it.
func TestRecorderBulkPauses(t *testing.T) {
	t.Parallel()
	const runs = 40 // five calls of 8 runs a bulk
	st, rec := newPaced(t)
	halt := streamRuns(t, rec, runs)
	// Enough bulks for the window to be set by the ones before (the first has
	// none: it does not pause).
	st.waitGaps(t, 40)
	halt()
	took, pause := st.gaps()
	paused := 0
	for i := range took {
		if pause[i] >= 2*took[i] {
			paused++
		}
	}
	// A call that took much longer than the ones before may end the pauses of its
	// bulk (behind its window, the bulk does not pause); most calls pause.
	if paused < len(took)/2 {
		t.Errorf("%d of %d calls of a bulk were followed by a pause twice as long as they took; want most", paused, len(took))
	}
}

// TestRecorderBulkPausesOnlyInItsWindow: a bulk whose calls take longer than its
// window has room for does not pause: pauses must not cut what the store takes.
func TestRecorderBulkPausesOnlyInItsWindow(t *testing.T) {
	t.Parallel()
	const runs = 40
	st, rec := newPaced(t)
	halt := streamRuns(t, rec, runs)
	st.waitGaps(t, 20) // the window set by calls of 2 ms
	st.callTime.Store(int64(100 * time.Millisecond))
	took, _ := st.gaps()
	fast := len(took)
	st.waitGaps(t, fast+3)
	halt()
	took, pause := st.gaps()
	for i := fast; i < len(took); i++ {
		if took[i] >= 50*time.Millisecond && pause[i] >= took[i] {
			t.Errorf("a call of %v, its bulk behind its window, was followed by a pause of %v; want none", took[i], pause[i])
		}
	}
}

// streamRuns starts runs runs recorded by rec, each streaming a word every
// millisecond until the function returned is called, which waits for their ends.
func streamRuns(t *testing.T, rec *store.Recorder, runs int) (halt func()) {
	t.Helper()
	stop := make(chan struct{})
	var xs []*run.Exec
	halt = sync.OnceFunc(func() {
		close(stop)
		for _, x := range xs {
			if out := x.Wait(); out.Status != run.StatusCompleted || x.PersistErr() != nil {
				t.Errorf("run ended %s %q, persist error %v", out.Status, out.Error, x.PersistErr())
			}
		}
	})
	t.Cleanup(halt) // a run started is never left streaming, however the test ends
	for i := range runs {
		x, err := goRun(t.Context(), rec, run.NewID(), nil, func(x engine.Run) error {
			emit(x, "start", run.EventWorkflowStarted)
			tick := time.NewTicker(time.Millisecond) // a model streaming its words
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return nil
				case <-tick.C:
					emit(x, "word", run.EventRunContent)
				}
			}
		})
		if err != nil {
			halt()
			t.Fatalf("run %d: %v", i, err)
		}
		xs = append(xs, x)
	}
	return halt
}

// waitGaps waits (a minute at most) until the store saw n pairs of calls of one
// bulk (see gaps).
func (p *pacedMem) waitGaps(t *testing.T, n int) {
	t.Helper()
	eventually.Succeeds(t, time.Minute, func() error {
		if took, _ := p.gaps(); len(took) < n {
			return fmt.Errorf("the bulk made %d calls after another, not %d", len(took), n)
		}
		return nil
	})
}
