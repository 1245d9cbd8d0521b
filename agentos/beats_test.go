package agentos

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// The streams of an interval share a wheel: each is pinged, and leaves the wheel
// once stopped, whichever place in its slot it had.
func TestBeatsWheel(t *testing.T) {
	const interval = 3 * time.Millisecond
	b := newBeats(interval)
	var streams []*sse
	var readers []*bufio.Reader
	for range 3 {
		c, peer := net.Pipe()
		t.Cleanup(func() { c.Close(); peer.Close() })
		s := &sse{conn: c}
		streams = append(streams, s)
		readers = append(readers, bufio.NewReader(peer))
	}
	var stops []func()
	for _, s := range streams {
		stops = append(stops, s.heartbeat(b))
	}
	for i, r := range readers {
		want := "8\r\n: ping\n\n\r\n"
		buf := make([]byte, len(want))
		if _, err := io.ReadFull(r, buf); err != nil || string(buf) != want {
			t.Fatalf("stream %d: read %q, %v; want a ping", i, buf, err)
		}
		go io.Copy(io.Discard, r) // later pings: a write waits for its reader
	}
	stops[0]() // one leaves: the last of its slot, if another, takes its place
	stops[0]()
	stops[2]()
	stops[1]()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n != 0 {
		t.Fatalf("%d streams left in the wheel", b.n)
	}
	for i, slot := range b.slots {
		if len(slot) != 0 {
			t.Fatalf("slot %d holds %d streams", i, len(slot))
		}
	}
}

// A ping finding its stream busy (a write under way, or blocked by a client that
// does not read) returns at once: the wheel starts one each interval, and pings
// waiting behind a blocked write would pile up for as long as the client stays.
func TestPingPassesABusyStream(t *testing.T) {
	c, peer := net.Pipe()
	t.Cleanup(func() { c.Close(); peer.Close() })
	s := &sse{conn: c}
	s.mu.Lock() // a write blocked
	returned := make(chan struct{})
	go func() {
		s.ping()
		close(returned)
	}()
	<-returned // the test times out if ping waits for the write
	s.mu.Unlock()
}
