package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// sessionColumns are a session's columns, as scanSession reads them.
const sessionColumns = `session_id, user_id, kind, component_id, name, state, created_at, updated_at`

// scanSession reads one row of sessionColumns, followed by the row's extra
// destinations.
func scanSession(row pgx.Row, extra ...any) (*store.Session, error) {
	var (
		sess  store.Session
		kind  string
		state []byte
	)
	dest := append([]any{&sess.ID, &sess.UserID, &kind, &sess.ComponentID, &sess.Name, &state,
		&sess.CreatedAt, &sess.UpdatedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	sess.Kind = run.Kind(kind)
	sess.CreatedAt, sess.UpdatedAt = sess.CreatedAt.UTC(), sess.UpdatedAt.UTC()
	if len(state) > 0 {
		if err := json.Unmarshal(state, &sess.State); err != nil {
			return nil, fmt.Errorf("session %s: decode state: %w", sess.ID, err)
		}
	}
	return &sess, nil
}

// ListSessions returns a page of the sessions q selects, in q's order, and how
// many it selects in all. The page and the count come from one query, unless the
// page is past the last session.
func (s *Store) ListSessions(ctx context.Context, q store.SessionQuery) ([]*store.Session, int, error) {
	const op = "list sessions"
	if err := s.check(op); err != nil {
		return nil, 0, err
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
	page := append(args[:len(args):len(args)], limit, max(q.Offset, 0))
	query := fmt.Sprintf("%s%s ORDER BY %s %s, session_id %s LIMIT $%d OFFSET $%d",
		s.q.listSessions, where, order, dir, dir, len(page)-1, len(page))
	rows, err := s.pool.Query(ctx, query, page...)
	if err != nil {
		return nil, 0, s.wrap(op, err)
	}
	var total int
	sessions, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Session, error) {
		return scanSession(row, &total)
	})
	if err != nil {
		return nil, 0, s.wrap(op, err)
	}
	if len(sessions) == 0 && q.Offset > 0 {
		if err := s.pool.QueryRow(ctx, s.q.countSessions+where, args...).Scan(&total); err != nil {
			return nil, 0, s.wrap(op, err)
		}
	}
	return sessions, total, nil
}

// sessionFilter returns the WHERE clause (empty or with a leading space) and its
// arguments ($1 on) that select q's sessions.
func sessionFilter(q store.SessionQuery) (string, []any) {
	var (
		conds []string
		args  []any
	)
	for _, f := range []struct{ cond, val string }{
		{"user_id = $%d", q.UserID},
		{"kind = $%d", string(q.Kind)},
		{"component_id = $%d", q.ComponentID},
		{"strpos(lower(name), lower($%d)) > 0", q.Name},
	} {
		if f.val != "" {
			args = append(args, f.val)
			conds = append(conds, fmt.Sprintf(f.cond, len(args)))
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}
