package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// pollLimit bounds the notice rows a listener reads in one query; it reads again
// at once when it read that many.
const pollLimit = 256

const (
	// The last seq ever given, even when its row was pruned: a listener starts
	// after it.
	sqlLastNotice = `SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'notices'), 0)`
	// One seek on the table's rowid, and nothing more when nothing was stored.
	sqlNextNotices = `SELECT seq, body FROM notices WHERE seq > ? ORDER BY seq LIMIT ?`
)

// Listen delivers to n what the processes using the file (this one included)
// store: cancels, events stored and runs ended, until ctx is done, then returns
// nil. SQLite has no notifications: every poll interval (DefaultPollInterval, or
// WithPollInterval) Listen reads, on a read-only connection of its own, the
// notices that writes stored with them since it last read — one indexed query,
// which finds nothing when nothing was stored, and never holds up a writer (the
// file is in WAL mode). The events of a run stored by several writes since the
// last poll are delivered once, with the last index. On starting, Listen calls
// n.Cancel for every intent kept for a run that has not ended (younger than
// store.IntentTTL; the newest MaxRereadIntents when more are kept), and again
// every DefaultRereadInterval (or as WithRereadInterval says), so that n.Cancel
// may see a cancel more than once. A
// listener that fell so far behind that notices it had not read were pruned
// (older than a minute) re-reads the intents, then calls n.Reconnected. A read
// that fails is logged and tried again, backing off up to 5 s; nothing is lost,
// since the notices are kept. Listen
// returns an error wrapping store.ErrClosed when the store is closed. n's
// functions are called one at a time, on Listen's goroutine.
func (s *Store) Listen(ctx context.Context, n store.Notifications) error {
	const op = "listen"
	if err := s.begin(context.Background()); err != nil {
		return s.fail(op, err)
	}
	if ctx.Err() != nil {
		return nil
	}
	l, err := s.newListener(&n)
	if err != nil {
		return s.fail(op, err)
	}
	defer l.close()

	poll := time.NewTicker(s.pollInterval)
	defer poll.Stop()
	var reread <-chan time.Time
	if s.rereadInterval > 0 && n.Cancel != nil {
		t := time.NewTicker(s.rereadInterval)
		defer t.Stop()
		reread = t.C
	}
	var (
		started bool
		retry   backoff
	)
	// try starts the listener, or polls once it started, unless it is backing
	// off after a failure.
	try := func(now time.Time) {
		if now.Before(retry.next) {
			return
		}
		what, err := "read the notices", error(nil)
		if started {
			err = l.poll()
		} else {
			what, err = "start", l.startOnce()
			started = err == nil
		}
		if err == nil {
			retry = backoff{}
			return
		}
		if s.closed.Load() {
			return
		}
		wait := retry.fail(now, s.pollInterval)
		s.log.Warn("store/sqlite: listener could not "+what+"; retrying", "path", s.path, "retry_in", wait, "err", err)
	}
	try(time.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.quit:
			return s.fail(op, store.ErrClosed)
		case now := <-poll.C:
			try(now)
		case <-reread:
			if !started {
				continue
			}
			if err := l.reread(); err != nil && !s.closed.Load() {
				s.log.Warn("store/sqlite: listener could not re-read the pending cancels; retrying later",
					"path", s.path, "retry_in", s.rereadInterval, "err", err)
			}
		}
	}
}

// maxBackoff bounds how long a listener waits before it tries again to read.
const maxBackoff = 5 * time.Second

// backoff spaces a listener's attempts out after failures: from the poll
// interval, doubling up to maxBackoff.
type backoff struct {
	next time.Time     // no attempt before
	wait time.Duration // after the last failure
}

// fail records a failure at now and returns how long to wait.
func (b *backoff) fail(now time.Time, first time.Duration) time.Duration {
	b.wait = min(max(2*b.wait, first), maxBackoff)
	b.next = now.Add(b.wait)
	return b.wait
}

// listener reads the notices for one Listen call and delivers them.
type listener struct {
	s      *Store
	n      *store.Notifications
	db     *sql.DB // one read-only connection
	next   *sql.Stmt
	cursor int64 // the seq of the last notice read

	// What the rows read in one poll hold, delivered once they are read.
	cancels, ended []notice
	events         []notice       // one per run; value unused
	lasts          []int          // events[i]'s last index
	eventRun       map[string]int // index of a run in events
	missed         bool           // notices after cursor were pruned unread
}

// newListener opens a listener's connection.
func (s *Store) newListener(n *store.Notifications) (*listener, error) {
	db, err := sql.Open("sqlite", driverDSN(s.path, s.query, true))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return &listener{s: s, n: n, db: db, eventRun: make(map[string]int)}, nil
}

func (l *listener) close() {
	if l.next != nil {
		l.next.Close()
	}
	l.db.Close()
}

// startOnce finds where the notices end and delivers the pending intents, in
// that order, so that a cancel stored in between is delivered twice rather than
// not at all.
func (l *listener) startOnce() error {
	bg := context.Background()
	if l.next == nil {
		next, err := l.db.PrepareContext(bg, sqlNextNotices)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		l.next = next
	}
	if err := l.db.QueryRowContext(bg, sqlLastNotice).Scan(&l.cursor); err != nil {
		return fmt.Errorf("read the last notice: %w", err)
	}
	return l.reread()
}

// reread calls n.Cancel for every intent kept for a run that has not ended.
func (l *listener) reread() error {
	if l.n.Cancel == nil {
		return nil
	}
	// Statements run without a context that can end: modernc.org/sqlite starts a
	// goroutine per statement to watch one. They are short, and bounded by the
	// busy timeout.
	rows, err := l.db.QueryContext(context.Background(), sqlPendingIntents,
		time.Now().Add(-store.IntentTTL).UnixMilli(), rereadCap)
	if err != nil {
		return fmt.Errorf("re-read cancel intents: %w", err)
	}
	var intents []notice
	for rows.Next() {
		var i notice
		if err := rows.Scan(&i.runID, &i.value); err != nil {
			rows.Close()
			return fmt.Errorf("re-read cancel intents: %w", err)
		}
		intents = append(intents, i)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return fmt.Errorf("re-read cancel intents: %w", err)
	}
	if len(intents) == rereadCap {
		l.s.log.Warn("store/sqlite: more cancel intents pending than a listener re-reads; the oldest are not re-read",
			"path", l.s.path, "reread", rereadCap)
	}
	slices.Reverse(intents) // read newest first, delivered oldest first
	for _, i := range intents {
		l.n.Cancel(i.runID, i.value)
	}
	return nil
}

// poll reads the notices stored since the last it read, and delivers them.
func (l *listener) poll() error {
	for {
		read, err := l.read()
		if l.missed {
			// Re-read what the pruned notices may have held, before the rest.
			l.missed = false
			if rerr := l.reread(); rerr != nil {
				l.missed = true
				return rerr
			}
			if l.n.Reconnected != nil {
				l.n.Reconnected()
			}
		}
		l.deliver()
		if err != nil || read < pollLimit {
			return err
		}
	}
}

// read reads the next notice rows, at most pollLimit of them, and keeps what they
// hold for deliver. It returns how many it read.
func (l *listener) read() (int, error) {
	rows, err := l.next.QueryContext(context.Background(), l.cursor, pollLimit)
	if err != nil {
		return 0, fmt.Errorf("read notices: %w", err)
	}
	defer rows.Close()
	read := 0
	for rows.Next() {
		var (
			seq  int64
			body sql.RawBytes
		)
		if err := rows.Scan(&seq, &body); err != nil {
			return read, fmt.Errorf("read notices: %w", err)
		}
		if seq != l.cursor+1 {
			l.missed = true
		}
		// A body that does not decode (written by hand, or damaged) is skipped.
		_ = decodeNotices(body, l.add)
		l.cursor = seq
		read++
	}
	if err := rows.Err(); err != nil {
		return read, fmt.Errorf("read notices: %w", err)
	}
	return read, nil
}

// add keeps a notice for deliver: a run's events once, with the greatest index.
func (l *listener) add(n notice) {
	switch n.kind {
	case noticeCancel:
		if l.n.Cancel != nil {
			l.cancels = append(l.cancels, n)
		}
	case noticeEnded:
		if l.n.Ended != nil {
			l.ended = append(l.ended, n)
		}
	case noticeEvents:
		last, ok := parseIndex(n.value)
		if !ok || l.n.Events == nil {
			return
		}
		if i, seen := l.eventRun[n.runID]; seen {
			l.lasts[i] = max(l.lasts[i], last)
			return
		}
		l.eventRun[n.runID] = len(l.events)
		l.events, l.lasts = append(l.events, n), append(l.lasts, last)
	}
}

// parseIndex reads a last index, a decimal number.
func parseIndex(v string) (int, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
		n = 10*n + int(v[i]-'0')
	}
	return n, true
}

// deliver calls n's functions with what add kept: cancels first, then each run's
// events, then the ends (after the events of the same run), and forgets it.
func (l *listener) deliver() {
	for _, c := range l.cancels {
		l.n.Cancel(c.runID, c.value)
	}
	for i, e := range l.events {
		l.n.Events(e.runID, l.lasts[i])
	}
	for _, e := range l.ended {
		l.n.Ended(e.runID, run.Status(e.value))
	}
	clear(l.cancels)
	clear(l.events)
	clear(l.ended)
	clear(l.eventRun)
	l.cancels, l.events, l.ended, l.lasts = l.cancels[:0], l.events[:0], l.ended[:0], l.lasts[:0]
}
