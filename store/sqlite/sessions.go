package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// sessionColumns are a session's columns, as scanSession reads them.
const sessionColumns = `session_id, user_id, kind, component_id, name, state, created_at, updated_at`

// scanSession reads one row of sessionColumns, followed by the scanner's extra
// destinations.
func scanSession(sc scanner, extra ...any) (*store.Session, error) {
	var (
		sess             store.Session
		kind             string
		state            []byte
		created, updated int64
	)
	dest := append([]any{&sess.ID, &sess.UserID, &kind, &sess.ComponentID, &sess.Name, &state, &created, &updated}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(state, &sess.State); err != nil {
		return nil, fmt.Errorf("session %s: decode state: %w", sess.ID, err)
	}
	sess.Kind, sess.CreatedAt, sess.UpdatedAt = run.Kind(kind), fromMillis(created), fromMillis(updated)
	return &sess, nil
}

// GetSession returns a session, or store.ErrNotFound. Its state comes back as JSON
// decodes it: numbers as float64.
func (s *Store) GetSession(ctx context.Context, id string) (*store.Session, error) {
	if err := s.begin(ctx); err != nil {
		return nil, s.fail("get session "+id, err)
	}
	sess, err := scanSession(s.r.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE session_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, s.fail("get session "+id, err)
	}
	return sess, nil
}

// SaveSession creates or updates a session. An update keeps the session's first
// CreatedAt, and its name when sess has none; a zero CreatedAt is stored as the
// current time.
func (s *Store) SaveSession(ctx context.Context, sess *store.Session) error {
	if err := s.begin(ctx); err != nil {
		return s.fail("save session "+sess.ID, err)
	}
	state, err := json.Marshal(sess.State)
	if err != nil {
		return s.fail("save session "+sess.ID, fmt.Errorf("encode state: %w", err))
	}
	if err := tooLarge("state", len(state)); err != nil {
		return s.fail("save session "+sess.ID, err)
	}
	now := time.Now().UnixMilli()
	created := millis(sess.CreatedAt)
	if created == 0 {
		created = now
	}
	err = s.write(ctx, true, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions
		(session_id, user_id, kind, component_id, name, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (session_id) DO UPDATE SET user_id = excluded.user_id, kind = excluded.kind,
			component_id = excluded.component_id, state = excluded.state, updated_at = excluded.updated_at,
			name = CASE WHEN excluded.name = '' THEN sessions.name ELSE excluded.name END`,
			sess.ID, sess.UserID, string(sess.Kind), sess.ComponentID, sess.Name, state, created, now)
		return err
	})
	return s.fail("save session "+sess.ID, err)
}

// DeleteSession deletes a session with its runs and their events, in one
// transaction; store.ErrNotFound if there is none.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if err := s.begin(ctx); err != nil {
		return s.fail("delete session "+id, err)
	}
	err := s.write(ctx, false, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE session_id = ?`, id)
		if err != nil {
			return err
		}
		if err := oneRow(res, store.ErrNotFound); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM event_pages
			WHERE run_id IN (SELECT run_id FROM runs WHERE session_id = ?)`, id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM runs WHERE session_id = ?`, id)
		return err
	})
	return s.fail("delete session "+id, err)
}

// ListSessions returns a page of the sessions q selects, in q's order, and how
// many it selects in all. The page and the count come from one query, unless the
// page is past the last session.
func (s *Store) ListSessions(ctx context.Context, q store.SessionQuery) ([]*store.Session, int, error) {
	const op = "list sessions"
	if err := s.begin(ctx); err != nil {
		return nil, 0, s.fail(op, err)
	}
	where, args := sessionFilter(q)
	order := "updated_at"
	if q.OrderBy == store.ByCreated {
		order = "created_at"
	}
	dir := "DESC"
	if q.Ascending {
		dir = "ASC"
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+sessionColumns+`, COUNT(*) OVER () FROM sessions`+where+
		` ORDER BY `+order+` `+dir+`, session_id `+dir+` LIMIT ? OFFSET ?`,
		append(args, limit, max(q.Offset, 0))...)
	if err != nil {
		return nil, 0, s.fail(op, err)
	}
	defer rows.Close()
	var (
		page  []*store.Session
		total int
	)
	for rows.Next() {
		sess, err := scanSession(rows, &total)
		if err != nil {
			return nil, 0, s.fail(op, err)
		}
		page = append(page, sess)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, s.fail(op, err)
	}
	if len(page) == 0 && q.Offset > 0 {
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions`+where, args...).Scan(&total); err != nil {
			return nil, 0, s.fail(op, err)
		}
	}
	return page, total, nil
}

// sessionFilter returns the WHERE clause (empty or with a leading space) and its
// arguments that select q's sessions.
func sessionFilter(q store.SessionQuery) (string, []any) {
	var (
		conds []string
		args  []any
	)
	for _, f := range []struct{ cond, val string }{
		{"user_id = ?", q.UserID},
		{"kind = ?", string(q.Kind)},
		{"component_id = ?", q.ComponentID},
		{"instr(lower(name), lower(?)) > 0", q.Name},
	} {
		if f.val != "" {
			conds = append(conds, f.cond)
			args = append(args, f.val)
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}
