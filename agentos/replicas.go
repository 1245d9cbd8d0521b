package agentos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// Several servers on one database form one system when the Store is a
// store.Canceller (PostgreSQL): a cancel for a run this server does not execute is
// stored as an intent and notified, and each server's listener cancels the run if it
// executes it, or keeps the intent in its registries (bounded, see run.Registry) so
// that the run ends CANCELLED if it starts here later. The same notifications say
// when another server stored a run's events or its end, so that a stream or a
// waiting cancel on this server follows a run executing on another. A listener that
// reconnects re-reads the pending intents and wakes every follower, and followers
// also read the store now and then, so a lost notification loses nothing.

// How often a follower of a run executing elsewhere reads the store without being
// told to: the fallback for a lost notification, and the only way with a store
// that does not notify (SQLite shared with a `kern run`).
const (
	followPoll         = time.Second
	followPollNoNotify = 200 * time.Millisecond
)

// watchers wake the followers of runs when the store notifies their events or end.
type watchers struct {
	mu sync.Mutex
	m  map[string]map[chan struct{}]struct{}
}

// add returns a channel signalled whenever run id has news, and the function that
// stops it. Subscribe before reading the store, so that nothing stored after the
// read goes unnoticed.
func (w *watchers) add(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	if w.m == nil {
		w.m = make(map[string]map[chan struct{}]struct{})
	}
	set := w.m[id]
	if set == nil {
		set = make(map[chan struct{}]struct{})
		w.m[id] = set
	}
	set[ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(set, ch)
		if len(set) == 0 {
			delete(w.m, id)
		}
	}
}

// wake signals the followers of run id, or of every run when id is empty.
func (w *watchers) wake(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for rid, set := range w.m {
		if id != "" && rid != id {
			continue
		}
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// startListener starts the store's listener, stopped and waited for by
// stopListener. It does nothing when the store carries no notifications.
func (s *Server) startListener() {
	if s.canceller == nil {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	s.stopListen, s.listenDone = stop, make(chan struct{})
	n := store.Notifications{
		Cancel:      s.remoteCancel,
		Events:      func(id string, _ int) { s.followers.wake(id) },
		Ended:       func(id string, _ run.Status) { s.followers.wake(id) },
		Reconnected: func() { s.followers.wake("") },
	}
	go func() {
		defer close(s.listenDone)
		if err := s.canceller.Listen(ctx, n); err != nil {
			s.log.Error("agentos: listener stopped: cancels from other replicas no longer reach this one", "err", err)
		}
	}()
}

// stopListener stops the listener and waits for it.
func (s *Server) stopListener() {
	if s.stopListen == nil {
		return
	}
	s.stopListen()
	<-s.listenDone
}

// remoteCancel applies a cancel notified through the store, without waiting for
// the run to end: it cancels the run if it executes or is queued here, and
// otherwise keeps the intent in every registry a run could start in.
func (s *Server) remoteCancel(id, reason string) {
	if lr := s.lookup(id); lr != nil {
		lr.comp.registry.RequestCancel(id, reason)
		if lr.exec() == nil {
			s.dequeue(lr) // queued: started now, it ends at once
		}
		return
	}
	for _, reg := range s.registries() {
		reg.RequestCancel(id, reason)
	}
}

// registries returns the distinct registries of the server and its components.
func (s *Server) registries() []*run.Registry {
	regs := []*run.Registry{s.registry}
	for _, c := range s.components {
		seen := false
		for _, r := range regs {
			seen = seen || r == c.registry
		}
		if !seen {
			regs = append(regs, c.registry)
		}
	}
	return regs
}

// pollInterval is how often a follower reads the store unprompted.
func (s *Server) pollInterval() time.Duration {
	if s.canceller == nil {
		return followPollNoNotify
	}
	return followPoll
}

// waitEnded waits until the stored run id is terminal, or ctx is done, and returns
// its last stored status (st until one is read).
func (s *Server) waitEnded(ctx context.Context, id string, st run.Status) run.Status {
	news, stop := s.followers.add(id)
	defer stop()
	poll := time.NewTicker(s.pollInterval())
	defer poll.Stop()
	for {
		// Read after subscribing: an end stored before it is read here, one
		// stored after it wakes the wait.
		rec, err := s.store.GetRun(ctx, id)
		switch {
		case err == nil:
			st = rec.Status
		case ctx.Err() == nil && !errors.Is(err, store.ErrNotFound):
			s.log.Warn("agentos: wait for a run's end", "run_id", id, "err", err)
		}
		if st.Terminal() {
			return st
		}
		select {
		case <-news:
		case <-poll.C:
		case <-ctx.Done():
			return st
		}
	}
}

// terminalOf reports whether an event of type t ends a run of kind k (nested agent
// runs' terminal events do not end a workflow's stream).
func terminalOf(k store.Kind, t run.EventType) bool {
	if k == store.KindWorkflow {
		return t == run.EventWorkflowCompleted || t == run.EventWorkflowCancelled || t == run.EventWorkflowError
	}
	return t == run.EventRunCompleted || t == run.EventRunCancelled || t == run.EventRunError
}

// follow streams a stored run's events from index from on: those stored, then, while
// the run executes on another replica (or another process), those it stores next,
// until its terminal event, or its record says it ended and every stored event is
// out.
func (s *Server) follow(w http.ResponseWriter, r *http.Request, rec *store.Run, from int) {
	ctx := r.Context()
	news, stop := s.followers.add(rec.ID)
	defer stop()
	evs, err := s.store.Events(ctx, rec.ID, from, replayPage)
	if err != nil {
		s.writeStoreError(w, err, "events of run "+rec.ID)
		return
	}
	out := startSSE(w)
	defer out.heartbeat(s.cfg.Heartbeat)()
	poll := time.NewTicker(s.pollInterval())
	defer poll.Stop()
	ended := rec.Status.Terminal()
	for {
		for i, e := range evs {
			if out.stored(e, i == len(evs)-1) != nil || terminalOf(rec.Kind, e.Type) {
				return
			}
			from = e.Index + 1
		}
		if len(evs) < replayPage {
			if ended {
				return // read to the end after the run ended: nothing will follow
			}
			select {
			case <-news:
			case <-poll.C:
			case <-ctx.Done():
				return
			}
			// Read the status before the events: events stored before the end was
			// seen are then read below, and the next round stops.
			if cur, err := s.store.GetRun(ctx, rec.ID); err == nil {
				ended = cur.Status.Terminal()
			}
		}
		if evs, err = s.store.Events(ctx, rec.ID, from, replayPage); err != nil {
			if ctx.Err() == nil {
				s.log.Error("agentos: follow run", "run_id", rec.ID, "err", fmt.Errorf("store: %w", err))
			}
			return
		}
	}
}

// takeover resumes a run that a process which died left behind, claimed by the
// recorder for this server: a workflow's run goes on after its last checkpointed
// step, here; a run that never started (no event stored) starts. It returns
// store.ErrNotResumable for a run it cannot resume (an agent's, an unknown
// component's, a workflow marked not resumable, once started), which the
// recorder then ends ERROR "interrupted", and another error when it cannot resume
// it now (shutting down, the store failing): the run is left to its lease.
func (s *Server) takeover(ctx context.Context, rec *store.Run) error {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.notReady {
		return errClosing
	}
	c := s.components[string(rec.Kind)+"/"+rec.ComponentID]
	if c == nil {
		return store.ErrNotResumable
	}
	last, err := store.LastEvent(ctx, s.store, rec.ID)
	if err != nil {
		s.log.Error("agentos: take over run", "run_id", rec.ID, "err", err)
		return err
	}
	next := 0
	if last != nil {
		next = last.Index + 1
	}
	// A run with no event stored never started (a queued run whose worker died
	// before starting it): any run may start then. Otherwise only a resumable
	// workflow's run goes on.
	if next > 0 && (rec.Kind != store.KindWorkflow || !c.resumable) {
		return store.ErrNotResumable
	}
	steps := rec.Output.StepResults
	lr := newLiveRun(c, rec.ID, rec.Input, true, run.Options{SessionID: rec.SessionID, UserID: rec.UserID})
	lr.opts = append(lr.opts, run.WithResume(&run.Resume{NextEvent: next, Steps: steps}))
	if s.canceller != nil {
		// Cancelled while its replica was dying: it resumes only to end CANCELLED.
		if reason, ok, err := s.canceller.PendingCancel(ctx, rec.ID); err == nil && ok {
			c.registry.RequestCancel(rec.ID, reason)
		}
	}
	if err := s.register(lr); err != nil {
		return err
	}
	if err := s.startNow(lr); err != nil {
		if errors.Is(err, run.ErrInvalid) {
			return store.ErrNotResumable // its checkpoint does not fit the workflow
		}
		return err
	}
	s.log.Info("agentos: took over a run left behind", "run_id", rec.ID, "workflow", c.id,
		"from_replica", rec.Replica, "finished_steps", len(steps), "next_event", next)
	return nil
}

// runJob starts a background run taken from the shared queue and returns once it
// has ended. A run cancelled while queued starts and ends CANCELLED at once; a run
// of a component this server does not serve goes back to the queue.
func (s *Server) runJob(ctx context.Context, j *store.Job) error {
	c := s.components[string(j.Kind)+"/"+j.ComponentID]
	if c == nil {
		// Served by other replicas (a rolling deploy): one of them starts it.
		return fmt.Errorf("no %s %q on replica %s: %w", j.Kind, j.ComponentID, s.cfg.Replica, store.ErrNotHere)
	}
	lr := newLiveRun(c, j.ID, j.Input, true, run.Options{SessionID: j.SessionID, UserID: j.UserID})
	lr.opts = append(lr.opts, run.WithResume(&run.Resume{}))
	if reason, ok, err := s.canceller.PendingCancel(ctx, j.ID); err == nil && ok {
		c.registry.RequestCancel(j.ID, reason)
	}
	err := s.register(lr)
	if err == nil {
		err = s.startNow(lr)
	}
	if errors.Is(err, errClosing) {
		// Shutting down: the run is recorded CANCELLED rather than left PENDING.
		cctx, cancel := context.WithCancelCause(context.Background())
		cancel(errors.New(ReasonShutdown))
		lr.claim()
		err = s.begin(cctx, lr)
	}
	if err != nil {
		return err
	}
	<-lr.x.Done()
	return nil
}
