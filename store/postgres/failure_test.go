package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

func TestOpenBadInput(t *testing.T) {
	t.Parallel()
	pgtest.Need(t)
	good := pgtest.URL()
	cfg := pgtest.Config(t)
	hole := blackhole(t)
	tests := []struct {
		name string
		url  string
		opts []Option
		want string // in the error
	}{
		{"empty", "", nil, "empty database URL"},
		{"scheme", "mysql://root@127.0.0.1/kern", nil, `scheme "mysql"`},
		{"bad port", "postgres://kern:secret@127.0.0.1:port/kern", nil, "malformed database URL"},
		{"bad escape", "postgres://kern@127.0.0.1/k%zzern", nil, "malformed database URL"},
		{"bad param", pgtest.WithParam(good, "connect_timeout", "soon"), nil, "malformed database URL"},
		{"bad dsn", "host=127.0.0.1 port", nil, "malformed database URL"},
		{"refused", "postgres://postgres@127.0.0.1:1/test?sslmode=disable", nil, "cannot reach PostgreSQL at 127.0.0.1:1/test"},
		{"silent server", "postgres://postgres@" + hole + "/test?sslmode=disable", []Option{WithConnectTimeout(300 * time.Millisecond)}, "cannot reach PostgreSQL"},
		{"no database", fmt.Sprintf("postgres://%s@%s:%d/kern_no_such_db?sslmode=disable", cfg.User, cfg.Host, cfg.Port), nil, "kern_no_such_db"},
		{"schema empty", good, []Option{WithSchema("")}, "schema name"},
		{"schema quote", good, []Option{WithSchema(`x"; DROP TABLE runs; --`)}, "schema name"},
		{"schema reserved", good, []Option{WithSchema("pg_kern")}, "reserved"},
		{"schema long", good, []Option{WithSchema(strings.Repeat("k", 64))}, "schema name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			start := time.Now()
			s, err := Open(ctx, tt.url, tt.opts...)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", tt.url)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Open took %v, want an error within 2s", d)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open(%q) = %q, want it to say %q", tt.url, err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("Open error shows the password: %q", err)
			}
			t.Logf("%s: %v", tt.name, err)
		})
	}
}

// blackhole returns the address of a server that accepts connections and never
// answers.
func blackhole(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// proxy forwards TCP connections to PostgreSQL, and can freeze them (a server
// that stops answering) or kill them (a server that went away).
type proxy struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	dead   atomic.Bool
	killed chan struct{} // closed by the first kill

	wg    sync.WaitGroup
	mu    sync.Mutex // guards conns
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, killed: make(chan struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(p.kill)
	return p
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.dead.Load() {
			p.mu.Unlock()
			c.Close()
			up.Close()
			return
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(up, c) })
		p.wg.Go(func() { p.pipe(c, up) })
	}
}

// pipe copies src to dst, holding what it read while the proxy is frozen.
func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if p.frozen.Load() {
			<-p.killed // a frozen proxy never thaws
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err == io.EOF {
				dst.Close()
			}
			return
		}
	}
}

// kill closes the listener and every connection, and waits for the proxy's
// goroutines.
func (p *proxy) kill() {
	p.mu.Lock()
	if !p.dead.Swap(true) {
		close(p.killed)
	}
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// proxiedStore opens a store in a fresh schema through a proxy to PostgreSQL.
func proxiedStore(t *testing.T) (*Store, *proxy) {
	schema := pgtest.Schema(t)
	cfg := pgtest.Config(t)
	p := newProxy(t, fmt.Sprintf("%s:%d", cfg.Host, cfg.Port))
	u := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User, p.ln.Addr(), cfg.Database)
	s, err := Open(t.Context(), u, WithSchema(schema), WithConnectTimeout(time.Second))
	if err != nil {
		t.Fatalf("Open through proxy: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, p
}

// workload runs a run's life (create, events, update, read) in n goroutines until
// stop is closed or an operation fails, and reports the slowest operation.
// workload runs n writers until stop is closed or one fails. Each successful run's
// life is reported on done, if it is not nil, without blocking.
func workload(ctx context.Context, s *Store, n int, stop <-chan struct{}, done chan<- struct{}) (slowest time.Duration, errs []error) {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for g := range n {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", g, i)
				start := time.Now()
				err := lifecycle(ctx, s, id, 10)
				d := time.Since(start)
				mu.Lock()
				slowest = max(slowest, d)
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
				select {
				case done <- struct{}{}:
				default:
				}
			}
		})
	}
	wg.Wait()
	return slowest, errs
}

// afterWork waits until the workload has written a few runs: the store is in use.
func afterWork(t *testing.T, done <-chan struct{}) {
	t.Helper()
	for range 3 {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("the workload wrote nothing in 30s")
		}
	}
}

// lifecycle stores one run's life: created RUNNING, nEvents events, COMPLETED.
func lifecycle(ctx context.Context, s store.Store, id string, nEvents int) error {
	r := &store.Run{ID: id, SessionID: "s", Kind: run.KindWorkflow, ComponentID: "wf", Status: run.StatusRunning, Input: "go"}
	if err := s.CreateRun(ctx, r); err != nil {
		return err
	}
	evs := make([]store.Event, nEvents)
	for i := range evs {
		evs[i] = store.Event{RunID: id, Index: i, Type: run.EventRunContent, Data: []byte(`{"event":"RunContent","content":"x"}`)}
	}
	if err := s.AppendEvents(ctx, evs); err != nil {
		return err
	}
	r.Status, r.Output.Status, r.Output.Content = run.StatusCompleted, run.StatusCompleted, "done"
	if err := s.UpdateRun(ctx, r); err != nil {
		return err
	}
	_, err := s.GetRun(ctx, id)
	return err
}

// TestTerminatedBackends kills the store's server connections while runs are
// written: the operations caught fail promptly, and the pool reconnects.
func TestTerminatedBackends(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	app := "kern_test_" + schema
	s, err := Open(t.Context(), pgtest.WithParam(pgtest.URL(), "application_name", app), WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	admin, err := pgtest.Connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())

	stop := make(chan struct{})
	var (
		wg      sync.WaitGroup
		slowest time.Duration
		errs    []error
	)
	wg.Go(func() {
		// Each worker stops at its first error; run them until stop.
		for {
			select {
			case <-stop:
				return
			default:
			}
			d, e := workload(t.Context(), s, 4, stop, nil)
			slowest, errs = max(slowest, d), append(errs, e...)
		}
	})
	killed := 0
	for range 10 {
		time.Sleep(50 * time.Millisecond)
		var n int
		err := admin.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1 AND pid <> pg_backend_pid()`, app).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		killed += n
	}
	close(stop)
	wg.Wait()
	if killed == 0 {
		t.Fatal("terminated no backend")
	}
	if slowest > 5*time.Second {
		t.Errorf("slowest operation took %v while backends were terminated", slowest)
	}
	for _, err := range errs {
		if errors.Is(err, store.ErrClosed) {
			t.Errorf("error %v matches ErrClosed, but the store is open", err)
		}
	}
	t.Logf("terminated %d backends; %d operations failed; slowest %v; e.g. %v", killed, len(errs), slowest, first(errs))
	// The pool reconnects. A pooled connection whose backend was terminated while
	// it sat idle is found out by the ping pgxpool sends before handing out a
	// connection idle for more than a second (a restarted server takes longer).
	time.Sleep(1100 * time.Millisecond)
	if err := lifecycle(t.Context(), s, "after", 3); err != nil {
		t.Errorf("after the backends were terminated: %v", err)
	}
}

func first(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

// TestServerGone cuts every connection to the server and refuses new ones
// mid-use: operations fail promptly with an error, none hangs.
func TestServerGone(t *testing.T) {
	t.Parallel()
	s, p := proxiedStore(t)
	stop := make(chan struct{})
	var (
		wg      sync.WaitGroup
		slowest time.Duration
		errs    []error
	)
	progress := make(chan struct{})
	wg.Go(func() { slowest, errs = workload(t.Context(), s, 4, stop, progress) })
	afterWork(t, progress)
	p.kill()
	killedAt := time.Now()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		close(stop)
		<-done
		t.Fatal("operations still running 10s after the server went away")
	}
	if len(errs) == 0 {
		t.Fatal("no operation failed after the server went away")
	}
	t.Logf("all workers stopped %v after the kill; slowest op %v; e.g. %v", time.Since(killedAt), slowest, errs[0])
	// New operations fail at once too: the server refuses connections.
	start := time.Now()
	if _, err := s.GetRun(t.Context(), "w0-0"); err == nil {
		t.Error("GetRun succeeded with the server gone")
	} else if d := time.Since(start); d > 3*time.Second {
		t.Errorf("GetRun with the server gone took %v", d)
	}
}

// TestServerHangs freezes the connections mid-use: operations return when their
// context ends, and the store can still be closed.
func TestServerHangs(t *testing.T) {
	t.Parallel()
	s, p := proxiedStore(t)
	if err := lifecycle(t.Context(), s, "before", 3); err != nil {
		t.Fatal(err)
	}
	p.frozen.Store(true)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := lifecycle(ctx, s, "frozen", 3)
	d := time.Since(start)
	if err == nil {
		t.Fatal("lifecycle succeeded against a frozen server")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if d > 3*time.Second {
		t.Errorf("lifecycle returned %v after its 300ms deadline", d)
	}
	t.Logf("returned after %v: %v", d, err)
	p.kill()
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs after the server hung")
	}
}

// TestCloseMidUse closes the store while runs are written: every operation ends,
// those after Close with store.ErrClosed.
func TestCloseMidUse(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	var (
		wg   sync.WaitGroup
		errs []error
	)
	progress := make(chan struct{})
	wg.Go(func() { _, errs = workload(t.Context(), s, 4, nil, progress) })
	afterWork(t, progress)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(errs) != 4 {
		t.Fatalf("%d workers failed, want all 4: %v", len(errs), errs)
	}
	for _, err := range errs {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("after Close: %v, want ErrClosed", err)
		}
	}
	if err := s.Close(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
}
