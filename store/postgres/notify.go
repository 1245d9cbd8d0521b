package postgres

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Notifications are sent outside the transactions whose writes they tell of, once
// those have committed, in transactions of their own that do not wait for their
// commit to be flushed (synchronous_commit off). A transaction that notifies
// holds a lock of the whole cluster from its commit until the commit is on disk
// (PostgreSQL queues notifications in commit order): had the writes notified, the
// bulk writes of events, the ends of runs and the cancel intents of every
// replica would commit one flush at a time, each waiting for the flushes of those
// ahead of it; without, they share flushes, and the notifying transactions hold
// that lock for microseconds. A notification lost (the process dies between a
// commit and its notification, the database fails) loses nothing: listeners
// re-read the intents, and followers read the store now and then (see
// host.notifiedPoll).

// notifyTimeout bounds the notification of writes committed.
const notifyTimeout = 5 * time.Second

// notifyStmt notifies the payloads $2 on channel $1, committing without waiting
// for the flush: it writes nothing else.
const notifyStmt = `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, n) FROM unnest($2::text[]) AS n`

// execer is a connection or the pool.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// notifyCommitted sends payloads, the notifications of writes just committed,
// through q (the connection that wrote them, so that no other is waited for). The
// writes are stored whatever becomes of their notifications: a failure is
// logged, not returned.
func (s *Store) notifyCommitted(ctx context.Context, q execer, payloads ...string) {
	payloads = slices.DeleteFunc(payloads, func(p string) bool { return p == "" })
	if len(payloads) == 0 {
		return
	}
	// Sent even if the writer's ctx ends now: the writes are committed, and
	// other processes' followers wait for their notifications.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
	defer cancel()
	if _, err := q.Exec(ctx, notifyStmt, s.channel, payloads); err != nil {
		s.log.Warn("store/postgres: writes stored but not notified; other processes' followers read them later",
			"schema", s.schema, "notifications", len(payloads), "err", err)
	}
}
