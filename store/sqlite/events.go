package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

const (
	// sqlMaxIndex reads, for a run (?1), whether its record names another replica
	// than ?2 (NULL if it has no record, or ?2 is NULL) and its greatest stored
	// index: the two primary-key lookups of an append, in one statement.
	sqlMaxIndex = `SELECT (SELECT replica <> ?2 FROM runs WHERE run_id = ?1),
		(SELECT max(last_idx) FROM event_pages WHERE run_id = ?1)`
	sqlInsertPage = `INSERT INTO event_pages (run_id, first_idx, last_idx, data) VALUES (?, ?, ?, ?)`
)

// errBadPage reports a page that does not decode: the database was changed by hand
// or damaged.
var errBadPage = errors.New("malformed event page")

var _ store.Fencer = (*Store)(nil)

// AppendEvents stores events of any runs in one transaction (which it may share
// with other writes: see the writer), one page per run. An event whose (RunID,
// Index) is already stored is left as it is. An event larger than
// store.MaxValueSize fails the whole call with store.ErrTooLarge before anything is
// written. The same transaction stores a notice of each run's last index, for
// listeners (see Listen).
func (s *Store) AppendEvents(ctx context.Context, events []store.Event) error {
	_, err := s.appendEvents(ctx, nil, events)
	return err
}

// AppendEventsAs stores events as AppendEvents does, except those of the runs
// whose record names another replica than replica, whose ids it returns (see
// store.Fencer). The writer's transaction (BEGIN IMMEDIATE) holds the database's
// write lock from the check to the commit, so a claim (Claim) of another process
// comes wholly before or after it.
func (s *Store) AppendEventsAs(ctx context.Context, replica string, events []store.Event) ([]string, error) {
	return s.appendEvents(ctx, replica, events)
}

// appendEvents stores events; replica, if not nil, fences them (see
// AppendEventsAs), and the runs found lost are returned.
func (s *Store) appendEvents(ctx context.Context, replica any, events []store.Event) ([]string, error) {
	if err := s.begin(ctx); err != nil {
		return nil, s.fail("append events", err)
	}
	if len(events) == 0 {
		return nil, nil
	}
	for _, e := range events {
		if err := tooLarge(fmt.Sprintf("event %d of run %s", e.Index, e.RunID), len(e.Data)); err != nil {
			return nil, s.fail("append events", err)
		}
	}
	pages := byRun(events)
	var lost []string
	err := s.writeNoted(ctx, len(pages) == 1, func(ctx context.Context, tx *sql.Tx) error {
		lost = lost[:0] // the writer may run fn again
		if len(pages) == 1 {
			return s.appendPage(ctx, tx, replica, pages[0], &lost)
		}
		return s.appendPages(ctx, tx, replica, pages, &lost)
	}, func(b []byte) []byte { return appendEventsNotices(b, pages, lost) })
	if err != nil {
		return nil, s.fail("append events", err)
	}
	return lost, nil
}

// appendEventsNotices appends to a notices body that the runs of pages, but those
// lost, have their events stored up to the last of each page.
func appendEventsNotices(b []byte, pages [][]store.Event, lost []string) []byte {
	for _, evs := range pages {
		if id := evs[0].RunID; len(id) <= MaxCancelRunID && !slices.Contains(lost, id) {
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

// appendPage stores the page of one run's events, as appendEvents does.
func (s *Store) appendPage(ctx context.Context, tx *sql.Tx, replica any, evs []store.Event, lost *[]string) error {
	evs, theirs, err := s.unstored(ctx, tx, replica, evs)
	if err != nil || len(evs) == 0 {
		return err
	}
	if theirs {
		*lost = append(*lost, evs[0].RunID)
		return nil
	}
	page := encodePage(nil, evs)
	_, err = tx.StmtContext(ctx, s.insertPage).ExecContext(ctx, evs[0].RunID, evs[0].Index, evs[len(evs)-1].Index, page)
	return err
}

// pagesPerStatement bounds the runs one statement of appendPages reads or writes:
// four parameters a page stay far below SQLite's limit of 32,766.
const pagesPerStatement = 256

// sqlLastStored reads, for each run id of the JSON array ?2, in order, whether its
// record names another replica than ?1 (NULL if it has no record, or ?1 is NULL)
// and its greatest stored index.
const sqlLastStored = `SELECT (SELECT replica <> ?1 FROM runs WHERE run_id = k.value),
	(SELECT max(last_idx) FROM event_pages WHERE run_id = k.value)
	FROM json_each(?2) AS k ORDER BY k.key`

// appendPages stores the pages of many runs, as appendEvents does, in a few
// statements however many runs there are: one reads every run's owner and last
// stored index, and multi-row INSERTs write the pages. A statement costs the
// writer more than the rows it touches, and a flush of many streaming runs carries
// a few events of each.
func (s *Store) appendPages(ctx context.Context, tx *sql.Tx, replica any, pages [][]store.Event, lost *[]string) error {
	for len(pages) > 0 {
		n := min(len(pages), pagesPerStatement)
		if err := s.appendChunk(ctx, tx, replica, pages[:n], lost); err != nil {
			return err
		}
		pages = pages[n:]
	}
	return nil
}

func (s *Store) appendChunk(ctx context.Context, tx *sql.Tx, replica any, pages [][]store.Event, lost *[]string) error {
	ids := make([]string, len(pages))
	for i, evs := range pages {
		ids[i] = evs[0].RunID
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, sqlLastStored, replica, string(list))
	if err != nil {
		return err
	}
	type last struct {
		other sql.NullBool
		idx   sql.NullInt64
	}
	lasts := make([]last, 0, len(pages))
	for rows.Next() {
		var l last
		if err := rows.Scan(&l.other, &l.idx); err != nil {
			rows.Close()
			return err
		}
		lasts = append(lasts, l)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	if len(lasts) != len(pages) {
		return fmt.Errorf("read the last stored index of %d runs: got %d", len(pages), len(lasts))
	}
	var buf []byte
	var ends []int // where each page to insert ends in buf
	var keep [][]store.Event
	for i, evs := range pages {
		l := lasts[i]
		switch {
		case l.other.Bool:
			*lost = append(*lost, evs[0].RunID)
			continue
		case l.idx.Valid && int64(evs[0].Index) <= l.idx.Int64:
			// Some may be stored already (a write retried, a run resumed): the
			// one-run path sorts them out.
			if evs, err = notStored(ctx, tx, evs); err != nil {
				return err
			}
			if len(evs) == 0 {
				continue
			}
		}
		buf = encodePage(buf, evs)
		ends = append(ends, len(buf))
		keep = append(keep, evs)
	}
	if len(keep) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO event_pages (run_id, first_idx, last_idx, data) VALUES `)
	args := make([]any, 0, 4*len(keep))
	start := 0
	for i, evs := range keep {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?, ?, ?, ?)")
		args = append(args, evs[0].RunID, evs[0].Index, evs[len(evs)-1].Index, buf[start:ends[i]:ends[i]])
		start = ends[i]
	}
	_, err = tx.ExecContext(ctx, q.String(), args...)
	return err
}

// unstored returns the events of one run that are not stored yet, or reports that
// the run's record names another replica than replica (theirs), when replica is not
// nil. The common case, a run's next events, costs one statement of two
// primary-key lookups.
func (s *Store) unstored(ctx context.Context, tx *sql.Tx, replica any, evs []store.Event) (_ []store.Event, theirs bool, _ error) {
	var other sql.NullBool
	var maxIdx sql.NullInt64
	if err := tx.StmtContext(ctx, s.maxIndex).QueryRowContext(ctx, evs[0].RunID, replica).Scan(&other, &maxIdx); err != nil {
		return nil, false, err
	}
	if other.Bool {
		return evs, true, nil
	}
	if !maxIdx.Valid || int64(evs[0].Index) > maxIdx.Int64 {
		return evs, false, nil
	}
	evs, err := notStored(ctx, tx, evs)
	return evs, false, err
}

// notStored returns the events of one run whose indexes its stored pages do not
// hold: the slow path of an append, for a write retried or a run resumed.
func notStored(ctx context.Context, tx *sql.Tx, evs []store.Event) ([]store.Event, error) {
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
		WHERE run_id = ? AND last_idx >= ? ORDER BY last_idx`, runID, from)
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
