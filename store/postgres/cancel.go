package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// Bounds of the cancel intents the store keeps and notifies.
const (
	// MaxCancelReason bounds a cancel's reason: a longer one is cut (at a rune
	// boundary), so that a notification stays well under PostgreSQL's 8000 bytes.
	MaxCancelReason = 1024
	// MaxCancelRunID bounds the id of a run cancelled through the store; a longer
	// one is refused with store.ErrTooLarge. The events and end of a run whose id
	// is longer are stored but not notified.
	MaxCancelRunID = 1024
	// CancelIntentTTL is how long a cancel intent is kept: older ones are no longer
	// re-read by listeners and are deleted by later cancels.
	CancelIntentTTL = store.IntentTTL
	// MaxIntents bounds the cancel intents kept: past it, a cancel deletes the
	// oldest. Intents go once their run ends or after CancelIntentTTL, so only
	// cancels of ids that never run pile up to it.
	MaxIntents = 100_000
	// MaxRereadIntents bounds the intents a listener re-reads at once (see
	// Listen): the newest, when more are pending.
	MaxRereadIntents = 10_000
)

// Backoff of a listener whose connection failed.
const (
	listenMinBackoff = 50 * time.Millisecond
	listenMaxBackoff = 5 * time.Second
)

// rereadTimeout bounds a listener's periodic re-read of the pending intents.
const rereadTimeout = 10 * time.Second

// maxPayload bounds the payloads the store notifies, under PostgreSQL's 8000
// bytes: an events notification touching more runs is split.
const maxPayload = 7000

var _ store.Canceller = (*Store)(nil)

// cancelQueries are the statements of cancel intents and of the writes that
// notify, with the schema's tables named in full.
type cancelQueries struct {
	cancel, pending, reread                                  string
	appendPages, appendPagesAs, appendPagesAsOrFail, endRuns string
}

// fenced is the query of the runs lost to appendPages fenced for a replica:
// records locked, up to lost's closing parenthesis.
const fenced = `o AS (
		SELECT run_id, replica FROM {s}.runs WHERE run_id = ANY($1::text[]) ORDER BY run_id FOR KEY SHARE
	), lost AS (
		SELECT run_id FROM o WHERE replica <> $9`

// appendPages is the statement that writes pages of events and notifies them,
// fenced by lost, if not empty: the queries, up to its closing parenthesis, that
// define lost, the runs lost. If orFail, it fails where it would write nothing:
// an error (a cast that fails) ends the transaction.
func appendPages(schema, lost string, orFail bool) string {
	fail := ""
	if orFail {
		fail = `
		UNION ALL SELECT 'x', (CASE WHEN ok.ok THEN NULL ELSE 'kern: events not written' END)::integer::text
		FROM ok WHERE NOT ok.ok`
	}
	if lost == "" {
		lost = `lost AS (SELECT $9::text AS run_id WHERE false`
	}
	return strings.ReplaceAll(`WITH p AS (
			SELECT run_id, first_idx, last_idx, substring($4::bytea FROM start + 1 FOR size) AS data
			FROM unnest($1::text[], $2::integer[], $3::integer[], $5::integer[], $6::integer[]) AS p(run_id, first_idx, last_idx, start, size)
		), `+lost+`
		), behind AS (
			SELECT 1 FROM p WHERE $10::boolean AND p.first_idx <= (
				SELECT max(e.last_idx) FROM {s}.event_pages e WHERE e.run_id = p.run_id) LIMIT 1
		), ok AS (
			SELECT NOT EXISTS (SELECT 1 FROM lost) AND NOT EXISTS (SELECT 1 FROM behind) AS ok
		), ins AS (
			INSERT INTO {s}.event_pages (run_id, first_idx, last_idx, data)
			SELECT p.* FROM p, ok WHERE ok.ok
		)
		SELECT 'n', NULL::text FROM (SELECT pg_notify($7, n) FROM unnest($8::text[]) AS n, ok WHERE ok.ok) AS x
		UNION ALL SELECT 'l', run_id FROM lost
		UNION ALL SELECT 'b', NULL FROM behind`+fail, "{s}", schema)
}

func newCancelQueries(schema string) cancelQueries {
	t := func(s string) string { return strings.ReplaceAll(s, "{s}", schema) }
	return cancelQueries{
		// One statement, so one transaction (notified apart: see CancelRun). A
		// run that ended keeps no intent (the trigger runs_ended deletes it at
		// the end). An intent older than the TTL ($3) is pruned, unless it is
		// this run's (kept, as the first), and so are the oldest past MaxIntents
		// ($4).
		cancel: t(`WITH ins AS (
				INSERT INTO {s}.cancel_intents (run_id, reason)
				SELECT $1::text, $2::text WHERE NOT EXISTS (SELECT 1 FROM {s}.runs WHERE run_id = $1
					AND status IN ('COMPLETED', 'CANCELLED', 'ERROR'))
				ON CONFLICT (run_id) DO NOTHING
			), pruned AS (
				DELETE FROM {s}.cancel_intents WHERE run_id <> $1 AND (created_at < now() - $3::interval
					OR run_id IN (SELECT run_id FROM {s}.cancel_intents ORDER BY created_at DESC, run_id DESC OFFSET $4))
			)
			SELECT 1`),
		pending: t(`SELECT reason FROM {s}.cancel_intents WHERE run_id = $1`),
		// The intents a listener may have missed: recent ones, of runs not
		// ended, the newest MaxRereadIntents ($2) of them.
		reread: t(`SELECT c.run_id, c.reason FROM {s}.cancel_intents c
			WHERE c.created_at >= now() - $1::interval
			AND NOT EXISTS (SELECT 1 FROM {s}.runs r WHERE r.run_id = c.run_id
				AND r.status IN ('COMPLETED', 'CANCELLED', 'ERROR'))
			ORDER BY c.created_at DESC, c.run_id DESC LIMIT $2`),
		// The pages of events (of runs $1, indexes $2 to $3, in $4 from the byte
		// $5 on, $6 bytes each: one value, rather than an array of them, which
		// pgx would copy many times as it grew) and the notifications $8, on
		// channel $7 (the store's writes pass none, and notify once committed:
		// see notifyStmt), in one statement and so one transaction and one round
		// trip ($9, the replica of appendPagesAs, is unused). Unless $10 is false, nothing is
		// written nor notified if a page does not begin after the last index
		// stored of its run (behind: some of its events may be stored; see
		// Store.appendEvents), and one row 'b' says so.
		appendPages: appendPages(schema, "", false),
		// appendPages fenced for replica $9 (see AppendEventsAs): the records of
		// the batch's runs are locked FOR KEY SHARE, which a claim's FOR UPDATE
		// waits for or skips (and a renewal's or an end's update does not), and a
		// claim committed first is seen; if any names another replica, nothing
		// is written nor notified, and their ids are returned in rows 'l'.
		// (UNION ALL reads lost to the end: every record is locked.)
		appendPagesAs: appendPages(schema, fenced, false),
		// appendPagesAs, but failing (so that the transaction it is part of
		// writes nothing) where appendPagesAs writes nothing: a run lost, or a
		// page behind (see Store.WriteEnds).
		appendPagesAsOrFail: appendPages(schema, fenced, true),
		// The ends of runs, as updateRun writes them: it returns the ids of the
		// runs updated (found, and not refused: see takenOver), which the
		// caller notifies, once committed, with their entries ($7).
		endRuns: t(`WITH v AS (
				SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
					$6::json[], $7::text[]) AS v(run_id, status, replica, lease_until, updated_at, output, entry)
			), u AS (
				UPDATE {s}.runs SET status = v.status, replica = v.replica, lease_until = v.lease_until,
					updated_at = v.updated_at, output = v.output
				FROM v WHERE runs.run_id = v.run_id AND NOT (` + takenOver("v.status", "v.replica", "v.updated_at") + `)
				RETURNING runs.run_id
			)
			SELECT run_id FROM u`),
	}
}

// notifyChannel is the notification channel of the schema: channels are per
// database, so the schema is in its name; a name too long for an identifier is
// hashed.
func notifyChannel(schema string) string {
	name := "kern_notify_" + schema
	if len(name) <= 63 {
		return name
	}
	h := fnv.New64a()
	h.Write([]byte(schema))
	return "kern_notify_" + hex.EncodeToString(h.Sum(nil))
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

// Payloads of the schema's notifications. Each starts with its kind and a space;
// a run id is written as its length in bytes, a colon and the id, so that it may
// hold any character:
//
//	cancel <len>:<run id><reason>
//	events <len>:<run id> <last index>[,<len>:<run id> <last index>]...
//	ended <len>:<run id> <status>[,<len>:<run id> <status>]...
//
// A listener ignores a payload of another kind, or one it cannot read.
const (
	kindCancel = "cancel"
	kindEvents = "events"
	kindEnded  = "ended"
)

// appendID writes a run id as payloads hold it.
func appendID(b []byte, id string) []byte {
	b = strconv.AppendInt(b, int64(len(id)), 10)
	b = append(b, ':')
	return append(b, id...)
}

// cutID reads a run id written by appendID at the start of p.
func cutID(p string) (id, rest string, ok bool) {
	num, rest, found := strings.Cut(p, ":")
	n, err := strconv.Atoi(num)
	if !found || err != nil || n < 0 || n > len(rest) {
		return "", "", false
	}
	return rest[:n], rest[n:], true
}

// cancelPayload is a cancel's payload: at most about 2 KiB with the bounds above.
func cancelPayload(runID, reason string) string {
	return string(append(appendID([]byte(kindCancel+" "), runID), reason...))
}

// endedEntry is a run's entry in an ended payload.
func endedEntry(runID string, st run.Status) string {
	return string(append(append(appendID(nil, runID), ' '), st...))
}

// endedPayload is the payload of the ended entries of which ok says so, or none
// ("") if none does.
func endedPayload(entries []string, ok func(int) bool) string {
	var b []byte
	for i, e := range entries {
		if !ok(i) {
			continue
		}
		if len(b) == 0 {
			b = append(b, kindEnded+" "...)
		} else {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return string(b)
}

// eventsPayloads are the payloads of a write of events whose run ids and indexes
// are ids and idxs, grouped by run: one entry per run, with its greatest index,
// in payloads of at most maxPayload bytes. Runs whose id is longer than
// MaxCancelRunID are left out.
func eventsPayloads(ids []string, idxs []int32) []string {
	var (
		out []string
		b   []byte
	)
	for i := 0; i < len(ids); i++ {
		last := idxs[i]
		for i+1 < len(ids) && ids[i+1] == ids[i] {
			i++
			last = max(last, idxs[i])
		}
		if len(ids[i]) > MaxCancelRunID {
			continue
		}
		entry := append(appendID(nil, ids[i]), ' ')
		entry = strconv.AppendInt(entry, int64(last), 10)
		switch {
		case len(b) == 0:
			b = append([]byte(kindEvents+" "), entry...)
		case len(b)+1+len(entry) > maxPayload:
			out = append(out, string(b))
			b = append([]byte(kindEvents+" "), entry...)
		default:
			b = append(append(b, ','), entry...)
		}
	}
	if len(b) > 0 {
		out = append(out, string(b))
	}
	return out
}

// entry is an entry of an events or ended payload: a run id and a value, its
// last index or its status.
type entry struct{ id, value string }

// parseEntries reads the entries of an events or ended payload, after its kind.
func parseEntries(p string) ([]entry, bool) {
	var out []entry
	for {
		id, rest, ok := cutID(p)
		if !ok || !strings.HasPrefix(rest, " ") {
			return nil, false
		}
		value, next, more := strings.Cut(rest[1:], ",")
		if value == "" {
			return nil, false
		}
		out = append(out, entry{id, value})
		if !more {
			return out, true
		}
		p = next
	}
}

// deliver passes a notification's payload to the matching function of n, and
// ignores a payload it cannot read.
func deliver(n *store.Notifications, p string) {
	kind, rest, _ := strings.Cut(p, " ")
	switch kind {
	case kindCancel:
		if id, reason, ok := cutID(rest); ok && n.Cancel != nil {
			n.Cancel(id, reason)
		}
	case kindEnded:
		entries, ok := parseEntries(rest)
		if !ok || n.Ended == nil {
			return
		}
		for _, e := range entries {
			n.Ended(e.id, run.Status(e.value))
		}
	case kindEvents:
		entries, ok := parseEntries(rest)
		if !ok || n.Events == nil {
			return
		}
		lasts := make([]int, len(entries))
		for i, e := range entries {
			last, err := strconv.Atoi(e.value)
			if err != nil || last < 0 {
				return
			}
			lasts[i] = last
		}
		for i, e := range entries {
			n.Events(e.id, lasts[i])
		}
	}
}

// CancelRun stores a cancel intent for the run, then notifies the listeners of
// the schema: it returns once the intent is committed. The reason is cut to
// MaxCancelReason bytes; cancelling twice keeps the first reason but notifies
// again. A run that has ended keeps no intent, and an intent is deleted once its
// run ends, or by a later cancel once older than CancelIntentTTL or past the
// newest MaxIntents. A run id longer than MaxCancelRunID is refused with
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
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return s.wrap(op, err)
	}
	defer conn.Release()
	// Notified once committed, in a transaction of its own (see notifyStmt).
	// Notifying first, so that the executing process wrote the run's end while
	// the intent's commit was flushed, measured no faster across replicas (their
	// two commits then wait for the same flushes), and a cancel that failed to be
	// stored could have taken effect.
	payload := cancelPayload(runID, reason)
	if _, err := conn.Exec(ctx, s.cq.cancel, runID, reason, CancelIntentTTL, MaxIntents-1); err != nil {
		return s.wrap(op, err)
	}
	s.notifyCommitted(ctx, conn, payload)
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

// Listen delivers the notifications of the store's schema to n until ctx is done,
// then returns nil: cancels, events stored and runs ended, by any process using
// the schema. It listens on a connection of its own, outside the pool. On each
// (re)connection it first calls n.Cancel for every intent kept for a run that has
// not ended (younger than CancelIntentTTL), then n.Reconnected unless the
// connection was made at the first attempt, so that nothing notified while it was
// disconnected is lost. It re-reads the intents through the pool every
// DefaultRereadInterval too (or as WithRereadInterval says), in case a
// notification was lost: n.Cancel may see a cancel more than once. When its
// connection fails it logs the error and reconnects, backing off up to 5 s. It
// returns an error wrapping store.ErrClosed when it finds the store closed
// (reconnecting or re-reading). n's functions are called one at a time, on
// Listen's goroutine.
func (s *Store) Listen(ctx context.Context, n store.Notifications) error {
	const op = "listen"
	if err := s.check(op); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	in := make(chan heard)
	stopped := make(chan error, 1)
	wg.Go(func() { stopped <- s.receive(ctx, in, n.Cancel != nil) })

	var reread <-chan time.Time
	if s.rereadInterval > 0 && n.Cancel != nil {
		t := time.NewTicker(s.rereadInterval)
		defer t.Stop()
		reread = t.C
	}
	for {
		select {
		case h := <-in:
			h.deliver(&n)
		case <-reread:
			err := s.rereadPool(ctx, n.Cancel)
			switch {
			case err == nil:
			case ctx.Err() != nil:
				return nil
			case s.closed.Load():
				return s.check(op)
			default:
				s.log.Warn("store/postgres: listener could not re-read the pending cancels; retrying later",
					"schema", s.schema, "retry_in", s.rereadInterval, "err", err)
			}
		case err := <-stopped:
			return err
		case <-ctx.Done():
			return nil
		}
	}
}

// heard is what a listener's connection heard: on a (re)connection, the pending
// intents; otherwise a notification's payload.
type heard struct {
	connected   bool
	reconnected bool // connected, but not at the first attempt
	intents     []intent
	payload     string
}

type intent struct{ id, reason string }

// deliver passes what was heard to n.
func (h *heard) deliver(n *store.Notifications) {
	if !h.connected {
		deliver(n, h.payload)
		return
	}
	for _, i := range h.intents {
		n.Cancel(i.id, i.reason)
	}
	if h.reconnected && n.Reconnected != nil {
		n.Reconnected()
	}
}

// receive listens on a connection of its own and sends what it hears to out,
// reconnecting whenever the connection fails, until ctx is done (it returns nil)
// or the store is closed. It reads the pending intents on each connection when
// cancels is set.
func (s *Store) receive(ctx context.Context, out chan<- heard, cancels bool) error {
	backoff := listenMinBackoff
	for attempt := 0; ; attempt++ {
		if err := s.check("listen"); err != nil {
			return err
		}
		connected, err := s.listenOnce(ctx, out, cancels, attempt > 0)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			backoff = listenMinBackoff
		}
		s.log.Warn("store/postgres: listener's connection failed; reconnecting",
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

// listenOnce connects, listens, re-reads the pending intents and sends what it
// hears to out until the connection fails or ctx is done. connected reports
// whether it got as far as listening.
func (s *Store) listenOnce(ctx context.Context, out chan<- heard, cancels, reconnected bool) (connected bool, err error) {
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
	h := heard{connected: true, reconnected: reconnected}
	if cancels {
		// Listening first, then reading: a cancel committed in between is heard
		// twice rather than not at all.
		if h.intents, err = s.pendingIntents(ctx, conn); err != nil {
			return true, err
		}
	}
	send := func(h heard) error {
		select {
		case out <- h:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := send(h); err != nil {
		return true, err
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, fmt.Errorf("wait for notification: %w", err)
		}
		if err := send(heard{payload: n.Payload}); err != nil {
			return true, err
		}
	}
}

// rereadPool calls fn for every pending intent, read through the pool: not on the
// listening connection, which pgx would close when a wait for a notification is
// interrupted to read.
func (s *Store) rereadPool(ctx context.Context, fn func(runID, reason string)) error {
	ctx, cancel := context.WithTimeout(ctx, rereadTimeout)
	defer cancel()
	intents, err := s.pendingIntents(ctx, s.pool)
	if err != nil {
		return err
	}
	for _, i := range intents {
		fn(i.id, i.reason)
	}
	return nil
}

// querier is a connection or the pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// pendingIntents reads the intents kept for runs that have not ended.
func (s *Store) pendingIntents(ctx context.Context, q querier) ([]intent, error) {
	rows, err := q.Query(ctx, s.cq.reread, CancelIntentTTL, MaxRereadIntents)
	if err != nil {
		return nil, fmt.Errorf("re-read cancel intents: %w", err)
	}
	intents, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (intent, error) {
		var i intent
		return i, row.Scan(&i.id, &i.reason)
	})
	if err != nil {
		return nil, fmt.Errorf("re-read cancel intents: %w", err)
	}
	if len(intents) == MaxRereadIntents {
		s.log.Warn("store/postgres: more cancel intents pending than a listener re-reads; the oldest are not re-read",
			"schema", s.schema, "reread", MaxRereadIntents)
	}
	slices.Reverse(intents) // read newest first, delivered oldest first
	return intents, nil
}

// listenerName is the application_name of a listener's connection, by which an
// operator (or a test) finds it in pg_stat_activity.
func listenerName(schema string) string {
	name := "kern listener " + schema
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

// maxEndBatchOutput bounds the outputs written in one batch of ends, unless the
// batch holds one run.
const maxEndBatchOutput = 4 << 20

// endWriter groups the ends of runs that are written at the same time (see
// UpdateRun) into one transaction, notified then in one notification.
//
// One transaction (and notification) per run would cost a commit, and a
// notifying transaction (see notifyStmt), per run. Instead, the caller whose end is
// first in the queue writes a batch from the head of the queue, its own end
// first, then hands its turn over to the caller whose end is first in the queue
// then. It starts no goroutine.
type endWriter struct {
	mu      sync.Mutex
	queue   []*end // to be written, in the order of the calls
	writing bool   // some caller has the turn
}

// end is the end of a run to be written.
type end struct {
	id, status, replica string
	lease               *time.Time
	updated             time.Time
	output              string
	entry               string // in the ended notification

	turn    chan struct{} // closed when the caller is to write a batch
	hasTurn bool          // turn is closed; guarded by endWriter.mu
	gone    bool          // the caller returned; guarded by endWriter.mu

	done    chan struct{} // closed once written is set
	written bool          // found and err are the result
	found   bool          // the run was found and updated
	err     error
}

// writeEnd writes the end of a run, in status st, and notifies it, in a
// transaction shared with the ends written at the same time. It reports whether
// the run was found. When ctx ends first, it returns ctx's error, and the end may
// or may not be written.
func (s *Store) writeEnd(ctx context.Context, id string, st run.Status, replica string, lease *time.Time,
	updated time.Time, output []byte) (bool, error) {
	e := &end{id: id, status: string(st), replica: replica, lease: lease, updated: updated, output: string(output),
		entry: endedEntry(id, st), turn: make(chan struct{}), done: make(chan struct{})}
	w := &s.ends
	w.mu.Lock()
	w.queue = append(w.queue, e)
	if !w.writing {
		w.writing = true
		w.giveTurn(e)
	}
	w.mu.Unlock()

	select {
	case <-e.done:
	case <-e.turn:
		s.writeTurn(ctx)
	case <-ctx.Done():
	}
	select {
	case <-e.done:
		return e.found, e.err
	default:
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	e.gone = true
	if i := slices.Index(w.queue, e); i >= 0 {
		w.queue = slices.Delete(w.queue, i, i+1)
		if e.hasTurn {
			w.handOver()
		}
	}
	return false, ctx.Err()
}

// giveTurn lets the caller of e write the next batch.
func (w *endWriter) giveTurn(e *end) {
	e.hasTurn = true
	close(e.turn)
}

// handOver gives the turn to the caller of the first end queued, if any. The
// caller holds w.mu.
func (w *endWriter) handOver() {
	if len(w.queue) == 0 {
		w.writing = false
		return
	}
	w.giveTurn(w.queue[0])
}

// take removes a batch from the head of the queue: its first end, and the next
// ones as long as their entries fit in one notification and their outputs in
// maxEndBatchOutput, leaving a second end of a run in the batch for the next. The
// caller holds w.mu.
func (w *endWriter) take() []*end {
	var (
		batch      []*end
		ids        = make(map[string]bool)
		size, outs = len(kindEnded), 0
		rest       = w.queue[:0]
		full       bool
	)
	for _, e := range w.queue {
		full = full || len(batch) > 0 &&
			(size+1+len(e.entry) > maxPayload || outs+len(e.output) > maxEndBatchOutput)
		if full || ids[e.id] {
			rest = append(rest, e)
			continue
		}
		batch = append(batch, e)
		ids[e.id] = true
		size, outs = size+1+len(e.entry), outs+len(e.output)
	}
	clear(w.queue[len(rest):])
	w.queue = rest
	return batch
}

// writeTurn writes a batch from the head of the queue, whose first end is the
// caller's, and hands the turn over. When ctx ends first, the ends of the batch
// not written yet are queued again, but the caller's.
func (s *Store) writeTurn(ctx context.Context) {
	w := &s.ends
	w.mu.Lock()
	batch := w.take()
	w.mu.Unlock()

	s.writeBatch(ctx, batch)

	w.mu.Lock()
	defer w.mu.Unlock()
	var again []*end
	for i, e := range batch {
		switch {
		case e.written:
			close(e.done)
		case i > 0 && !e.gone:
			again = append(again, e)
		}
	}
	w.queue = append(again, w.queue...)
	w.handOver()
}

// writeBatch writes a batch of ends, and gives each its result, unless ctx ends
// first.
func (s *Store) writeBatch(ctx context.Context, batch []*end) {
	found, err := s.writeEnds(ctx, batch)
	switch {
	case err == nil:
		for _, e := range batch {
			e.found, e.written = found[e.id], true
		}
	case ctx.Err() != nil:
	case len(batch) == 1:
		batch[0].err, batch[0].written = err, true
	default:
		// One end may have failed the batch (a replica name that PostgreSQL's
		// text refuses): write each alone, so that it fails only its caller.
		for _, e := range batch {
			s.writeBatch(ctx, []*end{e})
		}
	}
}

// writeEnds writes a batch of ends, in one statement, then notifies them, and
// returns the ids of the runs found.
func (s *Store) writeEnds(ctx context.Context, batch []*end) (map[string]bool, error) {
	n := len(batch)
	var (
		ids, sts, replicas = make([]string, n), make([]string, n), make([]string, n)
		leases             = make([]*time.Time, n)
		times              = make([]time.Time, n)
		outs, entries      = make([]string, n), make([]string, n)
	)
	for i, e := range batch {
		ids[i], sts[i], replicas[i], leases[i], times[i], outs[i], entries[i] =
			e.id, e.status, e.replica, e.lease, e.updated, e.output, e.entry
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	rows, err := conn.Query(ctx, s.cq.endRuns, ids, sts, replicas, leases, times, outs, entries)
	if err != nil {
		return nil, err
	}
	updated, err := pgx.CollectRows(rows, pgx.RowTo[*string])
	if err != nil {
		return nil, err
	}
	found := make(map[string]bool, len(updated))
	for _, id := range updated {
		if id != nil {
			found[*id] = true
		}
	}
	s.notifyCommitted(ctx, conn, endedPayload(entries, func(i int) bool { return found[ids[i]] }))
	return found, nil
}
