package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kern-dev/kern/store"
)

// Bounds of the cancel intents the store keeps (the same as store/postgres's).
const (
	// MaxCancelReason bounds a cancel's reason: a longer one is cut, at a rune
	// boundary.
	MaxCancelReason = 1024
	// MaxCancelRunID bounds the id of a run cancelled through the store; a longer
	// one is refused with store.ErrTooLarge. The events and end of a run whose id
	// is longer are stored but listeners are not told of them.
	MaxCancelRunID = 1024
	// MaxIntents bounds the cancel intents kept: past it, a cancel deletes the
	// oldest. Intents go once their run ends or after store.IntentTTL, so only
	// cancels of ids that never run pile up to it.
	MaxIntents = 100_000
	// MaxRereadIntents bounds the intents a listener re-reads at once (see
	// Listen): the newest, when more are pending.
	MaxRereadIntents = 10_000
)

// The bounds in use: MaxIntents and MaxRereadIntents, but in tests.
var (
	intentCap = MaxIntents
	rereadCap = MaxRereadIntents
)

var _ store.Canceller = (*Store)(nil)

const (
	// The intents older than the TTL go, this run's included, so that a cancel
	// after them is a new intent.
	sqlPruneIntents = `DELETE FROM cancel_intents WHERE created_at < ?`
	// Past MaxIntents (?), the oldest go: one walk of the index by age, as long
	// as the intents kept.
	sqlCapIntents = `DELETE FROM cancel_intents WHERE run_id IN (SELECT run_id FROM cancel_intents
		ORDER BY created_at DESC, run_id DESC LIMIT -1 OFFSET ?)`
	// No intent for a run that ended: it would never be done with.
	sqlInsertIntent = `INSERT INTO cancel_intents (run_id, reason, created_at)
		SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM runs WHERE run_id = ?1
			AND status IN ('COMPLETED', 'CANCELLED', 'ERROR'))
		ON CONFLICT (run_id) DO NOTHING`
	sqlIntent = `SELECT reason FROM cancel_intents WHERE run_id = ? AND created_at >= ?`
	// The intents a listener may have missed: recent ones, of runs not ended,
	// the newest MaxRereadIntents (?2) of them.
	sqlPendingIntents = `SELECT c.run_id, c.reason FROM cancel_intents c
		WHERE c.created_at >= ?1 AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = c.run_id
			AND r.status IN ('COMPLETED', 'CANCELLED', 'ERROR'))
		ORDER BY c.created_at DESC, c.run_id DESC LIMIT ?2`
)

// cutReason bounds a reason to MaxCancelReason bytes of valid UTF-8.
func cutReason(reason string) string {
	reason = strings.ToValidUTF8(reason, "\uFFFD")
	if len(reason) <= MaxCancelReason {
		return reason
	}
	n := MaxCancelReason
	for n > 0 && !utf8.RuneStart(reason[n]) {
		n--
	}
	return reason[:n]
}

// CancelRun stores a cancel intent for the run, and a notice of it for the
// listeners of every process on the file (see Listen), in one transaction: it
// returns once both are committed. The reason is cut to MaxCancelReason bytes;
// cancelling twice keeps the first reason, and notices it again. A run that has
// ended keeps no intent, and an intent is deleted once its run ends or is older
// than store.IntentTTL; at most MaxIntents are kept (the oldest go). A run id longer than MaxCancelRunID is refused with
// store.ErrTooLarge.
func (s *Store) CancelRun(ctx context.Context, runID, reason string) error {
	op := "cancel run " + runID
	if len(runID) > MaxCancelRunID {
		op = "cancel run"
	}
	if err := s.begin(ctx); err != nil {
		return s.fail(op, err)
	}
	if len(runID) > MaxCancelRunID {
		return s.fail(op, fmt.Errorf("id is %d bytes, more than %d: %w", len(runID), MaxCancelRunID, store.ErrTooLarge))
	}
	reason = cutReason(reason)
	now := time.Now()
	kept := reason
	err := s.writeNoted(ctx, false, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, sqlPruneIntents, now.Add(-store.IntentTTL).UnixMilli()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, sqlCapIntents, intentCap-1); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, sqlInsertIntent, runID, reason, now.UnixMilli()); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, sqlIntent, runID, 0).Scan(&kept)
		if errors.Is(err, sql.ErrNoRows) {
			kept, err = reason, nil // the run ended: no intent, but a notice
		}
		return err
	}, func(b []byte) []byte { return appendNotice(b, noticeCancel, runID, kept) })
	return s.fail(op, err)
}

// PendingCancel returns the cancel intent kept for the run, if there is one.
func (s *Store) PendingCancel(ctx context.Context, runID string) (string, bool, error) {
	op := "pending cancel of run " + runID
	if err := s.begin(ctx); err != nil {
		return "", false, s.fail(op, err)
	}
	var reason string
	err := s.r.QueryRowContext(ctx, sqlIntent, runID, time.Now().Add(-store.IntentTTL).UnixMilli()).Scan(&reason)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, s.fail(op, err)
	}
	return reason, true, nil
}
