package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"time"
)

// Notices. SQLite has no NOTIFY: what PostgreSQL would notify (a cancel stored,
// events stored, a run ended) is written instead in the table notices, in the
// transaction that stores it, one row per transaction, whatever the number of
// writes it groups; a listener (see Listen) reads the rows after the last one it
// read. The rows are pruned once older than noticeTTL: a listener polls them every
// few milliseconds, and one that fell further behind re-reads the intents and is
// told it missed some (Notifications.Reconnected).

// Kinds of notice, each one byte in a body.
const (
	noticeCancel = 'c' // value: the reason
	noticeEvents = 'e' // value: the last index stored
	noticeEnded  = 'x' // value: the status
)

// noticeTTL is how long a notice is kept for listeners that fell behind.
const noticeTTL = time.Minute

// pruneEvery is how often a writer prunes the notices, at most.
const pruneEvery = time.Second

const (
	sqlInsertNotice = `INSERT INTO notices (body, created_at) VALUES (?, ?)`
	sqlPruneNotices = `DELETE FROM notices WHERE created_at < ?`
)

// errBadNotice reports a notices body that does not decode.
var errBadNotice = errors.New("malformed notice")

// appendNotice appends one notice to a body: its kind, then the run id and the
// value, each as its length in bytes, a colon and its bytes.
func appendNotice(b []byte, kind byte, runID, value string) []byte {
	b = append(b, kind)
	b = appendField(b, runID)
	return appendField(b, value)
}

// appendEventsNotice appends the notice of a run's events stored up to last.
func appendEventsNotice(b []byte, runID string, last int) []byte {
	var num [20]byte
	b = append(b, noticeEvents)
	b = appendField(b, runID)
	v := strconv.AppendInt(num[:0], int64(last), 10)
	b = strconv.AppendInt(b, int64(len(v)), 10)
	b = append(b, ':')
	return append(b, v...)
}

func appendField(b []byte, f string) []byte {
	b = strconv.AppendInt(b, int64(len(f)), 10)
	b = append(b, ':')
	return append(b, f...)
}

// notice is one notice of a body.
type notice struct {
	kind         byte
	runID, value string
}

// decodeNotices calls fn with each notice of a body, or returns errBadNotice,
// having called fn with none of them.
func decodeNotices(body []byte, fn func(notice)) error {
	var out []notice
	for len(body) > 0 {
		kind := body[0]
		if kind != noticeCancel && kind != noticeEvents && kind != noticeEnded {
			return errBadNotice
		}
		id, rest, ok := cutField(body[1:])
		if !ok {
			return errBadNotice
		}
		value, rest, ok := cutField(rest)
		if !ok {
			return errBadNotice
		}
		out = append(out, notice{kind, string(id), string(value)})
		body = rest
	}
	for _, n := range out {
		fn(n)
	}
	return nil
}

// cutField reads a field written by appendField at the start of b.
func cutField(b []byte) (field, rest []byte, ok bool) {
	n := 0
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if n > len(b) { // longer than b can hold: stop before it overflows
			return nil, nil, false
		}
		n = 10*n + int(b[i]-'0')
	}
	if i == 0 || i >= len(b) || b[i] != ':' || n > len(b)-i-1 {
		return nil, nil, false
	}
	b = b[i+1:]
	return b[:n], b[n:], true
}

// writeNotices writes, in the batch's transaction, one row of the notices of the
// ops that succeeded, if they have any, and prunes the old rows when it is due.
// It runs on the writer goroutine.
func (s *Store) writeNotices(ctx context.Context, tx *sql.Tx, batch []*op, errs []error) error {
	body := s.noticeBuf[:0]
	for i, o := range batch {
		if o.notes != nil && errs[i] == nil {
			body = o.notes(body)
		}
	}
	s.noticeBuf = body[:0]
	if len(body) == 0 {
		return nil
	}
	now := time.Now()
	if _, err := s.stmt(ctx, tx, s.insertNotice).ExecContext(ctx, body, now.UnixMilli()); err != nil {
		return err
	}
	if now.Before(s.nextPrune) {
		return nil
	}
	s.nextPrune = now.Add(pruneEvery)
	_, err := tx.ExecContext(ctx, sqlPruneNotices, now.Add(-noticeTTL).UnixMilli())
	return err
}
