package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// Processes on one database form one system when the store is a store.Canceller:
// a cancel for a run this host does not execute is stored as an intent and
// notified, and each host's listener cancels the run if it executes it, or keeps
// the intent in its registries (bounded, see run.Registry) so that the run ends
// CANCELLED if it starts here later. The same notifications say when another
// process stored a run's events or its end, so that a follower here (a stream, a
// waiting cancel) follows a run executing there. A listener that reconnects re-reads
// the pending intents and wakes every follower, and followers also read the store
// now and then, so a lost notification loses nothing.

// notifiedPoll is how often a follower reads the store unprompted when the store
// notifies: the fallback for a lost notification.
const notifiedPoll = time.Second

// watchers wake the followers of runs when the store notifies their events or end.
type watchers struct {
	mu sync.Mutex
	m  map[string]map[*follower]struct{} // the followers of each run followed
}

// follower is a follower of a run.
type follower struct {
	news  chan struct{} // signalled whenever the run has news
	ended run.Status    // the terminal status notified, if any; guarded by watchers.mu
}

// add returns a follower of run id, and the function that stops it. Subscribe
// before reading the store, so that nothing stored after the read goes unnoticed.
func (w *watchers) add(id string) (*follower, func()) {
	f := &follower{news: make(chan struct{}, 1)}
	w.mu.Lock()
	if w.m == nil {
		w.m = make(map[string]map[*follower]struct{})
	}
	set := w.m[id]
	if set == nil {
		set = make(map[*follower]struct{})
		w.m[id] = set
	}
	set[f] = struct{}{}
	w.mu.Unlock()
	return f, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(set, f)
		if len(set) == 0 {
			delete(w.m, id)
		}
	}
}

// ended returns the terminal status notified to f, or "" if none was.
func (w *watchers) ended(f *follower) run.Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return f.ended
}

// wake signals the followers of run id, or of every run when id is empty. Waking
// one run costs a lookup, not a pass over every run followed: the listener wakes
// each run of every events notification, on the goroutine that also delivers
// cancels. A terminal st is the status the store notified as stored for run id:
// its followers learn it without reading the store.
func (w *watchers) wake(id string, st run.Status) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if id != "" {
		signal(w.m[id], st)
		return
	}
	for _, set := range w.m {
		signal(set, "")
	}
}

// signal signals each follower of set that is not signalled already, and notes
// st if terminal.
func signal(set map[*follower]struct{}, st run.Status) {
	for f := range set {
		if st.Terminal() {
			f.ended = st
		}
		select {
		case f.news <- struct{}{}:
		default:
		}
	}
}

// startListener starts the store's listener until ctx is done. It does nothing
// when the store carries no notifications.
func (h *Host) startListener(ctx context.Context) {
	if h.canceller == nil {
		return
	}
	n := store.Notifications{
		Cancel:      h.remoteCancel,
		Events:      func(id string, _ int) { h.followers.wake(id, "") },
		Ended:       func(id string, st run.Status) { h.followers.wake(id, st) },
		Reconnected: func() { h.followers.wake("", "") },
	}
	h.bg.Go(func() {
		if err := h.canceller.Listen(ctx, n); err != nil {
			h.log.Error("host: listener stopped: cancels from other processes no longer reach this one", "err", err)
		}
	})
}

// pollInterval is how often a follower reads the store unprompted.
func (h *Host) pollInterval() time.Duration {
	if h.canceller == nil {
		return h.opts.PollInterval
	}
	return notifiedPoll
}

// waitEnded waits until the stored run id is terminal, or ctx is done, and returns
// its last stored status (st until one is read or notified). A terminal status the
// store notifies (store.Notifications.Ended: stored) is taken as read: the caller
// of a cancel on another replica is answered without one more read.
func (h *Host) waitEnded(ctx context.Context, id string, st run.Status) run.Status {
	st, _ = h.waitEnd(ctx, id, st, true)
	return st
}

// waitStored is waitEnded, which also returns the run's terminal record as it
// read it (nil unless the status returned is terminal and was read): it returns
// a terminal status only once it read the record.
func (h *Host) waitStored(ctx context.Context, id string, st run.Status) (run.Status, *store.Run) {
	return h.waitEnd(ctx, id, st, false)
}

// waitEnd is waitStored, or, if notified, waitEnded.
func (h *Host) waitEnd(ctx context.Context, id string, st run.Status, notified bool) (run.Status, *store.Run) {
	f, stop := h.followers.add(id)
	defer stop()
	poll := time.NewTicker(h.pollInterval())
	defer poll.Stop()
	for {
		// Read after subscribing: an end stored before it is read here, one
		// stored after it wakes the wait.
		rec, err := h.store.GetRun(ctx, id)
		switch {
		case err == nil:
			st = rec.Status
		case ctx.Err() == nil && !errors.Is(err, store.ErrNotFound):
			h.log.Warn("host: wait for a run's end", "run_id", id, "err", err)
		}
		if st.Terminal() {
			if err != nil {
				rec = nil
			}
			return st, rec
		}
		select {
		case <-f.news:
			if ended := h.followers.ended(f); notified && ended.Terminal() {
				return ended, nil
			}
		case <-poll.C:
		case <-ctx.Done():
			return st, nil
		}
	}
}

// followPage is how many stored events Follow reads at a time.
const followPage = 512

// Follow reads a stored run's events from index from on: those stored, then,
// while the run executes in another process, those it stores next, until its
// terminal event, or its record says it ended and every stored event is out, or
// ctx is done, or yield returns false. yield gets the events a page at a time; it
// is called once at least (maybe with none), right after the first read, so that
// an error returned before any call is the store's on that read.
func (h *Host) Follow(ctx context.Context, rec *store.Run, from int, yield func([]store.Event) bool) error {
	return h.follow(ctx, rec, from, yield, false)
}

// FollowExec follows x, a run executing in this process, from index from on, as
// its clients must hear it: live gets the events of x's log once they are durable
// (see run.Log.FollowDurable; all of them at once for a run not persisted), up to
// the run's terminal event, which comes once its end is stored. The events x's log
// no longer holds in memory (see run.Log.Held) are read from the store, where they
// are, and given to stored, and the log is followed again after the last of them:
// no event is skipped or given twice. Should this process lose the run (its
// recorder gave up on it: the store failed for longer than the run's lease, or
// another replica took it over), what x emits from then on is never told: stored
// then gets, from the first event live did not get, the events the store holds
// and those that whoever owns the run next (another replica, or this host's
// recovery once the store is back) stores, as Follow gives them, waiting through
// the store's failures. It returns once the run's terminal event is out, a
// callback returned false, or ctx is done (ctx's error).
func (h *Host) FollowExec(ctx context.Context, x *run.Exec, from int, live func(*run.Event) bool, stored func([]store.Event) bool) error {
	for {
		next, err := x.Log.FollowDurable(ctx, from, live)
		if errors.Is(err, run.ErrEvicted) && h.store != nil {
			var more bool
			if from, more, err = h.readEvicted(ctx, x, next, stored); err != nil || !more {
				if err != nil && ctx.Err() == nil {
					h.log.Error("host: follow run", "run_id", x.ID, "err", err)
				}
				return err
			}
			continue
		}
		if !errors.Is(err, run.ErrLost) || h.store == nil {
			return err
		}
		return h.followLost(ctx, x, next, stored)
	}
}

// followLost follows from the store, from index next on, a run this process lost
// (see FollowExec). It is a call of its own so that FollowExec's frame, on the
// stack of every stream while it waits, stays small.
func (h *Host) followLost(ctx context.Context, x *run.Exec, next int, stored func([]store.Event) bool) error {
	h.log.Info("host: this process lost a run it streams: its clients follow it from the store",
		"run_id", x.ID, "from_event", next)
	return h.follow(ctx, &store.Run{ID: x.ID, Kind: x.Kind, Status: run.StatusRunning}, next, stored, true)
}

// readEvicted gives stored the events of x from index from that its log dropped
// from memory, read from the store up to the durable watermark (so no more than
// the run's clients may be told), and returns the index after the last one given,
// and whether stored asked for more. They are durable, so stored: a store that
// has none of them fails the read.
func (h *Host) readEvicted(ctx context.Context, x *run.Exec, from int, stored func([]store.Event) bool) (next int, more bool, err error) {
	to := x.Log.Readable()
	for from < to {
		evs, err := h.store.Events(ctx, x.ID, from, min(followPage, to-from))
		if err != nil {
			return from, false, fmt.Errorf("host: read the stored events of run %s from %d: %w", x.ID, from, err)
		}
		if len(evs) == 0 || evs[0].Index != from {
			return from, false, fmt.Errorf("host: run %s: event %d is neither in memory nor in the store", x.ID, from)
		}
		for i := range evs {
			if evs[i].Index >= to {
				evs = evs[:i]
				break
			}
		}
		if !stored(evs) {
			return from, false, nil
		}
		from = evs[len(evs)-1].Index + 1
	}
	return from, true, nil
}

// follow is Follow; patient, it waits through the store's failures (the store
// that failed for longer than a run's lease) until ctx is done, instead of
// returning the first one.
func (h *Host) follow(ctx context.Context, rec *store.Run, from int, yield func([]store.Event) bool, patient bool) error {
	f, stop := h.followers.add(rec.ID)
	defer stop()
	news := f.news
	poll := time.NewTicker(h.pollInterval())
	defer poll.Stop()
	evs, err := h.store.Events(ctx, rec.ID, from, followPage)
	for ; err != nil && patient; evs, err = h.store.Events(ctx, rec.ID, from, followPage) {
		if !h.await(ctx, news, poll.C) {
			return ctx.Err()
		}
	}
	if err != nil {
		return err
	}
	ended := stops(rec.Status)
	for {
		for i := range evs {
			if evs[i].Ends(rec.ID) { // not a nested run's end: an agent called as a tool
				yield(evs[:i+1])
				return nil
			}
		}
		if !yield(evs) {
			return nil
		}
		if len(evs) > 0 {
			from = evs[len(evs)-1].Index + 1
		}
		if len(evs) < followPage {
			if ended {
				return nil // read to the end after the run ended: nothing will follow
			}
			if !h.await(ctx, news, poll.C) {
				return nil
			}
			// Read the status before the events: events stored before the end was
			// seen are then read below, and the next round stops.
			cur, err := h.store.GetRun(ctx, rec.ID)
			switch {
			case err == nil:
				ended = stops(cur.Status)
			case patient && errors.Is(err, store.ErrNotFound):
				// A run lost before its record was stored: no process will
				// write more of it. The stream ends, with no end made up.
				return nil
			}
		}
		for evs, err = h.store.Events(ctx, rec.ID, from, followPage); err != nil; evs, err = h.store.Events(ctx, rec.ID, from, followPage) {
			if ctx.Err() != nil {
				return nil
			}
			if !patient {
				h.log.Error("host: follow run", "run_id", rec.ID, "err", fmt.Errorf("store: %w", err))
				return nil
			}
			if !h.await(ctx, news, poll.C) {
				return nil
			}
		}
	}
}

// await waits for news of a followed run or the next poll, and reports whether ctx
// is still live.
func (h *Host) await(ctx context.Context, news <-chan struct{}, poll <-chan time.Time) bool {
	select {
	case <-news:
	case <-poll:
	case <-ctx.Done():
		return false
	}
	return true
}

// stops reports whether a run in status st stores no more events until someone
// acts: it ended, or it is paused (a continue streams on from its own request).
func stops(st run.Status) bool { return st.Terminal() || st == run.StatusPaused }
