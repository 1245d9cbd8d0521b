package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"kern/run"
	"kern/store"
)

// insertSizes are the numbers of rows of the prepared event INSERTs: a batch goes
// in statements of 50 rows, its rest in ones of 10 and 1. A statement per row would
// cost more in the driver than SQLite spends storing the row.
var insertSizes = []int{50, 10, 1}

// sqlInsertEvents returns the statement that inserts n events.
func sqlInsertEvents(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO events (run_id, idx, type, data, created_at) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`(?, ?, ?, ?, ?)`)
	}
	b.WriteString(` ON CONFLICT (run_id, idx) DO NOTHING`)
	return b.String()
}

// AppendEvents stores events of any runs in one transaction (which it may share
// with other writes: see the writer). An event whose (RunID, Index) is already
// stored is left as it is. An event larger than store.MaxValueSize fails the whole
// call with store.ErrTooLarge before anything is written.
func (s *Store) AppendEvents(ctx context.Context, events []store.Event) error {
	if err := s.begin(ctx); err != nil {
		return s.fail("append events", err)
	}
	if len(events) == 0 {
		return nil
	}
	for _, e := range events {
		if err := tooLarge(fmt.Sprintf("event %d of run %s", e.Index, e.RunID), len(e.Data)); err != nil {
			return s.fail("append events", err)
		}
	}
	err := s.write(ctx, len(events) == 1, func(ctx context.Context, tx *sql.Tx) error {
		args := make([]any, 0, 5*insertSizes[0])
		for rest := events; len(rest) > 0; {
			n := insertSizes[len(insertSizes)-1]
			for _, size := range insertSizes {
				if len(rest) >= size {
					n = size
					break
				}
			}
			args = args[:0]
			for _, e := range rest[:n] {
				args = append(args, e.RunID, e.Index, string(e.Type), []byte(e.Data), millis(e.CreatedAt))
			}
			rest = rest[n:]
			if _, err := tx.StmtContext(ctx, s.insertEvents[n]).ExecContext(ctx, args...); err != nil {
				return err
			}
		}
		return nil
	})
	return s.fail("append events", err)
}

// Events returns the events of a run from index from on, at most limit of them (all
// when limit is 0), in order.
func (s *Store) Events(ctx context.Context, runID string, from, limit int) ([]store.Event, error) {
	if err := s.begin(ctx); err != nil {
		return nil, s.fail("events of run "+runID, err)
	}
	if limit <= 0 {
		limit = -1 // no limit
	}
	rows, err := s.r.QueryContext(ctx, `SELECT idx, type, data, created_at FROM events
		WHERE run_id = ? AND idx >= ? ORDER BY idx LIMIT ?`, runID, from, limit)
	if err != nil {
		return nil, s.fail("events of run "+runID, err)
	}
	defer rows.Close()
	var evs []store.Event
	for rows.Next() {
		e := store.Event{RunID: runID}
		var typ string
		var created int64
		if err := rows.Scan(&e.Index, &typ, &e.Data, &created); err != nil {
			return nil, s.fail("events of run "+runID, err)
		}
		e.Type, e.CreatedAt = run.EventType(typ), fromMillis(created)
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("events of run "+runID, err)
	}
	return evs, nil
}
