package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"kern/store"
)

// Bounds of the cancel intents the store keeps and notifies.
const (
	// MaxCancelReason bounds a cancel's reason: a longer one is cut (at a rune
	// boundary), so that a notification stays well under PostgreSQL's 8000 bytes.
	MaxCancelReason = 1024
	// MaxCancelRunID bounds the id of a run cancelled through the store; a longer
	// one is refused with store.ErrTooLarge.
	MaxCancelRunID = 1024
	// CancelIntentTTL is how long a cancel intent is kept: older ones are no longer
	// re-read by listeners and are deleted by later cancels.
	CancelIntentTTL = 24 * time.Hour
)

// Backoff of a listener whose connection failed.
const (
	listenMinBackoff = 50 * time.Millisecond
	listenMaxBackoff = 5 * time.Second
)

var _ store.Canceller = (*Store)(nil)

// cancelQueries are the statements of cancel intents, with the schema's tables
// named in full.
type cancelQueries struct {
	cancel, pending, reread string
}

func newCancelQueries(schema string) cancelQueries {
	t := func(s string) string { return strings.ReplaceAll(s, "{s}", schema) }
	return cancelQueries{
		// One statement, so one transaction: the intent is committed with its
		// notification, which PostgreSQL delivers only on commit. An intent older
		// than the TTL is pruned, unless it is this run's (kept, as the first).
		cancel: t(`WITH ins AS (
				INSERT INTO {s}.cancel_intents (run_id, reason) VALUES ($1, $2)
				ON CONFLICT (run_id) DO NOTHING
			), pruned AS (
				DELETE FROM {s}.cancel_intents WHERE created_at < now() - $5::interval AND run_id <> $1
			)
			SELECT pg_notify($3, $4)`),
		pending: t(`SELECT reason FROM {s}.cancel_intents WHERE run_id = $1`),
		// The intents a listener may have missed: recent ones, of runs not ended.
		reread: t(`SELECT c.run_id, c.reason FROM {s}.cancel_intents c
			WHERE c.created_at >= now() - $1::interval
			AND NOT EXISTS (SELECT 1 FROM {s}.runs r WHERE r.run_id = c.run_id
				AND r.status IN ('COMPLETED', 'CANCELLED', 'ERROR'))
			ORDER BY c.created_at, c.run_id`),
	}
}

// cancelChannel is the notification channel of the schema's cancels: channels are
// per database, so the schema is in its name; a name too long for an identifier
// is hashed.
func cancelChannel(schema string) string {
	name := "kern_cancel_" + schema
	if len(name) <= 63 {
		return name
	}
	h := fnv.New64a()
	h.Write([]byte(schema))
	return "kern_cancel_" + hex.EncodeToString(h.Sum(nil))
}

// cutReason bounds a reason to MaxCancelReason bytes of valid UTF-8 without NUL,
// which PostgreSQL's text refuses.
func cutReason(reason string) string {
	reason = strings.ToValidUTF8(strings.ReplaceAll(reason, "\x00", ""), "\uFFFD")
	if len(reason) <= MaxCancelReason {
		return reason
	}
	n := MaxCancelReason
	for n > 0 && !utf8.RuneStart(reason[n]) {
		n--
	}
	return reason[:n]
}

// cancelPayload is a notification's payload: the run id's length, a colon, the
// run id, then the reason. At most about 2 KiB with the bounds above.
func cancelPayload(runID, reason string) string {
	return strconv.Itoa(len(runID)) + ":" + runID + reason
}

// parseCancelPayload reads a payload made by cancelPayload.
func parseCancelPayload(p string) (runID, reason string, ok bool) {
	num, rest, found := strings.Cut(p, ":")
	n, err := strconv.Atoi(num)
	if !found || err != nil || n < 0 || n > len(rest) {
		return "", "", false
	}
	return rest[:n], rest[n:], true
}

// CancelRun stores a cancel intent for the run and notifies the listeners of the
// schema, in one transaction: it returns once both are committed. The reason is
// cut to MaxCancelReason bytes; cancelling twice keeps the first reason but
// notifies again. A run id longer than MaxCancelRunID is refused with
// store.ErrTooLarge.
func (s *Store) CancelRun(ctx context.Context, runID, reason string) error {
	op := "cancel run " + runID
	if err := s.check(op); err != nil {
		return err
	}
	if len(runID) > MaxCancelRunID {
		return fmt.Errorf("store/postgres: cancel run: id is %d bytes, more than %d: %w", len(runID), MaxCancelRunID, store.ErrTooLarge)
	}
	reason = cutReason(reason)
	_, err := s.pool.Exec(ctx, s.cq.cancel, runID, reason, s.channel, cancelPayload(runID, reason), CancelIntentTTL)
	if err != nil {
		return s.wrap(op, err)
	}
	return nil
}

// PendingCancel returns the cancel intent kept for the run, if there is one.
func (s *Store) PendingCancel(ctx context.Context, runID string) (string, bool, error) {
	op := "pending cancel of run " + runID
	if err := s.check(op); err != nil {
		return "", false, err
	}
	var reason string
	err := s.pool.QueryRow(ctx, s.cq.pending, runID).Scan(&reason)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, s.wrap(op, err)
	}
	return reason, true, nil
}

// Listen calls fn for every cancel of the store's schema until ctx is done, then
// returns nil. It listens on a connection of its own, outside the pool; on each
// (re)connection it first calls fn for every intent kept for a run that has not
// ended (younger than CancelIntentTTL), so that a cancel notified while it was
// disconnected is not lost, and fn may see a cancel twice. When its connection
// fails it logs the error and reconnects, backing off up to 5 s. It returns
// store.ErrClosed once the store is closed. fn runs on Listen's goroutine.
func (s *Store) Listen(ctx context.Context, fn func(runID, reason string)) error {
	backoff := listenMinBackoff
	for {
		if err := s.check("listen for cancels"); err != nil {
			return err
		}
		connected, err := s.listenOnce(ctx, fn)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			backoff = listenMinBackoff
		}
		s.log.Warn("store/postgres: cancel listener lost its connection; reconnecting",
			"schema", s.schema, "retry_in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, listenMaxBackoff)
		if s.beforeRelisten != nil {
			s.beforeRelisten()
		}
	}
}

// listenOnce connects, listens, re-reads the pending intents and delivers
// notifications until the connection fails or ctx is done. connected reports
// whether it got as far as listening.
func (s *Store) listenOnce(ctx context.Context, fn func(runID, reason string)) (connected bool, err error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = listenerName(s.schema)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(closeCtx)
		cancel()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	// Listening first, then reading: a cancel committed in between is heard twice
	// rather than not at all.
	if err := s.reread(ctx, conn, fn); err != nil {
		return true, err
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, fmt.Errorf("wait for notification: %w", err)
		}
		if id, reason, ok := parseCancelPayload(n.Payload); ok {
			fn(id, reason)
		}
	}
}

// reread calls fn for every pending intent.
func (s *Store) reread(ctx context.Context, conn *pgx.Conn, fn func(runID, reason string)) error {
	rows, err := conn.Query(ctx, s.cq.reread, CancelIntentTTL)
	if err != nil {
		return fmt.Errorf("re-read cancel intents: %w", err)
	}
	type intent struct{ id, reason string }
	intents, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (intent, error) {
		var i intent
		return i, row.Scan(&i.id, &i.reason)
	})
	if err != nil {
		return fmt.Errorf("re-read cancel intents: %w", err)
	}
	for _, i := range intents {
		fn(i.id, i.reason)
	}
	return nil
}

// listenerName is the application_name of a listener's connection, by which an
// operator (or a test) finds it in pg_stat_activity.
func listenerName(schema string) string {
	name := "kern cancel listener " + schema
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}
