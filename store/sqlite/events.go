package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

const (
	sqlMaxIndex   = `SELECT max(last_idx) FROM event_pages WHERE run_id = ?`
	sqlInsertPage = `INSERT INTO event_pages (run_id, first_idx, last_idx, data) VALUES (?, ?, ?, ?)`
)

// errBadPage reports a page that does not decode: the database was changed by hand
// or damaged.
var errBadPage = errors.New("malformed event page")

// AppendEvents stores events of any runs in one transaction (which it may share
// with other writes: see the writer), one page per run. An event whose (RunID,
// Index) is already stored is left as it is. An event larger than
// store.MaxValueSize fails the whole call with store.ErrTooLarge before anything is
// written. The same transaction stores a notice of each run's last index, for
// listeners (see Listen).
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
	pages := byRun(events)
	err := s.writeNoted(ctx, len(pages) == 1, func(ctx context.Context, tx *sql.Tx) error {
		var buf []byte
		for _, evs := range pages {
			evs, err := s.unstored(ctx, tx, evs)
			if err != nil || len(evs) == 0 {
				if err != nil {
					return err
				}
				continue
			}
			buf = encodePage(buf[:0], evs)
			first, last := evs[0].Index, evs[len(evs)-1].Index
			if _, err := tx.StmtContext(ctx, s.insertPage).ExecContext(ctx, evs[0].RunID, first, last, buf); err != nil {
				return err
			}
		}
		return nil
	}, func(b []byte) []byte { return appendEventsNotices(b, pages) })
	return s.fail("append events", err)
}

// appendEventsNotices appends to a notices body that the runs of pages have their
// events stored up to the last of each page.
func appendEventsNotices(b []byte, pages [][]store.Event) []byte {
	for _, evs := range pages {
		if id := evs[0].RunID; len(id) <= MaxCancelRunID {
			b = appendEventsNotice(b, id, evs[len(evs)-1].Index)
		}
	}
	return b
}

// byRun groups events by run, in order of index, without repeated indexes.
func byRun(events []store.Event) [][]store.Event {
	sorted := slices.Clone(events)
	slices.SortStableFunc(sorted, func(a, b store.Event) int {
		if c := cmpString(a.RunID, b.RunID); c != 0 {
			return c
		}
		return a.Index - b.Index
	})
	var pages [][]store.Event
	for i := 0; i < len(sorted); {
		j := i + 1
		for j < len(sorted) && sorted[j].RunID == sorted[i].RunID {
			j++
		}
		page := slices.CompactFunc(sorted[i:j:j], func(a, b store.Event) bool { return a.Index == b.Index })
		pages = append(pages, page)
		i = j
	}
	return pages
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// unstored returns the events of one run that are not stored yet. The common case,
// a run's next events, costs one indexed lookup.
func (s *Store) unstored(ctx context.Context, tx *sql.Tx, evs []store.Event) ([]store.Event, error) {
	var maxIdx sql.NullInt64
	if err := tx.StmtContext(ctx, s.maxIndex).QueryRowContext(ctx, evs[0].RunID).Scan(&maxIdx); err != nil {
		return nil, err
	}
	if !maxIdx.Valid || int64(evs[0].Index) > maxIdx.Int64 {
		return evs, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT data FROM event_pages WHERE run_id = ? AND last_idx >= ? AND first_idx <= ?`,
		evs[0].RunID, evs[0].Index, evs[len(evs)-1].Index)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	stored := make(map[int]bool)
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		if err := decodePage(data, func(e store.Event) { stored[e.Index] = true }); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(slices.Clone(evs), func(e store.Event) bool { return stored[e.Index] }), nil
}

// encodePage appends the page of evs to dst.
func encodePage(dst []byte, evs []store.Event) []byte {
	for _, e := range evs {
		dst = strconv.AppendInt(dst, int64(e.Index), 10)
		dst = append(dst, '\t')
		dst = append(dst, e.Type...)
		dst = append(dst, '\t')
		dst = strconv.AppendInt(dst, millis(e.CreatedAt), 10)
		dst = append(dst, '\t')
		dst = strconv.AppendInt(dst, int64(len(e.Data)), 10)
		dst = append(dst, '\n')
		dst = append(dst, e.Data...)
	}
	return dst
}

// decodePage calls fn with each event of a page. The events' Data are copies.
func decodePage(page []byte, fn func(store.Event)) error {
	for len(page) > 0 {
		nl := bytes.IndexByte(page, '\n')
		if nl < 0 {
			return errBadPage
		}
		fields := bytes.Split(page[:nl], []byte{'\t'})
		if len(fields) != 4 {
			return errBadPage
		}
		idx, err1 := strconv.Atoi(string(fields[0]))
		created, err2 := strconv.ParseInt(string(fields[2]), 10, 64)
		n, err3 := strconv.Atoi(string(fields[3]))
		page = page[nl+1:]
		if err := errors.Join(err1, err2, err3); err != nil || n < 0 || n > len(page) {
			return errBadPage
		}
		fn(store.Event{Index: idx, Type: run.EventType(fields[1]), CreatedAt: fromMillis(created), Data: bytes.Clone(page[:n])})
		page = page[n:]
	}
	return nil
}

// Events returns the events of a run from index from on, at most limit of them (all
// when limit is 0), in order.
func (s *Store) Events(ctx context.Context, runID string, from, limit int) ([]store.Event, error) {
	if err := s.begin(ctx); err != nil {
		return nil, s.fail("events of run "+runID, err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT data FROM event_pages
		WHERE run_id = ? AND last_idx >= ? ORDER BY first_idx`, runID, from)
	if err != nil {
		return nil, s.fail("events of run "+runID, err)
	}
	defer rows.Close()
	var evs []store.Event
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, s.fail("events of run "+runID, err)
		}
		err := decodePage(data, func(e store.Event) {
			if e.Index >= from {
				e.RunID = runID
				evs = append(evs, e)
			}
		})
		if err != nil {
			return nil, s.fail("events of run "+runID, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("events of run "+runID, err)
	}
	// Pages written to fill a gap interleave with later ones.
	slices.SortStableFunc(evs, func(a, b store.Event) int { return a.Index - b.Index })
	if limit > 0 && len(evs) > limit {
		evs = evs[:limit]
	}
	return evs, nil
}
