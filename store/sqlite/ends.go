package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/kern-dev/kern/store"
)

var _ store.EndWriter = (*Store)(nil)

// WriteEnds stores events as AppendEventsAs does and, in the same transaction (one
// op of the writer), the records of recs as UpdateRun does each (see
// store.EndWriter): a run's last events and its end cost one commit, not two. A
// record of a run whose events were found lost is not written (store.ErrTakenOver);
// one UpdateRun would refuse (store.ErrNotFound, store.ErrTakenOver) fails alone.
// Any other failure fails the whole call, and nothing of it is written.
func (s *Store) WriteEnds(ctx context.Context, replica string, events []store.Event, recs []*store.Run) (lost []string, recErrs []error, err error) {
	recErrs = make([]error, len(recs))
	if err := s.begin(ctx); err != nil {
		return nil, nil, s.fail("write ends", err)
	}
	if err := eventsTooLarge(events); err != nil {
		return nil, nil, s.fail("write ends", err)
	}
	// Each record's update, built before the write; one that cannot be (an
	// output too large) fails alone, before it.
	ups := make([]*op, len(recs))
	outs := make(outputs, 0, len(recs))
	defer outs.release() // once the write returned: its op is done
	for i, r := range recs {
		if ups[i], recErrs[i] = s.updateOp(ctx, r, &outs); recErrs[i] != nil {
			recErrs[i] = s.fail("update run "+r.ID, recErrs[i])
		}
	}
	pages := byRun(events)
	enc := s.encodePages(pages) // on this goroutine, not the writer's (see appendEvents)
	defer s.release(enc)
	refused := make([]error, len(recs)) // the updates the store refused, one by one
	err = s.writeNoted(ctx, false, func(ctx context.Context, tx *sql.Tx) error {
		lost = lost[:0] // the writer may run fn again
		clear(refused)
		if err := s.writePages(ctx, tx, replica, pages, enc, &lost); err != nil {
			return err
		}
		for i, o := range ups {
			switch {
			case o == nil:
			case slices.Contains(lost, recs[i].ID):
				refused[i] = fmt.Errorf("its events were refused: %w", store.ErrTakenOver)
			default:
				// An update that matches no row changes nothing: it fails alone.
				if err := o.fn(ctx, tx); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrTakenOver) {
					return err
				} else if err != nil {
					refused[i] = err
				}
			}
		}
		return nil
	}, func(b []byte) []byte {
		b = appendEventsNotices(b, pages, lost)
		for i, o := range ups {
			if o != nil && o.notes != nil && refused[i] == nil {
				b = o.notes(b)
			}
		}
		return b
	})
	if err != nil {
		return nil, nil, s.fail("write ends", err)
	}
	for i, e := range refused {
		if e != nil {
			recErrs[i] = s.fail("update run "+recs[i].ID, e)
		}
	}
	return lost, recErrs, nil
}
