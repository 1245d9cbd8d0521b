package agentos

import (
	"context"
	"fmt"
	"math"
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
// other event is ready, and a ": ping" comment when the stream is idle.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController

	mu       sync.Mutex // guards the fields below and writes to w
	err      error      // the first write error: the client is gone
	active   bool       // an event was written since the last heartbeat tick
	tick     *time.Timer
	interval time.Duration
	stopped  bool // the heartbeat is stopped: the handler may return
	sent     int  // events written
}

// startSSE sends the stream's headers, with no write deadline for the stream.
func startSSE(w http.ResponseWriter) *sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	s := &sse{w: w, rc: http.NewResponseController(w)}
	_ = s.rc.SetWriteDeadline(time.Time{})
	w.WriteHeader(http.StatusOK)
	s.err = s.rc.Flush()
	return s
}

// frames holds the buffers events are framed in: a stream takes one only while it
// writes an event, so that a thousand open streams keep no thousand buffers
// between their events.
var frames = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledFrame bounds the buffers frames keeps: a rare large event's is dropped.
const maxPooledFrame = 64 << 10

// event writes one event; data is its one-line JSON, appended by appendData.
func (s *sse) event(name string, id int, flush bool, appendData func([]byte) ([]byte, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	bp := frames.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledFrame {
			frames.Put(bp)
		}
	}()
	b := append((*bp)[:0], "event: "...)
	b = append(b, name...)
	b = append(b, "\nid: "...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, "\ndata: "...)
	b, err := appendData(b)
	*bp = b[:0]
	if err != nil {
		return err
	}
	b = append(b, "\n\n"...)
	*bp = b[:0]
	s.active = true
	s.sent++
	if _, s.err = s.w.Write(b); s.err == nil && flush {
		s.err = s.rc.Flush()
	}
	return s.err
}

// stored writes a stored event, whose data is its JSON already.
func (s *sse) stored(e store.Event, flush bool) error {
	return s.event(string(e.Type), e.Index, flush, func(b []byte) ([]byte, error) { return append(b, e.Data...), nil })
}

// ping writes a heartbeat comment unless an event went out since the last tick,
// and sets the next tick; once the heartbeat is stopped it does nothing.
func (s *sse) ping() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.err != nil {
		return
	}
	s.tick.Reset(s.interval)
	if s.active {
		s.active = false
		return
	}
	if _, s.err = s.w.Write([]byte(": ping\n\n")); s.err == nil {
		s.err = s.rc.Flush()
	}
}

// heartbeat pings every interval until stop is called, after which nothing is
// written. A timer, not a goroutine, waits between ticks: a thousand open
// streams cost no thousand parked goroutines.
func (s *sse) heartbeat(interval time.Duration) (stop func()) {
	s.mu.Lock()
	s.interval = interval
	s.tick = time.AfterFunc(interval, s.ping)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.stopped = true
		s.mu.Unlock()
		s.tick.Stop()
	}
}

// stream streams lr's events from index from on, as they are stored (see
// host.Host.FollowExec), until its terminal event, the client leaving, or the write
// failing. lr must be attached; stream detaches it.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, lr *host.Run, from int) {
	finished := false
	defer func() { s.detach(lr, finished) }()
	select {
	case <-lr.Started():
	case <-r.Context().Done():
		return
	}
	if err := lr.Err(); err != nil {
		s.answerStartError(w, err)
		finished = true
		return
	}
	x := lr.Exec()
	out := startSSE(w)
	closed := s.host.Telemetry().StreamOpened(r.Context())
	defer func() {
		out.mu.Lock()
		n := out.sent
		out.mu.Unlock()
		closed(n)
	}()
	stop := out.heartbeat(s.cfg.Heartbeat)
	defer stop()
	if x.Resume != nil && s.store != nil && from < x.Resume.NextEvent {
		// A run continued here: its earlier events are in the store only.
		if !s.replayStored(r.Context(), out, x.ID, from, x.Resume.NextEvent) {
			return
		}
		from = x.Resume.NextEvent
	}
	// The client is told what the store acknowledged, and, should this process
	// lose the run, what the store holds from then on (see host.FollowExec).
	_ = s.host.FollowExec(r.Context(), x, from, func(ev *run.Event) bool {
		// Flush when no later event is ready: a burst costs one flush.
		flush := ev.EventIndex+1 >= x.Log.Readable() || ev.Event.Terminal()
		if out.event(string(ev.Event), ev.EventIndex, flush, ev.AppendJSON) != nil {
			return false
		}
		if ev.Event.Terminal() && ev.RunID == x.ID {
			finished = true
			return false
		}
		return true
	}, func(evs []store.Event) bool {
		for i, e := range evs {
			if out.stored(e, i == len(evs)-1) != nil {
				return false
			}
			finished = finished || e.Ends(x.ID)
		}
		return true
	})
	if !finished && r.Context().Err() == nil && x.Log.Closed() {
		out.mu.Lock()
		finished = out.err == nil // read to the end: the terminal event came before from
		out.mu.Unlock()
	}
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
