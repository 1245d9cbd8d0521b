package agentos

import (
	"sync"
	"time"

	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/telemetry"
)

// streams counts the HTTP streams following each run this server's host holds, so
// that a foreground run whose last client left is cancelled once the stream grace
// period passes with no client back.
type streams struct {
	mu sync.Mutex // guards m
	m  map[*host.Run]*readers
}

// readers are the streams following one run.
type readers struct {
	n     int
	grace *time.Timer // cancels the run once its last reader left
}

// attach counts a stream following r, which stops a pending grace cancel.
func (s *Server) attach(r *host.Run) {
	s.streams.mu.Lock()
	defer s.streams.mu.Unlock()
	if s.streams.m == nil {
		s.streams.m = make(map[*host.Run]*readers)
	}
	rd := s.streams.m[r]
	if rd == nil {
		rd = &readers{}
		s.streams.m[r] = rd
	}
	rd.n++
	if rd.grace != nil {
		rd.grace.Stop()
		rd.grace = nil
	}
}

// detach uncounts a stream following r. When a foreground run loses its last
// reader before its end, it is cancelled after the stream grace period, unless a
// client resumes its stream in the meantime.
func (s *Server) detach(r *host.Run, finished bool) {
	st := &s.streams
	st.mu.Lock()
	defer st.mu.Unlock()
	rd := st.m[r]
	rd.n--
	if rd.n > 0 {
		return
	}
	x := r.Exec()
	if finished || r.Background() || x == nil || x.Ended() {
		delete(st.m, r)
		return
	}
	if s.cfg.StreamGrace < 0 {
		delete(st.m, r)
		s.host.Telemetry().CancelRequested(x.ID, telemetry.SourceConsumer)
		engine.EntryOf(x).Cancel(ReasonClientDisconnected)
		return
	}
	rd.grace = time.AfterFunc(s.cfg.StreamGrace, func() {
		st.mu.Lock()
		cancel := st.m[r] == rd && rd.n == 0 && !x.Ended()
		if st.m[r] == rd && rd.n == 0 {
			delete(st.m, r)
		}
		st.mu.Unlock()
		if cancel {
			s.log.Info("agentos: run cancelled: its client disconnected", "run_id", r.ID())
			s.host.Telemetry().CancelRequested(x.ID, telemetry.SourceConsumer)
			engine.EntryOf(x).Cancel(ReasonClientDisconnected)
		}
	})
}
