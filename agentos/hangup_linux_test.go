package agentos

import (
	"net"
	"testing"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
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
		h.wait() // returns once the goroutine stopped: nothing is watched
		h.mu.Lock()
		on := h.ep != nil
		h.mu.Unlock()
		if on {
			t.Fatalf("round %d: the epoll instance is open with no stream watched", round)
		}
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
	c1.Close()
	c2.Close()
	if got := <-told; got != "second" {
		t.Fatalf("told %q, want second", got)
	}
	u2()
	h.wait()
	select {
	case got := <-told:
		t.Fatalf("told %q after it was unwatched", got)
	default:
	}
}
