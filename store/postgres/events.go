package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-dev/kern/store"
)

var (
	_ store.Fencer    = (*Store)(nil)
	_ store.EndWriter = (*Store)(nil)
)

// AppendEvents stores events of any runs in one transaction and, in the common
// case (each run's events follow those stored), one statement and one round trip;
// an event whose (RunID, Index) is already stored is left as it is. Nothing is
// written when an event is larger than store.MaxValueSize. A run's consecutive
// events are stored as one page (see pages.go).
//
// The same transaction notifies the schema's listeners (see Listen) of each run
// written and its greatest index in the batch: once per call, not per event, in
// as few notifications as their size allows.
func (s *Store) AppendEvents(ctx context.Context, events []store.Event) error {
	_, err := s.appendEvents(ctx, "", events)
	return err
}

// AppendEventsAs stores events as AppendEvents does, except those of the runs
// whose record names another replica than replica, whose ids it returns (see
// store.Fencer). The statement locks the records of the batch's runs until it
// commits, so that a claim (Claim) of one of them comes wholly before or after it.
// In the common case, no run lost, it costs the round trip of AppendEvents;
// when one is found lost, nothing is written and the others' events are written
// by a second one.
func (s *Store) AppendEventsAs(ctx context.Context, replica string, events []store.Event) ([]string, error) {
	var lost []string
	for len(events) > 0 {
		got, err := s.appendEvents(ctx, replica, events)
		if err != nil || len(got) == 0 {
			return lost, err
		}
		lost = append(lost, got...)
		events = slices.DeleteFunc(slices.Clone(events), func(e store.Event) bool { return slices.Contains(got, e.RunID) })
	}
	return lost, nil
}

// appendEvents stores events, fenced for replica if it is not empty: if a run
// is found lost, nothing is written and the lost runs are returned.
//
// A run's pages must not overlap, so an append writes only indexes not stored:
// it holds an advisory lock per run (lockRuns) until it commits, and then, in a
// second statement of the same round trip, and so with a snapshot taken once the
// locks are held, writes its pages if each begins after the last index stored of
// its run (appendPages). Otherwise (a write retried, a run resumed, a gap filled)
// nothing is written, and a transaction of a few statements writes the events not
// stored (appendBehind).
func (s *Store) appendEvents(ctx context.Context, replica string, events []store.Event) ([]string, error) {
	const op = "append events"
	if err := s.check(op); err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, nil
	}
	if err := checkEvents(op, events); err != nil {
		return nil, err
	}
	sorted := sortEvents(events)
	p := makePages(sorted, ms(time.Now()))
	what := fmt.Sprintf("%s (%d events)", op, len(sorted))
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	lost, behind, err := s.writePages(ctx, conn, replica, &p, true)
	if err == nil && !behind && len(lost) == 0 {
		s.notifyCommitted(ctx, conn, eventsPayloads(p.ids, p.lasts)...)
	}
	conn.Release()
	if err != nil {
		return nil, s.wrap(what, err)
	}
	if behind {
		if lost, err = s.appendBehind(ctx, replica, sorted); err != nil {
			return nil, s.wrap(what, err)
		}
	}
	return lost, nil
}

// checkEvents refuses, for op, events the store cannot take: one larger than
// store.MaxValueSize, or an index out of the column's range.
func checkEvents(op string, events []store.Event) error {
	for i := range events {
		ev := &events[i]
		if err := lenCheck("event "+strconv.Itoa(ev.Index)+" of run "+ev.RunID, len(ev.Data)); err != nil {
			return fmt.Errorf("store/postgres: %s: %w", op, err)
		}
		if ev.Index < 0 || ev.Index > math.MaxInt32 {
			return fmt.Errorf("store/postgres: %s: event index %d of run %s is out of range", op, ev.Index, ev.RunID)
		}
	}
	return nil
}

// sendBatcher is the pool or a transaction.
type sendBatcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// writePages locks the runs of p and writes p in one round trip (the caller
// notifies them once committed: see notifyCommitted), fenced for replica if it
// is not empty. If check, nothing is written when a page does not begin after
// the last index stored of its run, and behind says so. It returns the runs found lost, if any, and then wrote nothing.
func (s *Store) writePages(ctx context.Context, q sendBatcher, replica string, p *pages, check bool) (lost []string, behind bool, err error) {
	var b pgx.Batch
	b.Queue(s.q.lockRuns, s.lockClass, lockKeys(p))
	stmt := s.cq.appendPagesAs
	if replica == "" {
		stmt = s.cq.appendPages
	}
	b.Queue(stmt, p.args(s.channel, nil, replica, check)...)
	br := q.SendBatch(ctx, &b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, false, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, false, err
	}
	for rows.Next() {
		var kind string
		var id *string
		if err := rows.Scan(&kind, &id); err != nil {
			rows.Close()
			return nil, false, err
		}
		switch {
		case kind == "l" && id != nil:
			lost = append(lost, *id)
		case kind == "b":
			behind = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if err := br.Close(); err != nil {
		return nil, false, err
	}
	if len(lost) > 0 {
		behind = false
	}
	return lost, behind, nil
}

// appendBehind stores those of sorted (sorted by sortEvents) whose index is not
// stored, in one transaction which holds the runs' locks from its read of what is
// stored to its commit, fenced for replica if it is not empty.
func (s *Store) appendBehind(ctx context.Context, replica string, sorted []store.Event) ([]string, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit it is a no-op
	all := makePages(sorted, time.Time{})
	if _, err := tx.Exec(ctx, s.q.lockRuns, s.lockClass, lockKeys(&all)); err != nil {
		return nil, err
	}
	// Each run's range of indexes, and the indexes of it stored.
	var ids []string
	var los, his []int32
	for i, id := range all.ids {
		if n := len(ids); n > 0 && ids[n-1] == id {
			his[n-1] = all.lasts[i]
			continue
		}
		ids, los, his = append(ids, id), append(los, all.firsts[i]), append(his, all.lasts[i])
	}
	rows, err := tx.Query(ctx, s.q.storedPages, ids, los, his)
	if err != nil {
		return nil, err
	}
	stored := make(map[string]map[int]bool)
	for rows.Next() {
		var i int
		var data []byte
		if err := rows.Scan(&i, &data); err != nil {
			rows.Close()
			return nil, err
		}
		id := ids[i-1]
		if stored[id] == nil {
			stored[id] = make(map[int]bool)
		}
		if err := pageIndexes(data, func(idx int) { stored[id][idx] = true }); err != nil {
			rows.Close()
			return nil, fmt.Errorf("run %s: %w", id, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rest := slices.DeleteFunc(slices.Clone(sorted), func(e store.Event) bool { return stored[e.RunID][e.Index] })
	if len(rest) == 0 {
		// All stored already: a write retried whose commit's answer was lost,
		// and its notification with it.
		_ = tx.Rollback(context.WithoutCancel(ctx)) // it wrote nothing: its locks go before the notification
		s.notifyCommitted(ctx, s.pool, eventsPayloads(all.ids, all.lasts)...)
		return nil, nil
	}
	p := makePages(rest, ms(time.Now()))
	lost, _, err := s.writePages(ctx, tx, replica, &p, false)
	if err != nil || len(lost) > 0 {
		return lost, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	s.notifyCommitted(ctx, s.pool, eventsPayloads(p.ids, p.lasts)...)
	return nil, nil
}

// Events returns the events of a run from index from on, at most limit of them
// (all when limit is 0), in order.
func (s *Store) Events(ctx context.Context, runID string, from, limit int) ([]store.Event, error) {
	op := "events of run " + runID
	if err := s.check(op); err != nil {
		return nil, err
	}
	from = max(from, 0)
	if from > math.MaxInt32 {
		return nil, nil
	}
	var lim any // NULL: no limit
	if limit > 0 {
		lim = limit
	}
	rows, err := s.pool.Query(ctx, s.q.events, runID, from, lim)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var evs []store.Event
	types := make(eventTypes)
	for rows.Next() {
		var page []byte
		if err := rows.Scan(&page); err != nil {
			return nil, s.wrap(op, err)
		}
		if evs, err = decodePage(evs, runID, page, from, limit, types); err != nil {
			return nil, fmt.Errorf("store/postgres: %s: %w", op, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(op, err)
	}
	return evs, nil
}

// GetSession returns a session, or store.ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (*store.Session, error) {
	op := "get session " + id
	if err := s.check(op); err != nil {
		return nil, err
	}
	sess, err := scanSession(s.pool.QueryRow(ctx, s.q.getSession, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("store/postgres: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return sess, nil
}

// SaveSession creates or updates a session. A new session's CreatedAt is kept
// when set, and now otherwise; an update keeps the stored one, and the stored
// name when sess has none. It sets sess's
// CreatedAt and UpdatedAt to the times stored.
func (s *Store) SaveSession(ctx context.Context, sess *store.Session) error {
	op := "save session " + sess.ID
	if err := s.check(op); err != nil {
		return err
	}
	state, err := json.Marshal(sess.State)
	if err != nil {
		return fmt.Errorf("store/postgres: %s: encode state: %w", op, err)
	}
	if err := lenCheck("state", len(state)); err != nil {
		return fmt.Errorf("store/postgres: %s: %w", op, err)
	}
	now := ms(time.Now())
	created := now
	if !sess.CreatedAt.IsZero() {
		created = ms(sess.CreatedAt)
	}
	err = s.pool.QueryRow(ctx, s.q.saveSession, sess.ID, sess.UserID, string(sess.Kind), sess.ComponentID,
		state, created, now, sess.Name).Scan(&created)
	if err != nil {
		return s.wrap(op, err)
	}
	sess.CreatedAt, sess.UpdatedAt = created.UTC(), now
	return nil
}

// DeleteSession deletes a session with its runs and their events, in one
// transaction, or returns store.ErrNotFound when there is no such session.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	op := "delete session " + id
	if err := s.check(op); err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.wrap(op, err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit it is a no-op
	tag, err := tx.Exec(ctx, s.q.deleteSess, id)
	if err != nil {
		return s.wrap(op, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store/postgres: %s: %w", op, store.ErrNotFound)
	}
	if _, err := tx.Exec(ctx, s.q.deleteEvents, id); err != nil {
		return s.wrap(op, err)
	}
	if _, err := tx.Exec(ctx, s.q.deleteRuns, id); err != nil {
		return s.wrap(op, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return s.wrap(op, err)
	}
	return nil
}
