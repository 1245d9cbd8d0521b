//go:build chaos && linux

package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
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
	"github.com/kern-dev/kern/store/sqlite"
)

const (
	config = "testdata/chaos.yaml"
	// lease is the --lease of every server: a killed or stalled owner's runs are
	// taken over about this long after.
	lease = 2 * time.Second
	// patience bounds each wait for an event, a process or a run's end: far longer
	// than any of them takes, so that a broken guarantee fails, not hangs.
	patience = 60 * time.Second
)

// Stores the suite runs on.
const (
	onSQLite   = "sqlite"
	onPostgres = "postgres"
)

// db is a database of one case: a SQLite file in a directory of its own (a small
// tmpfs when the case fills it), or a PostgreSQL database of its own, dropped after.
type db struct {
	kind string
	dsn  string
	name string // PostgreSQL: the database's name
	dir  string // SQLite: the file's directory
}

var dbSeq atomic.Int64

// newDB returns a fresh database of kind. With tmpfs, a SQLite database lives on a
// 2 MB tmpfs of its own, which outage fills (the case is skipped where tmpfs cannot
// be mounted: it needs root).
func newDB(t *testing.T, kind string, tmpfs bool) *db {
	t.Helper()
	if kind == onSQLite {
		dir := t.TempDir()
		if tmpfs {
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
				skip(t, fmt.Sprintf("no tmpfs to fill (%v: %s)", err, strings.TrimSpace(string(out))))
			}
			t.Cleanup(func() {
				if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
					t.Errorf("umount %s: %v: %s", dir, err, out)
				}
			})
		}
		return &db{kind: kind, dir: dir, dsn: "sqlite://" + filepath.Join(dir, "kern.db")}
	}
	pgtest.Need(t)
	name := fmt.Sprintf("kern_chaos_%d_%d", os.Getpid(), dbSeq.Add(1))
	admin(t, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	t.Cleanup(func() { admin(t, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)") })
	u, err := url.Parse(pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return &db{kind: kind, name: name, dsn: u.String()}
}

// admin runs statements on the test database (never on a case's own, which an
// outage closes).
func admin(t *testing.T, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	conn, err := pgtest.Connect(ctx)
	if err != nil {
		t.Fatalf("chaos: %s: %v", sql, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("chaos: %s: %v", sql, err)
	}
}

// outage makes the store refuse every write until the returned function is
// called: PostgreSQL refuses connections to the database and its backends are
// terminated; SQLite's tmpfs is filled to the last byte.
func (d *db) outage(t *testing.T) (restore func()) {
	t.Helper()
	if d.kind == onPostgres {
		id := pgx.Identifier{d.name}.Sanitize()
		admin(t, "ALTER DATABASE "+id+" ALLOW_CONNECTIONS false")
		admin(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", d.name)
		return func() { admin(t, "ALTER DATABASE "+id+" ALLOW_CONNECTIONS true") }
	}
	filler := filepath.Join(d.dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("chaos: filling %s: %v, want ENOSPC", d.dir, err)
	}
	return func() {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	}
}

// open opens the database as a store of the test's own, to check what was stored.
func (d *db) open(t *testing.T) store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var (
		st  store.Store
		err error
	)
	if d.kind == onPostgres {
		st, err = postgres.Open(ctx, d.dsn)
	} else {
		st, err = sqlite.Open(ctx, d.dsn)
	}
	if err != nil {
		t.Fatalf("chaos: open %s: %v", d.dsn, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// server is a `kern serve` process of a case.
type server struct {
	name   string
	url    string
	cmd    *exec.Cmd
	log    string // the file its stderr goes to
	client *client.Client
	done   chan struct{} // closed once the process exited and was reaped
}

var listening = regexp.MustCompile(`msg="kern serving" addr=(\S+)`)

// startServer starts kern serve named name on d, on a free loopback port, with the
// suite's config and lease, and waits until it listens.
func startServer(t *testing.T, d *db, name string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--db", d.dsn, "--config", config,
		"--replica", name, "--lease", lease.String(), "--shutdown-grace", "0"}, extra...)
	cmd := exec.Command(kernBin, args...)
	// Killed with the suite, should it die before its cleanups run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "OPENAI_API_KEY" && k != "ANTHROPIC_API_KEY" && !strings.HasPrefix(k, "KERN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	s := &server{name: name, cmd: cmd, log: filepath.Join(t.TempDir(), name+".log")}
	f, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }() // reaped as soon as it exits, however
	t.Cleanup(func() {
		s.kill(t)
		if t.Failed() {
			b, _ := os.ReadFile(s.log)
			t.Logf("log of %s:\n%s", name, b)
		}
	})
	eventually.Succeeds(t, patience, func() error {
		b, _ := os.ReadFile(s.log)
		if m := listening.FindSubmatch(b); m != nil {
			s.url = "http://" + string(m[1])
			return nil
		}
		select {
		case <-s.done:
			t.Fatalf("kern serve %s exited:\n%s", name, b)
		default:
		}
		return fmt.Errorf("kern serve %s is not listening yet", name)
	})
	if s.client, err = client.New(s.url, nil); err != nil {
		t.Fatal(err)
	}
	return s
}

// kill kills the server with SIGKILL (waking it first if stopped) and reaps it.
func (s *server) kill(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Process.Signal(syscall.SIGCONT)
	<-s.done
}

func (s *server) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, s.name, err)
	}
}

// ledger is what the clients of a case were told: the runs acknowledged (a 202,
// or a stream's first event), every event each stream received, every cancel
// answered. The checker holds the stored runs against it.
type ledger struct {
	mu   sync.Mutex // guards runs
	runs map[string]*told
}

// told is what clients were told about one run.
type told struct {
	how     string // how it was acknowledged: "202", "stream"
	acked   bool
	streams []*stream
	cancels []run.Status // the statuses cancels of the run answered 200 with
}

func newLedger() *ledger { return &ledger{runs: map[string]*told{}} }

func (l *ledger) run(id string) *told {
	if l.runs[id] == nil {
		l.runs[id] = &told{}
	}
	return l.runs[id]
}

func (l *ledger) ack(id, how string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.run(id)
	r.acked, r.how = true, how
}

func (l *ledger) cancelled(id string, st run.Status) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.run(id)
	r.cancels = append(r.cancels, st)
}

func (l *ledger) ids() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]string, 0, len(l.runs))
	for id := range l.runs {
		ids = append(ids, id)
	}
	return ids
}

// stream is one client's stream of a run: the events it received, in order.
type stream struct {
	mu      sync.Mutex // guards the fields below
	runID   string
	events  []*run.Event
	err     error         // why it ended; nil at the run's terminal event
	changed chan struct{} // closed at the next event; replaced then
	done    chan struct{} // closed once the stream ended
}

// at, when given to startStream, is called on the stream's goroutine at once after
// each event is recorded: a fault placed at an exact event.
type at func(ev *run.Event)

// background queues a run of wf on s (background=true) and notes it acknowledged
// once the 202 came; it returns the run's id, or "" when the server did not answer.
func (s *server) background(t *testing.T, l *ledger, wf string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	a, err := s.client.Workflow(wf).Start(ctx, client.RunRequest{Message: "go"})
	if err != nil {
		return ""
	}
	if a.Status != run.StatusPending || a.RunID == "" {
		t.Fatalf("background run of %s: %+v, want a run id, PENDING", wf, a)
	}
	l.ack(a.RunID, "202")
	return a.RunID
}

// startStream starts a streaming run of wf on s and reads it in its own goroutine,
// calling at (when not nil) after each event.
func (s *server) startStream(t *testing.T, l *ledger, wf string, fn at) *stream {
	t.Helper()
	return s.read(t, l, func(ctx context.Context) func(func(*run.Event, error) bool) {
		return s.client.Workflow(wf).Stream(ctx, client.RunRequest{Message: "go"})
	}, "", fn)
}

// resume follows run id of wf on s from its first event.
func (s *server) resume(t *testing.T, l *ledger, wf, id string) *stream {
	t.Helper()
	return s.read(t, l, func(ctx context.Context) func(func(*run.Event, error) bool) {
		return s.client.Workflow(wf).Resume(ctx, id, -1)
	}, id, nil)
}

func (s *server) read(t *testing.T, l *ledger, events func(context.Context) func(func(*run.Event, error) bool), id string, fn at) *stream {
	ctx, cancel := context.WithCancel(context.Background())
	st := &stream{runID: id, changed: make(chan struct{}), done: make(chan struct{})}
	if id != "" {
		l.mu.Lock()
		l.run(id).streams = append(l.run(id).streams, st)
		l.mu.Unlock()
	}
	go func() {
		defer close(st.done)
		for ev, err := range events(ctx) {
			st.mu.Lock()
			if err != nil {
				st.err = err
				st.mu.Unlock()
				return
			}
			first := st.runID == ""
			if first {
				st.runID = ev.RunID
			}
			st.events = append(st.events, ev)
			close(st.changed)
			st.changed = make(chan struct{})
			st.mu.Unlock()
			if first {
				l.ack(ev.RunID, "stream")
				l.mu.Lock()
				l.run(ev.RunID).streams = append(l.run(ev.RunID).streams, st)
				l.mu.Unlock()
			}
			if fn != nil {
				fn(ev)
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-st.done
	})
	return st
}

// waitFor waits until the stream received an event ok accepts, and returns it.
func (st *stream) waitFor(t *testing.T, what string, ok func(*run.Event) bool) *run.Event {
	t.Helper()
	timer := time.NewTimer(patience)
	defer timer.Stop()
	seen := 0
	for {
		st.mu.Lock()
		evs, changed := st.events, st.changed
		st.mu.Unlock()
		for ; seen < len(evs); seen++ {
			if ok(evs[seen]) {
				return evs[seen]
			}
		}
		select {
		case <-changed:
		case <-st.done:
			st.mu.Lock()
			n, err := len(st.events), st.err
			st.mu.Unlock()
			if seen == n {
				t.Fatalf("the stream ended (%v) before %s", err, what)
			}
		case <-timer.C:
			t.Fatalf("no %s after %s", what, patience)
		}
	}
}

// end waits for the stream to end.
func (st *stream) end(t *testing.T) {
	t.Helper()
	select {
	case <-st.done:
	case <-time.After(patience):
		t.Fatalf("stream of %s: no end after %s", st.id(), patience)
	}
}

func (st *stream) id() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.runID
}

func (st *stream) received() []*run.Event {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.events
}

// cancel cancels run id through s and notes the answer when it is a 200; it
// returns the status answered, or the error.
func (s *server) cancel(t *testing.T, l *ledger, id string, wait bool) (run.Status, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	ans, err := s.client.CancelRun(ctx, id, wait)
	if err != nil {
		return "", err
	}
	l.cancelled(id, ans.Status)
	return ans.Status, nil
}

// Events that place faults.
func content(n int) func(*run.Event) bool {
	seen := 0
	return func(ev *run.Event) bool {
		if ev.Event == run.EventRunContent {
			seen++
		}
		return seen >= n
	}
}

func stepCompleted(ev *run.Event) bool { return ev.Event == run.EventStepCompleted }

// terminal reports whether ev ends a workflow run (the suite runs workflows only).
func terminal(ev *run.Event) bool {
	switch ev.Event {
	case run.EventWorkflowCompleted, run.EventWorkflowCancelled, run.EventWorkflowError:
		return true
	}
	return false
}
