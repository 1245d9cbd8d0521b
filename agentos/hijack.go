package agentos

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/run"
)

// A stream over HTTP/1.1 is served, once its run has started, from the connection
// taken over from net/http (http.ResponseController.Hijack): the handler returns,
// and with it go net/http's goroutines, buffers and request for the connection,
// which an open stream would otherwise hold as long as its run. A goroutine of the
// stream's, started from a frame of its own so that its stack stays small, follows
// the run and writes its events in HTTP/1.1 chunks, one write a burst; the server's
// one watcher of connections (hangups; elsewhere than Linux, a goroutine of the
// stream's that reads its connection) tells it when the client leaves. The response
// is chunked and closes the connection at its end. Everything the handler did at
// its end (detach, stream slot, telemetry, heartbeat) the follower does at its own.

// hijacked tracks the streams served from connections taken over, which
// http.Server.Shutdown no longer knows of: Server.Shutdown waits for them.
type hijacked struct {
	mu      sync.Mutex          // guards the fields below
	conns   map[net.Conn]func() // the connections of the streams open, and what tells each its client left
	closing bool                // Shutdown began: no stream is taken over any more
	cut     bool                // Shutdown closes the connections of the streams open
	wg      sync.WaitGroup      // the streams open
	hangups hangups             // tells the streams their clients left
	wakes   wakes               // serves the streams woken
}

// wakes serves the streams woken (hijackedStream.run) on a few goroutines rather
// than on one a stream: a store's write acknowledges the events of many runs at
// once, and a goroutine for each stream it wakes would take a stack of its own
// (Go starts a goroutine at the average stack in use, which the runs' deep stacks
// set at 8 KiB) for the microseconds a chunk's write takes: a thousand streams,
// megabytes of stacks at each write. A stream whose write blocks (a client that
// does not read) holds its goroutine: one held for wakeStall while streams wait
// no longer counts against the bound, and others are started in its place, so
// that no stream waits for long on another's client.
type wakes struct {
	mu      sync.Mutex          // guards the fields below
	queue   []woken             // the streams woken, waiting for a goroutine
	workers int                 // the goroutines serving streams; each returns once queue is empty
	stuck   int                 // of workers, those found held by one stream for wakeStall
	serving map[*waker]struct{} // the goroutines serving a stream
	most    int                 // how many goroutines not stuck may serve streams (0: not read yet)
	stall   *time.Timer         // armed while streams wait and no goroutine may start
	armed   bool
}

// waker is one goroutine serving woken streams.
type waker struct {
	since time.Time // when it took the stream it serves
	stuck bool      // counted in wakes.stuck
}

// wakeStall is how long a goroutine may serve one stream before the streams
// waiting are served by others.
const wakeStall = 20 * time.Millisecond

// maxWakers is how many goroutines not stuck serve woken streams.
func maxWakers() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// woken is a stream woken: a *hijackedStream.
type woken interface{ run() }

// run serves t, woken, on one of w's goroutines.
func (w *wakes) run(t woken) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.most == 0 {
		w.most = maxWakers() // read once: GOMAXPROCS takes the scheduler's lock
		w.serving = make(map[*waker]struct{})
	}
	w.queue = append(w.queue, t)
	if w.workers-w.stuck < w.most {
		w.workers++
		go w.work()
		return
	}
	w.arm(wakeStall)
}

// arm sets the stall timer to fire in d, unless it is armed. w.mu is held.
func (w *wakes) arm(d time.Duration) {
	if w.armed {
		return
	}
	w.armed = true
	if w.stall == nil {
		w.stall = time.AfterFunc(d, w.stalled)
	} else {
		w.stall.Reset(d)
	}
}

// work serves the streams queued until none is.
func (w *wakes) work() {
	k := new(waker)
	w.mu.Lock()
	for len(w.queue) > 0 {
		t := w.queue[0]
		w.queue[0] = nil
		w.queue = w.queue[1:]
		k.since = time.Now()
		w.serving[k] = struct{}{}
		w.mu.Unlock()
		t.run()
		w.mu.Lock()
		delete(w.serving, k)
		if k.stuck {
			k.stuck = false
			w.stuck--
		}
	}
	w.workers--
	w.mu.Unlock()
}

// stalled counts as stuck the goroutines that have served one stream for
// wakeStall (held by writes that block), and starts others in their place for
// the streams waiting.
func (w *wakes) stalled() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = false
	if len(w.queue) == 0 {
		return
	}
	now := time.Now()
	next := wakeStall // until the next goroutine could be found stuck
	for k := range w.serving {
		if held := now.Sub(k.since); held >= wakeStall && !k.stuck {
			k.stuck = true
			w.stuck++
		} else if !k.stuck {
			next = min(next, wakeStall-held)
		}
	}
	for n := len(w.queue); n > 0 && w.workers-w.stuck < w.most; n-- {
		w.workers++
		go w.work()
	}
	if w.workers-w.stuck >= w.most {
		w.arm(next)
	}
}

// begin counts a stream about to be taken over, and reports false once Shutdown
// began. Its connection is given to set, or nil to done if it was not taken over.
func (t *hijacked) begin() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	t.wg.Add(1)
	return true
}

// set tells the connection of a stream counted by begin, and left, which tells
// the stream its client left: closing its connection on Linux raises no event
// for the watcher of connections (see hangups).
func (t *hijacked) set(conn net.Conn, left func()) {
	t.mu.Lock()
	if !t.cut {
		if t.conns == nil {
			t.conns = make(map[net.Conn]func())
		}
		t.conns[conn] = left
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	conn.Close()
	left()
}

// done uncounts a stream counted by begin.
func (t *hijacked) done(conn net.Conn) {
	t.mu.Lock()
	delete(t.conns, conn)
	t.mu.Unlock()
	t.wg.Done()
}

// streamDrain is how long Shutdown, whose ctx was done by the time every run had
// ended, lets the streams taken over write the terminal events of the runs it
// cancelled before it closes their connections.
const streamDrain = time.Second

// close stops taking streams over, waits for those open to end, until ctx is done
// (for streamDrain if it is done already), then closes their connections and waits
// for them to end.
func (t *hijacked) close(ctx context.Context) {
	t.mu.Lock()
	t.closing = true
	t.mu.Unlock()
	ended := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(ended)
	}()
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), streamDrain)
		defer cancel()
	}
	select {
	case <-ended:
		t.hangups.wait()
		return
	case <-ctx.Done():
	}
	t.mu.Lock()
	t.cut = true
	cut := maps.Clone(t.conns)
	t.mu.Unlock()
	for c, left := range cut {
		c.Close()
		left() // a stream waiting (for its run, or for the store) ends now
	}
	<-ended
	t.hangups.wait()
}

// hijackedStream is a stream served from a connection taken over. While its run
// is quiet (every event durable so far written), no goroutine serves it: the
// run's log calls wake once the store acknowledged more (see run.Log.Await), as
// the client's leaving does, and wake starts one, which writes what came and
// returns once the run is quiet again. A thousand open streams of slow runs hold
// no thousand parked goroutines.
type hijackedStream struct {
	runFollower // used by the goroutine serving the stream, one at a time (see wake)
	lr          *host.Run
	ctx         context.Context // done once the client left, or the stream ended
	cancel      context.CancelFunc
	closed      func(delivered int) // telemetry: the stream closed

	// Used by the goroutine serving the stream, one at a time (see wake).
	stop    func()        // stops the heartbeat
	unwatch func()        // stops watching for the client's leaving, if hangups does
	watched chan struct{} // else closed once the goroutine reading the connection returned
	wait    run.Waiter    // waits for the log's next durable events
	woke    func()        // wake, made once

	mu      sync.Mutex // guards the fields below
	running bool       // a goroutine serves the stream (for good once it ends)
	woken   bool       // wake was called while one did
}

// hijackStream takes r's connection over from net/http, writes the stream's headers
// to it, and serves lr's events from index from on there once the handler
// returned, as stream does. It reports false, having written nothing, when the
// connection cannot be taken over (HTTP/2, a ResponseWriter that does not unwrap
// to net/http's) or the server is shutting down: the handler streams then.
func (s *Server) hijackStream(w http.ResponseWriter, r *http.Request, lr *host.Run, from int) bool {
	if s.keepStreams || r.ProtoMajor != 1 || r.ProtoMinor < 1 || r.Method == http.MethodHead {
		return false
	}
	if !s.hijacked.begin() {
		return false
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.hijacked.done(nil)
		return false
	}
	s.streamSlots.hold() // the handler gives back its own as it returns
	ctx, cancel := context.WithCancel(streamContext(r.Context()))
	t := &hijackedStream{runFollower: runFollower{s: s, x: lr.Exec(), out: &sse{conn: conn}, next: from}, lr: lr, ctx: ctx, cancel: cancel,
		closed: s.host.Telemetry().StreamOpened(ctx), running: true}
	t.woke = t.wake
	s.hijacked.set(conn, t.left)
	if err := writeStreamHead(conn, w.Header()); err != nil {
		t.out.err = err
	}
	go t.serve()
	return true
}

// streamContext returns the context a stream taken over keeps for as long as its
// run: only the request's span, what its telemetry reads (metrics' exemplars, log
// lines' trace ids), not the request's whole chain of contexts (net/http's and the
// middleware's), which would stay in memory with it.
func streamContext(req context.Context) context.Context {
	if span := trace.SpanFromContext(req); span.SpanContext().IsValid() {
		return trace.ContextWithSpan(context.Background(), span)
	}
	return context.Background()
}

// writeStreamHead writes the status line and headers of a stream on a connection
// taken over: those set on h (by middleware: CORS, request id...), the event
// stream's, and those net/http would have added.
func writeStreamHead(conn net.Conn, h http.Header) error {
	setSSEHeader(h)
	h.Del("Content-Length")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Transfer-Encoding", "chunked")
	h.Set("Connection", "close")
	bp := frames.Get().(*[]byte)
	buf := bytes.NewBuffer(append((*bp)[:0], "HTTP/1.1 200 OK\r\n"...))
	_ = h.Write(buf)
	buf.WriteString("\r\n")
	_, err := conn.Write(buf.Bytes())
	putFrame(bp, buf.Bytes())
	return err
}

// serve starts serving the stream: the watch for the client's leaving, the
// heartbeat; then it serves the stream as run does.
func (t *hijackedStream) serve() {
	// The client's leaving is told by the server's one watcher of connections
	// (see hangups), else by a goroutine of the stream's that reads conn.
	t.unwatch = t.s.hijacked.hangups.watch(t.out.conn, t.left)
	if t.unwatch == nil {
		t.watched = make(chan struct{})
		go func() {
			defer close(t.watched)
			t.watch()
		}()
	}
	t.stop = t.out.heartbeat(t.s.beats)
	t.run()
}

// run writes the run's events until its end, the client leaving, or a write
// failing, then ends the stream; or, the run quiet, returns, to be started again
// by wake.
func (t *hijackedStream) run() {
	for t.ctx.Err() == nil {
		if t.x.Log.Await(&t.wait, t.next, t.woke) {
			if t.pause() {
				return
			}
			continue // woken meanwhile
		}
		if !t.follow() {
			break
		}
	}
	t.x.Log.Release(&t.wait)
	// On a goroutine of its own: hanging up waits for the client (hangUpWait),
	// which should not hold one of the goroutines serving woken streams.
	go t.end()
}

// pause reports whether the stream may wait with no goroutine: it was not woken
// since it last did.
func (t *hijackedStream) pause() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.woken {
		t.woken = false
		return false
	}
	t.running = false
	return true
}

// wake starts a goroutine that serves the stream, unless one does.
func (t *hijackedStream) wake() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running {
		t.woken = true
		return
	}
	t.running = true
	t.s.hijacked.wakes.run(t)
}

// left tells the stream its client left.
func (t *hijackedStream) left() {
	t.cancel()
	t.wake()
}

// end ends the stream as the handler's end did, in its order: a client that read
// the stream to its end sees the stream closed.
func (t *hijackedStream) end() {
	defer t.s.hijacked.done(t.out.conn)
	t.stop()
	t.closed(t.out.delivered())
	t.s.detach(t.lr, t.finished)
	t.s.streamSlots.give()
	t.out.end()
	t.hangUp(t.unwatch, t.watched)
	t.cancel()
}

// errPanicked is a stream's write error once its follower panicked.
var errPanicked = errors.New("agentos: the stream's follower panicked")

// follow writes the run's events from index t.next on, as they are stored (see
// host.Host.FollowExec), until the run is quiet (it reports true), or its
// terminal event, the client leaving, or a write failing. A panic in it (a bug)
// ends the stream without its last chunk, as net/http's server ends a handler's
// that panicked, rather than the process.
func (t *hijackedStream) follow() (quiet bool) {
	defer func() {
		if p := recover(); p != nil {
			t.s.log.Error("agentos: panic serving a stream", "run_id", t.lr.ID(), "panic", p, "stack", string(debug.Stack()))
			t.out.mu.Lock()
			t.out.err = cmp.Or(t.out.err, errPanicked)
			t.out.mu.Unlock()
			quiet = false
		}
	}()
	// Await's pin keeps the events from t.next in memory until FollowDurable
	// reads them.
	released := false
	release := func() {
		if !released {
			released = true
			t.x.Log.Release(&t.wait)
		}
	}
	defer release()
	return t.runFollower.follow(t.ctx, true, release)
}

// watch reads the connection until the client closes it or the connection fails
// (or its read deadline passes), then cancels the stream. What the client sends
// meanwhile is dropped: the response closes the connection.
func (t *hijackedStream) watch() {
	conn := t.out.conn
	b := make([]byte, 1)
	for {
		if _, err := conn.Read(b); err != nil {
			t.left()
			return
		}
	}
}

// hangUpWait bounds how long a stream's connection waits, its response written,
// for the client to close it first, so that the client reads the response to its
// end rather than a reset (as net/http's server waits).
const hangUpWait = 500 * time.Millisecond

// hangUp closes the connection. A response written to its end has the writing
// half closed first, and the client given hangUpWait to close the connection, so
// that what it sent meanwhile, unread, does not make closing reset the connection
// before the client read the response's end (as net/http's server does).
func (t *hijackedStream) hangUp(unwatch func(), watched <-chan struct{}) {
	conn := t.out.conn
	cw, ok := conn.(interface{ CloseWrite() error })
	if ok && t.ctx.Err() == nil && cw.CloseWrite() == nil {
		if watched != nil {
			if conn.SetReadDeadline(time.Now().Add(hangUpWait)) == nil {
				<-watched
			}
		} else {
			wait := time.NewTimer(hangUpWait)
			select {
			case <-t.ctx.Done():
			case <-wait.C:
			}
			wait.Stop()
		}
	}
	if unwatch != nil {
		unwatch()
		// Drop what the client sent: closing with unread bytes resets.
		// A deadline passed already would fail the read before it reads.
		if conn.SetReadDeadline(time.Now().Add(time.Millisecond)) == nil {
			_, _ = io.Copy(io.Discard, conn)
		}
	}
	conn.Close()
	if watched != nil {
		<-watched
	}
}

// hold takes a place for a stream whatever the bound: a stream taken over holds
// one of its own, as its handler, which took one, gives that back.
func (s *slots) hold() {
	if s.max > 0 {
		s.open.Add(1)
	}
}
