package agentos

import (
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kern-dev/kern/internal/eventually"
)

// dialPair returns the two ends of a loopback TCP connection.
func dialPair() (server, client net.Conn, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	if client, err = net.Dial("tcp", ln.Addr().String()); err != nil {
		return nil, nil, err
	}
	if server, err = ln.Accept(); err != nil {
		client.Close()
		return nil, nil, err
	}
	return server, client, nil
}

// tcpPair is dialPair for the test's goroutine; the test closes both ends.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	server, client, err := dialPair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// waitHangups fails the test if h's goroutines do not return.
func waitHangups(t *testing.T, h *hangups) {
	t.Helper()
	done := make(chan struct{})
	go func() { h.wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher's goroutine did not return once nothing was watched")
	}
}

// TestHangupsWatchesThroughThePoller watches connections whose clients leave one
// by one, then none, then watches again: each leaving is told once, to its own
// stream, and the watcher's goroutine stops once nothing is watched and starts
// again for the next stream.
func TestHangupsWatchesThroughThePoller(t *testing.T) {
	var h hangups
	for round := range 2 {
		const n = 3
		left := make(chan int, n)
		var unwatch [n]func()
		var clients [n]net.Conn
		for i := range n {
			server, client := tcpPair(t)
			clients[i] = client
			unwatch[i] = h.watch(server, func() { left <- i })
			if unwatch[i] == nil {
				t.Fatalf("round %d: a TCP connection was not watched", round)
			}
		}
		for i := range n {
			clients[i].Close()
			if got := <-left; got != i {
				t.Fatalf("round %d: client %d left, stream %d was told", round, i, got)
			}
		}
		for i := range n {
			unwatch[i]()
		}
		waitHangups(t, &h)
		select {
		case i := <-left:
			t.Fatalf("round %d: stream %d was told twice", round, i)
		default:
		}
	}
}

// TestHangupsUnwatchedIsNotTold: a stream unwatched before its client leaves is
// not told, and the others still are.
func TestHangupsUnwatchedIsNotTold(t *testing.T) {
	var h hangups
	s1, c1 := tcpPair(t)
	s2, c2 := tcpPair(t)
	told := make(chan string, 2)
	u1 := h.watch(s1, func() { told <- "first" })
	u2 := h.watch(s2, func() { told <- "second" })
	u1()
	u1() // a second unwatch does nothing
	c1.Close()
	c2.Close()
	if got := <-told; got != "second" {
		t.Fatalf("told %q, want second", got)
	}
	u2()
	waitHangups(t, &h)
	select {
	case got := <-told:
		t.Fatalf("told %q after it was unwatched", got)
	default:
	}
}

// TestHangupsChurn watches and unwatches connections from several goroutines at
// once, some unwatched by their own callback, half of whose clients leave: every
// client that leaves is told, and the watcher stops once nothing is watched.
func TestHangupsChurn(t *testing.T) {
	var h hangups
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				server, client, err := dialPair()
				if err != nil {
					t.Error(err)
					return
				}
				told := make(chan struct{}, 1)
				var once sync.Once
				var unwatch func()
				var mu sync.Mutex
				stop := func() {
					mu.Lock()
					u := unwatch
					mu.Unlock()
					once.Do(u)
				}
				mu.Lock()
				unwatch = h.watch(server, func() {
					told <- struct{}{}
					if (g+i)%3 == 0 {
						stop() // from the watcher's goroutine
					}
				})
				mu.Unlock()
				if unwatch == nil {
					t.Error("a TCP connection was not watched")
					return
				}
				if i%2 == 0 {
					client.Close()
					select {
					case <-told:
					case <-time.After(10 * time.Second):
						t.Error("a client left and its stream was not told")
						return
					}
				}
				stop()
				server.Close()
				client.Close()
			}
		})
	}
	wg.Wait()
	waitHangups(t, &h)
}

// TestHangupsWaitInThePoller: the watcher's goroutine waits in the runtime's
// poller ("IO wait"), not in a system call, which would hold its P.
func TestHangupsWaitInThePoller(t *testing.T) {
	var h hangups
	server, _ := tcpPair(t)
	unwatch := h.watch(server, func() {})
	defer func() { unwatch(); waitHangups(t, &h) }()
	buf := make([]byte, 1<<20)
	eventually.Succeeds(t, 10*time.Second, func() error {
		n := runtime.Stack(buf, true)
		for g := range strings.SplitSeq(string(buf[:n]), "\n\n") {
			if !strings.Contains(g, "(*hangups).run") {
				continue
			}
			switch state := strings.SplitN(g, "\n", 2)[0]; {
			case strings.Contains(state, "[IO wait"):
				return nil
			case strings.Contains(state, "[syscall"):
				t.Fatalf("the watcher waits in a system call:\n%s", g)
			}
		}
		return errors.New("the watcher's goroutine does not wait in the poller yet")
	})
}
