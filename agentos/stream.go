package agentos

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// sse writes a server-sent event stream: one event per write, flushed as soon as no
// other event is ready, and a ": ping" comment when the stream is idle. It writes
// to an http.ResponseWriter, or, on a connection taken over from net/http (see
// hijack.go), straight to the connection in HTTP/1.1 chunks, one write a burst.
type sse struct {
	w    http.ResponseWriter // nil on a connection taken over
	rc   *http.ResponseController
	conn net.Conn // the connection taken over, if any

	mu      sync.Mutex // guards the fields below and writes to w or conn
	err     error      // the first write error: the client is gone
	burst   *[]byte    // conn: the events framed and not written yet, borrowed from frames
	active  bool       // an event was written since the last heartbeat tick
	stopped bool       // the heartbeat is stopped: the handler may return
	sent    int        // events written

	// The stream's place in its heartbeat's wheel, guarded by the wheel's lock.
	beat      *beats
	beatSlot  int32 // its slot in beat's wheel while beat is set; -1 once removed
	beatIndex int32
}

// setSSEHeader sets the headers of an event stream on h.
func setSSEHeader(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
}

// startSSE sends the stream's headers, with no write deadline for the stream.
func startSSE(w http.ResponseWriter) *sse {
	setSSEHeader(w.Header())
	s := &sse{w: w, rc: http.NewResponseController(w)}
	_ = s.rc.SetWriteDeadline(time.Time{})
	w.WriteHeader(http.StatusOK)
	s.err = s.rc.Flush()
	return s
}

// frames holds the buffers events are framed in: a stream takes one only while it
// writes an event (a burst of events, on a connection taken over), so that a
// thousand open streams keep no thousand buffers between their events.
var frames = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledFrame bounds the buffers frames keeps: a rare large event's is dropped.
const maxPooledFrame = 64 << 10

// putFrame gives a buffer back to frames, b being its last contents.
func putFrame(bp *[]byte, b []byte) {
	if cap(b) <= maxPooledFrame {
		*bp = b[:0]
		frames.Put(bp)
	}
}

// Chunks of a connection taken over: a burst's buffer starts with chunkRoom bytes
// for its chunk's size line; a burst is written once no event is ready, or once
// it is maxBurst bytes long.
const (
	chunkRoom = 18 // 16 hex digits and CRLF
	maxBurst  = 16 << 10
)

// event writes one event; data is its one-line JSON, appended by appendData.
func (s *sse) event(name string, id int, flush bool, appendData func([]byte) ([]byte, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	bp := s.burst
	if bp == nil {
		bp = frames.Get().(*[]byte)
		if s.conn != nil {
			*bp = append((*bp)[:0], make([]byte, chunkRoom)...)
		}
	}
	b := *bp
	start := len(b)
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\nid: "...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, "\ndata: "...)
	b, err := appendData(b)
	if err == nil {
		b = append(b, "\n\n"...)
		s.active = true
		s.sent++
	} else {
		b = b[:start]
	}
	if s.conn != nil {
		*bp, s.burst = b, bp
		if err == nil && (flush || len(b) >= maxBurst) {
			s.err = s.writeBurst()
		}
		if err != nil {
			return err
		}
		return s.err
	}
	if err != nil {
		putFrame(bp, b)
		return err
	}
	// The buffer goes back to frames once written, not before: another stream
	// would frame its events in it meanwhile.
	_, s.err = s.w.Write(b[start:])
	putFrame(bp, b)
	if s.err == nil && flush {
		s.err = s.rc.Flush()
	}
	return s.err
}

// writeBurst writes the burst framed so far to the connection as one chunk, and
// gives its buffer back.
func (s *sse) writeBurst() error {
	bp := s.burst
	if bp == nil {
		return nil
	}
	s.burst = nil
	b := *bp
	n := uint64(len(b) - chunkRoom)
	if n == 0 {
		putFrame(bp, b)
		return nil
	}
	i := chunkRoom - 2
	b[i], b[i+1] = '\r', '\n'
	for {
		i--
		b[i] = "0123456789abcdef"[n&15]
		if n >>= 4; n == 0 {
			break
		}
	}
	b = append(b, "\r\n"...)
	_, err := s.conn.Write(b[i:])
	putFrame(bp, b)
	return err
}

// stored writes a stored event, whose data is its JSON already.
func (s *sse) stored(e store.Event, flush bool) error {
	return s.event(string(e.Type), e.Index, flush, func(b []byte) ([]byte, error) { return append(b, e.Data...), nil })
}

// ping writes a heartbeat comment unless an event went out since the last tick;
// once the heartbeat is stopped, or a write failed, it leaves the wheel.
func (s *sse) ping() {
	// Held: a write is under way (or blocked, its client not reading), so no
	// ping is due, and none waits behind it: one a tick would pile up goroutines.
	if !s.mu.TryLock() {
		return
	}
	defer s.mu.Unlock()
	if s.stopped || s.err != nil {
		s.beat.remove(s)
		return
	}
	if s.active {
		s.active = false
		return
	}
	if s.conn != nil {
		if s.err = s.writeBurst(); s.err == nil {
			_, s.err = s.conn.Write([]byte("8\r\n: ping\n\n\r\n"))
		}
		return
	}
	if _, s.err = s.w.Write([]byte(": ping\n\n")); s.err == nil {
		s.err = s.rc.Flush()
	}
}

// end writes, on a connection taken over, what is left of the stream and its last
// chunk, unless a write failed already.
func (s *sse) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		if s.err = s.writeBurst(); s.err == nil {
			_, s.err = s.conn.Write([]byte("0\r\n\r\n"))
		}
	}
	if s.burst != nil {
		putFrame(s.burst, *s.burst)
		s.burst = nil
	}
}

// delivered returns how many events were written.
func (s *sse) delivered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// heartbeat pings, through b, every interval of b's until stop is called, after
// which nothing is written. A server's streams share one wheel (see beats): a
// thousand open streams cost no thousand timers, nor parked goroutines.
func (s *sse) heartbeat(b *beats) (stop func()) {
	b.add(s)
	return s.stopHeartbeat
}

func (s *sse) stopHeartbeat() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.beat.remove(s)
}

// beatSlots is how many slots a heartbeat's wheel turns through in an interval: a
// stream's first tick comes between interval*(1-1/beatSlots) and interval after
// it started, the next ones an interval apart.
const beatSlots = 16

// beats is the heartbeat of every stream of one interval: a wheel of beatSlots
// slots, one turned every interval/beatSlots by a timer armed while any stream is
// in it. A stream stays in the slot it joined: each turn of the wheel, an
// interval, it is pinged (sse.ping, on a goroutine of its own as a timer's
// function was, so that a stream whose client does not read holds up no other).
type beats struct {
	period time.Duration // interval/beatSlots

	mu    sync.Mutex
	slots [beatSlots][]*sse
	cur   int // the slot the next tick pings
	n     int // streams in the wheel
	timer *time.Timer
	armed bool
}

// newBeats returns the wheel of the streams whose heartbeat is interval.
func newBeats(interval time.Duration) *beats {
	return &beats{period: max(interval/beatSlots, 1)}
}

// add puts s in the slot the wheel pinged last: pinged a turn from now.
func (b *beats) add(s *sse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	slot := (b.cur + beatSlots - 1) % beatSlots
	s.beat, s.beatSlot, s.beatIndex = b, int32(slot), int32(len(b.slots[slot]))
	b.slots[slot] = append(b.slots[slot], s)
	b.n++
	if !b.armed {
		b.armed = true
		if b.timer == nil {
			b.timer = time.AfterFunc(b.period, b.tick)
		} else {
			b.timer.Reset(b.period)
		}
	}
}

// remove takes s out of the wheel, if it is in it.
func (b *beats) remove(s *sse) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.beatSlot < 0 {
		return
	}
	slot := b.slots[s.beatSlot]
	last := len(slot) - 1
	if i := s.beatIndex; int(i) != last {
		slot[i] = slot[last]
		slot[i].beatIndex = i
	}
	slot[last] = nil
	b.slots[s.beatSlot] = slot[:last]
	s.beatSlot = -1
	b.n--
}

// tick pings the streams of the current slot and turns the wheel.
func (b *beats) tick() {
	b.mu.Lock()
	due := b.slots[b.cur]
	b.cur = (b.cur + 1) % beatSlots
	for _, s := range due {
		go s.ping()
	}
	if b.armed = b.n > 0; b.armed {
		b.timer.Reset(b.period)
	}
	b.mu.Unlock()
}

// stream streams lr's events from index from on, as they are stored (see
// host.Host.FollowExec), until its terminal event, the client leaving, or the write
// failing. lr must be attached; stream detaches it. Once the run has started, an
// HTTP/1.1 stream is served from the connection taken over from net/http, after
// the handler returned (see hijackStream); the handler holds one of the stream slots
// until it returns, the stream taken over one of its own.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, lr *host.Run, from int) {
	select {
	case <-lr.Started():
	case <-r.Context().Done():
		s.detach(lr, false)
		return
	}
	if err := lr.Err(); err != nil {
		s.answerStartError(w, err)
		s.detach(lr, true)
		return
	}
	if s.hijackStream(w, r, lr, from) {
		return
	}
	out := startSSE(w)
	closed := s.host.Telemetry().StreamOpened(r.Context())
	stop := out.heartbeat(s.beats)
	f := runFollower{s: s, x: lr.Exec(), out: out, next: from}
	f.follow(r.Context(), false, nil)
	stop()
	closed(out.delivered())
	s.detach(lr, f.finished)
}

// runFollower writes a run's events to an SSE stream as they are stored (see
// host.Host.FollowExec), from index next on; the handler's stream and the stream
// taken over (hijack.go) both follow runs with it.
type runFollower struct {
	s        *Server
	x        *run.Exec
	out      *sse
	next     int  // the index of the next event to write
	replayed bool // the events of a continued run stored before it were written
	finished bool // the stream ended with the run's terminal event
}

// follow writes the run's events from index f.next on until its terminal event,
// ctx is done, or a write fails; or, if untilQuiet, until a burst is written and no
// later event is ready, when it reports true. read, if set, is called before each
// event or page of events is written.
func (f *runFollower) follow(ctx context.Context, untilQuiet bool, read func()) (quiet bool) {
	x, out := f.x, f.out
	if !f.replayed {
		f.replayed = true
		if x.Resume != nil && f.s.store != nil && f.next < x.Resume.NextEvent {
			// A run continued here: its earlier events are in the store only.
			if !f.s.replayStored(ctx, out, x.ID, f.next, x.Resume.NextEvent) {
				return false
			}
			f.next = x.Resume.NextEvent
		}
	}
	if read == nil {
		read = func() {}
	}
	// The client is told what the store acknowledged, and, should this process
	// lose the run, what the store holds from then on (see host.FollowExec).
	err := f.s.host.FollowExec(ctx, x, f.next, func(ev *run.Event) bool {
		read()
		// Flush when no later event is ready: a burst costs one flush.
		flush := ev.EventIndex+1 >= x.Log.Readable() || ev.Event.Terminal()
		if out.event(string(ev.Event), ev.EventIndex, flush, ev.AppendJSON) != nil {
			return false
		}
		f.next = ev.EventIndex + 1
		if ev.Event.Terminal() && ev.RunID == x.ID {
			f.finished = true
			return false
		}
		quiet = untilQuiet && flush
		return !quiet
	}, func(evs []store.Event) bool {
		read()
		for i, e := range evs {
			if out.stored(e, i == len(evs)-1) != nil {
				return false
			}
			f.next = e.Index + 1
			f.finished = f.finished || e.Ends(x.ID)
		}
		return true
	})
	if quiet && err == nil {
		return true
	}
	if !f.finished && ctx.Err() == nil && x.Log.Closed() {
		out.mu.Lock()
		f.finished = out.err == nil // read to the end: the terminal event came before from
		out.mu.Unlock()
	}
	return false
}

// resume streams a run's events after a given index: live ones from the run's log
// while this server holds the run, else the stored ones, followed as they are
// stored while another replica executes it.
func (s *Server) resume(w http.ResponseWriter, r *http.Request, c *component) {
	from, err := s.resumeFrom(w, r)
	if err != nil {
		s.answerError(w, err)
		return
	}
	if !s.takeStream(w) {
		return
	}
	defer s.streamSlots.give()
	f, ok := s.find(w, r, c, r.PathValue("run_id"))
	if !ok {
		return
	}
	if f.lr != nil {
		s.attach(f.lr)
		s.stream(w, r, f.lr, from)
		return
	}
	s.follow(w, r, f.rec, from)
}

// resumeFrom returns the index of the first event to send: after Last-Event-ID, or
// after the last_event_index form field or query parameter; 0 when none is given.
func (s *Server) resumeFrom(w http.ResponseWriter, r *http.Request) (int, error) {
	name, v := "Last-Event-ID", strings.TrimSpace(r.Header.Get("Last-Event-ID"))
	index := r.URL.Query().Get("last_event_index")
	if r.Method == http.MethodPost {
		// Parsed under the body limit; r.FormValue on a GET would parse a multipart
		// body without one.
		if _, err := s.readForm(w, r, nil); err != nil {
			return 0, err
		}
		index = r.Form.Get("last_event_index")
	}
	if v == "" {
		name, v = "last_event_index", strings.TrimSpace(index)
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < -1 || n >= math.MaxInt32 {
		return 0, badRequest(http.StatusBadRequest, "invalid %s %q: want an event index", name, v)
	}
	return n + 1, nil
}

// replayPage is how many stored events are read at a time.
const replayPage = 512

// replayStored writes the stored events of run id from index from up to (not
// including) to. It reports whether the stream may go on.
func (s *Server) replayStored(ctx context.Context, out *sse, id string, from, to int) bool {
	for from < to {
		evs, err := s.store.Events(ctx, id, from, min(replayPage, to-from))
		if err != nil {
			s.log.Error("agentos: replay", "run_id", id, "err", fmt.Errorf("store: %w", err))
			return false
		}
		if len(evs) == 0 {
			return true
		}
		for _, e := range evs {
			if e.Index >= to {
				return true
			}
			if out.stored(e, false) != nil {
				return false
			}
			from = e.Index + 1
		}
	}
	return true
}
