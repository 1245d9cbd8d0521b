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

const sqlTakePaused = `UPDATE runs SET status = 'RUNNING', replica = ?, lease_until = ?, updated_at = ?
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
