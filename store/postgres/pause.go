package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

var _ store.Pauser = (*Store)(nil)

// TakePaused takes a PAUSED run for replica until the given time (see
// store.Pauser), in one conditional UPDATE.
func (s *Store) TakePaused(ctx context.Context, runID, replica string, until time.Time) (*store.Run, error) {
	op := "take paused run " + runID
	if err := s.check(op); err != nil {
		return nil, err
	}
	r, err := scanRun(s.pool.QueryRow(ctx, s.q.takePaused, runID, replica, until, ms(time.Now())))
	if errors.Is(err, pgx.ErrNoRows) {
		cur, gerr := s.GetRun(ctx, runID)
		if gerr != nil {
			return nil, gerr
		}
		return nil, fmt.Errorf("store/postgres: %s: it is %s: %w", op, cur.Status, run.ErrNotPaused)
	}
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return r, nil
}

// ExpiredPauses returns the PAUSED runs whose pause expired (see
// store.Pauser), read in the partial index of the pauses that expire.
func (s *Store) ExpiredPauses(ctx context.Context, q store.ExpiredQuery) ([]*store.Run, error) {
	const op = "list expired pauses"
	if err := s.check(op); err != nil {
		return nil, err
	}
	var afterAt time.Time // before every expiry: no cursor
	var afterID string
	if q.After != nil {
		afterAt, afterID = store.PauseExpiry(q.After), q.After.ID
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, s.q.expiredPauses, ms(q.Before), afterAt, afterID, limit)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Run, error) { return scanRun(row) })
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return runs, nil
}
