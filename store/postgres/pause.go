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
