package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

var _ store.Pauser = (*Store)(nil)

const sqlTakePaused = `UPDATE runs SET status = 'RUNNING', replica = ?, lease_until = ?, updated_at = ?,
		pause_expires = 0
	WHERE run_id = ? AND status = 'PAUSED'`

// TakePaused takes a PAUSED run for replica until the given time (see
// store.Pauser), in one transaction of the store's writer.
func (s *Store) TakePaused(ctx context.Context, runID, replica string, until time.Time) (*store.Run, error) {
	op := "take paused run " + runID
	if err := s.begin(ctx); err != nil {
		return nil, s.fail(op, err)
	}
	var taken *store.Run
	err := s.write(ctx, false, func(ctx context.Context, tx *sql.Tx) error {
		taken = nil
		res, err := tx.ExecContext(ctx, sqlTakePaused, replica, millis(until), time.Now().UnixMilli(), runID)
		if err != nil {
			return err
		}
		r, err := scanRun(tx.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE run_id = ?`, runID))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err != nil {
				return err
			}
			return fmt.Errorf("it is %s: %w", r.Status, run.ErrNotPaused)
		}
		taken = r
		return nil
	})
	if err != nil {
		return nil, s.fail(op, err)
	}
	return taken, nil
}

// sqlExpiredPauses reads the partial index of the pauses that expire (the
// planner, with no statistics, would rather read every PAUSED run by status).
const sqlExpiredPauses = `SELECT ` + runColumns + ` FROM runs INDEXED BY runs_pause_expires
	WHERE status = 'PAUSED' AND pause_expires > 0 AND pause_expires <= ?1
		AND (pause_expires, run_id) > (?2, ?3)
	ORDER BY pause_expires, run_id LIMIT ?4`

// ExpiredPauses returns the PAUSED runs whose pause expired (see
// store.Pauser), read in the partial index of the pauses that expire.
func (s *Store) ExpiredPauses(ctx context.Context, q store.ExpiredQuery) ([]*store.Run, error) {
	const op = "list expired pauses"
	if err := s.begin(ctx); err != nil {
		return nil, s.fail(op, err)
	}
	var afterAt int64
	var afterID string
	if q.After != nil {
		afterAt, afterID = millis(store.PauseExpiry(q.After)), q.After.ID
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.r.QueryContext(ctx, sqlExpiredPauses, q.Before.UnixMilli(), afterAt, afterID, limit)
	if err != nil {
		return nil, s.fail(op, err)
	}
	runs, err := scanRuns(rows)
	if err != nil {
		return nil, s.fail(op, err)
	}
	return runs, nil
}
