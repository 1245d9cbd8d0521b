package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

var _ store.Fencer = (*Store)(nil)

// AppendEvents stores events of any runs in one statement, and so in one
// transaction and one round trip; an event whose (RunID, Index) is already stored
// is left as it is. Nothing is written when an event is larger than
// store.MaxValueSize.
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
// In the common case, no run lost, it costs the one statement of AppendEvents;
// when one is found lost, nothing is written and the others' events are written
// by a second statement.
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
func (s *Store) appendEvents(ctx context.Context, replica string, events []store.Event) ([]string, error) {
	const op = "append events"
	if err := s.check(op); err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, nil
	}
	for i := range events {
		if err := lenCheck("event "+strconv.Itoa(events[i].Index)+" of run "+events[i].RunID, len(events[i].Data)); err != nil {
			return nil, fmt.Errorf("store/postgres: %s: %w", op, err)
		}
	}
	// Rows are inserted in key order, so that batches touching the same runs
	// lock their keys in one order and cannot deadlock.
	order := make([]int, len(events))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(events[a].RunID, events[b].RunID), cmp.Compare(events[a].Index, events[b].Index))
	})
	var (
		n     = len(events)
		ids   = make([]string, n)
		idxs  = make([]int32, n)
		types = make([]string, n)
		data  = make([]string, n)
		times = make([]time.Time, n)
		now   = ms(time.Now())
	)
	for i, j := range order {
		ev := &events[j]
		if ev.Index < 0 || ev.Index > math.MaxInt32 {
			return nil, fmt.Errorf("store/postgres: %s: event index %d of run %s is out of range", op, ev.Index, ev.RunID)
		}
		ids[i], idxs[i], types[i], data[i], times[i] = ev.RunID, int32(ev.Index), string(ev.Type), string(ev.Data), now
		if !ev.CreatedAt.IsZero() {
			times[i] = ms(ev.CreatedAt)
		}
	}
	payloads := eventsPayloads(ids, idxs)
	if replica == "" {
		if _, err := s.pool.Exec(ctx, s.cq.appendEvents, ids, idxs, types, data, times, s.channel, payloads); err != nil {
			return nil, s.wrap(fmt.Sprintf("%s (%d events)", op, n), err)
		}
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, s.cq.appendEventsAs, ids, idxs, types, data, times, s.channel, payloads, replica)
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("%s (%d events)", op, n), err)
	}
	var lost []string
	for rows.Next() {
		var id *string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, s.wrap(fmt.Sprintf("%s (%d events)", op, n), err)
		}
		if id != nil {
			lost = append(lost, *id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(fmt.Sprintf("%s (%d events)", op, n), err)
	}
	return lost, nil
}

// Events returns the events of a run from index from on, at most limit of them
// (all when limit is 0), in order.
func (s *Store) Events(ctx context.Context, runID string, from, limit int) ([]store.Event, error) {
	op := "events of run " + runID
	if err := s.check(op); err != nil {
		return nil, err
	}
	var lim any // NULL: no limit
	if limit > 0 {
		lim = limit
	}
	rows, err := s.pool.Query(ctx, s.q.events, runID, max(from, 0), lim)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Event, error) {
		ev := store.Event{RunID: runID}
		var typ string
		var data []byte
		if err := row.Scan(&ev.Index, &typ, &data, &ev.CreatedAt); err != nil {
			return ev, err
		}
		ev.Type, ev.CreatedAt = run.EventType(typ), ev.CreatedAt.UTC()
		if len(data) > 0 {
			ev.Data = data
		}
		return ev, nil
	})
	if err != nil {
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
