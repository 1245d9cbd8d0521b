package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kern-dev/kern/store"
)

// GetSession returns a session, or store.ErrNotFound. Its state comes back as JSON
// decodes it: numbers as float64.
func (s *Store) GetSession(ctx context.Context, id string) (*store.Session, error) {
	if err := s.begin(ctx); err != nil {
		return nil, s.fail("get session "+id, err)
	}
	var (
		sess             = store.Session{ID: id}
		kind             string
		state            []byte
		created, updated int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT user_id, kind, component_id, state, created_at, updated_at
		FROM sessions WHERE session_id = ?`, id).Scan(&sess.UserID, &kind, &sess.ComponentID, &state, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, s.fail("get session "+id, err)
	}
	if err := json.Unmarshal(state, &sess.State); err != nil {
		return nil, s.fail("get session "+id, fmt.Errorf("decode state: %w", err))
	}
	sess.Kind, sess.CreatedAt, sess.UpdatedAt = store.Kind(kind), fromMillis(created), fromMillis(updated)
	return &sess, nil
}

// SaveSession creates or updates a session. An update keeps the session's first
// CreatedAt; a zero CreatedAt is stored as the current time.
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
		(session_id, user_id, kind, component_id, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (session_id) DO UPDATE SET user_id = excluded.user_id, kind = excluded.kind,
			component_id = excluded.component_id, state = excluded.state, updated_at = excluded.updated_at`,
			sess.ID, sess.UserID, string(sess.Kind), sess.ComponentID, state, created, now)
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
