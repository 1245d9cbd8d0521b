package agentos

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// errClosing is the error of a run refused because the server is shutting down.
var errClosing = errors.New("server is shutting down")

// errQueueFull is the error of a background run refused because the queue is full.
var errQueueFull = errors.New("background queue is full")

// liveRun is a run started, or queued, by this server.
type liveRun struct {
	id         string
	comp       *component
	input      string
	opts       []run.Option
	background bool
	queued     *run.Output // the run's identity, answered while it is queued

	claimed atomic.Bool   // the run was taken to be started, by a worker or a cancel
	started chan struct{} // closed once x or err is set
	x       *run.Exec
	err     error // why the run could not start

	// Guarded by Server.mu.
	readers int         // streams following the run
	grace   *time.Timer // cancels the run once its last reader left
	ended   bool
}

func newLiveRun(c *component, id, input string, background bool, o run.Options) *liveRun {
	lr := &liveRun{id: id, comp: c, input: input, background: background, started: make(chan struct{}),
		opts: []run.Option{run.WithID(id), run.WithSessionID(o.SessionID), run.WithUserID(o.UserID)}}
	out := &run.Output{RunID: id, SessionID: o.SessionID, UserID: o.UserID, Status: run.StatusPending,
		Input: input, CreatedAt: time.Now().Unix()}
	if c.kind == store.KindWorkflow {
		out.WorkflowID, out.WorkflowName = c.id, c.name
	} else {
		out.AgentID, out.AgentName = c.id, c.name
	}
	lr.queued = out
	return lr
}

// claim reports whether the caller is the one to start the run.
func (lr *liveRun) claim() bool { return lr.claimed.CompareAndSwap(false, true) }

// exec returns the run's Exec once it has started, or nil while it is queued or if it
// could not start.
func (lr *liveRun) exec() *run.Exec {
	select {
	case <-lr.started:
		return lr.x
	default:
		return nil
	}
}

// register adds lr to the live runs, unless the server is shutting down.
func (s *Server) register(lr *liveRun) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return errClosing
	}
	s.live[lr.id] = lr
	return nil
}

// startNow starts a registered run, unless a cancel took it first (see dequeue):
// then it waits for that start.
func (s *Server) startNow(lr *liveRun) error {
	if !lr.claim() {
		<-lr.started
		return lr.err
	}
	s.mu.Lock()
	if s.closing {
		delete(s.live, lr.id)
		s.mu.Unlock()
		return errClosing
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	return s.begin(s.runCtx, lr)
}

// begin starts lr's run with ctx and watches it until it ends. lr must be claimed.
func (s *Server) begin(ctx context.Context, lr *liveRun) error {
	x, err := lr.comp.start(ctx, lr.input, lr.opts...)
	lr.x, lr.err = x, err
	close(lr.started)
	if err != nil {
		s.log.Warn("agentos: run could not start", "run_id", lr.id, "component", lr.comp.id, "err", err)
		s.mu.Lock()
		delete(s.live, lr.id)
		s.mu.Unlock()
		return err
	}
	s.wg.Add(1)
	go s.watch(lr)
	return nil
}

// watch waits for lr's run to end, then forgets it (or keeps it in memory when
// there is no store to read it back from).
func (s *Server) watch(lr *liveRun) {
	defer s.wg.Done()
	<-lr.x.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	lr.ended = true
	if lr.grace != nil {
		lr.grace.Stop()
	}
	if s.live[lr.id] == lr {
		delete(s.live, lr.id)
	}
	if s.store == nil {
		s.recent = append(s.recent, lr)
		if n := len(s.recent) - s.cfg.KeepRuns; n > 0 {
			clear(s.recent[:n])
			s.recent = s.recent[n:]
		}
	}
}

// lookup returns the run with the given id that this server started or queued and
// still holds.
func (s *Server) lookup(id string) *liveRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lr := s.live[id]; lr != nil {
		return lr
	}
	for i := len(s.recent) - 1; i >= 0; i-- {
		if s.recent[i].id == id {
			return s.recent[i]
		}
	}
	return nil
}

// enqueue queues a background run: a worker starts it at once if one is free.
func (s *Server) enqueue(lr *liveRun) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return errClosing
	}
	switch {
	case s.workers < s.cfg.Workers:
		s.workers++
		s.live[lr.id] = lr
		s.wg.Add(1)
		go s.work(lr)
	case len(s.pending) < s.cfg.QueueSize:
		s.live[lr.id] = lr
		s.pending = append(s.pending, lr)
	default:
		return errQueueFull
	}
	return nil
}

// work runs background runs, lr first, then those queued, one at a time, until the
// queue is empty.
func (s *Server) work(lr *liveRun) {
	defer s.wg.Done()
	for lr != nil {
		if lr.claim() && s.begin(s.runCtx, lr) == nil {
			<-lr.x.Done()
		}
		lr = s.next()
	}
}

// next takes the oldest queued run, or, when none is left, retires the worker.
func (s *Server) next() *liveRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.pending) > 0 {
		lr := s.pending[0]
		s.pending[0] = nil
		s.pending = s.pending[1:]
		if !lr.claimed.Load() {
			return lr
		}
	}
	s.workers--
	return nil
}

// dequeue takes a queued run out of the queue, to start it at once (it then ends
// CANCELLED through its kept cancel intent). It reports false when a worker took the
// run first.
func (s *Server) dequeue(lr *liveRun) bool {
	if !lr.claim() {
		return false
	}
	s.mu.Lock()
	for i, q := range s.pending {
		if q == lr {
			s.pending = append(s.pending[:i], s.pending[i+1:]...)
			break
		}
	}
	if s.closing {
		// Shutdown may be past waiting for runs: this one never starts.
		delete(s.live, lr.id)
		s.mu.Unlock()
		return false
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	_ = s.begin(s.runCtx, lr)
	return true
}

// attach counts a stream following lr, which stops a pending grace cancel.
func (s *Server) attach(lr *liveRun) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lr.readers++
	if lr.grace != nil {
		lr.grace.Stop()
		lr.grace = nil
	}
}

// detach uncounts a stream following lr. When a foreground run loses its last
// reader before its end, it is cancelled after the stream grace period, unless a
// client resumes its stream in the meantime.
func (s *Server) detach(lr *liveRun, finished bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lr.readers--
	if finished || lr.background || lr.ended || lr.readers > 0 {
		return
	}
	x := lr.exec()
	if x == nil {
		return
	}
	if s.cfg.StreamGrace < 0 {
		x.Entry.Cancel(ReasonClientDisconnected)
		return
	}
	if lr.grace != nil {
		lr.grace.Stop()
	}
	lr.grace = time.AfterFunc(s.cfg.StreamGrace, func() {
		s.mu.Lock()
		cancel := lr.readers == 0 && !lr.ended
		s.mu.Unlock()
		if cancel {
			s.log.Info("agentos: run cancelled: its client disconnected", "run_id", lr.id)
			x.Entry.Cancel(ReasonClientDisconnected)
		}
	})
}

// output returns what is known of lr's run now: all of it once it has ended, its
// identity while it runs or is queued.
func (lr *liveRun) output() *run.Output {
	out := *lr.queued
	select {
	case <-lr.started:
	default:
		return &out
	}
	if lr.err != nil {
		out.Status, out.Error = run.StatusError, lr.err.Error()
		return &out
	}
	if lr.x.Log.Closed() {
		// The output is complete once the terminal event is out and the log closed
		// (the log's lock orders the run's last writes before this read).
		out = *lr.x.Output()
	} else {
		// While the run executes only its identity may be read.
		out.Status = run.StatusRunning
	}
	return &out
}
