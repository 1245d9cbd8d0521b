package agentos

import (
	"context"

	"kern/run"
)

// Cancels across replicas. When the Store is a store.Canceller (PostgreSQL), several
// servers on one database form one system: a cancel for a run this server does not
// execute is stored as an intent and notified, and each server's listener cancels
// the run if it executes it, or keeps the intent in its registries (bounded, see
// run.Registry) so that the run ends CANCELLED if it starts here later. A listener
// that reconnects re-reads the pending intents, so a lost notification loses no
// cancel.

// startListener starts the cancel listener, stopped and waited for by
// stopListener. It does nothing when the store carries no cancels.
func (s *Server) startListener() {
	if s.canceller == nil {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	s.stopListen, s.listenDone = stop, make(chan struct{})
	go func() {
		defer close(s.listenDone)
		if err := s.canceller.Listen(ctx, s.remoteCancel); err != nil {
			s.log.Error("agentos: cancel listener stopped: cancels from other replicas no longer reach this one", "err", err)
		}
	}()
}

// stopListener stops the cancel listener and waits for it.
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
