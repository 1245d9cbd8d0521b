package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// queries are the store's statements with the schema's tables named in full, so
// that they depend on no connection's search_path.
type queries struct {
	createRun, createRuns, updateRun, updateRuns, getRun, listRuns, takeQueued, untakeQueued, countQueued string
	events, lockRuns, storedPages                                                                         string
	getSession, saveSession, listSessions, countSessions                                                  string
	deleteEvents, deleteRuns, deleteSess                                                                  string
	renewLeases, lapsed, interrupt, claim, owner                                                          string
	takePaused, expiredPauses                                                                             string
}

// takenOver is the condition under which an update of a run to status st,
// written for replica at time now (SQL expressions), is refused: an end, written
// for a replica, of a run that another replica holds with a live lease (see
// store.Store.UpdateRun). The run's columns are those of the table runs.
func takenOver(st, replica, now string) string {
	return st + ` IN ('COMPLETED', 'CANCELLED', 'ERROR', 'PAUSED') AND ` + replica + ` <> ''
		AND runs.replica <> ` + replica + ` AND runs.status IN ('RUNNING', 'PENDING')
		AND runs.lease_until IS NOT NULL AND runs.lease_until >= ` + now
}

const runColumns = `run_id, session_id, user_id, parent_run_id, kind, component_id, status,
	replica, lease_until, created_at, updated_at, input, output`

// leftBehind selects the runs a process that died left: RUNNING with a lease that
// lapsed before $1 (or none), or PENDING with one that lapsed. A PENDING run with no
// lease is queued, not left behind.
const leftBehind = `(status = 'RUNNING' AND (lease_until IS NULL OR lease_until < $1))
	OR (status = 'PENDING' AND lease_until < $1)`

// genericPlans has the statements after it in its transaction planned once
// (their generic plan) rather than on every execution: PostgreSQL keeps planning
// a statement of arrays anew when its custom plans, which know the arrays'
// lengths, look cheaper than the generic one, which cannot, and the planning of
// the statements of events and of many runs cost more server time than their
// execution (bind 0.9-2.2 ms against execute 2-5 ms a batch, measured with
// log_min_duration_statement under BenchmarkPersistedRuns).
const genericPlans = `set_config('plan_cache_mode', 'force_generic_plan', true)`

// newQueries writes the statements for the schema whose quoted name is schema,
// which stands for {s} in the templates.
func newQueries(schema string) queries {
	t := func(s string) string { return strings.ReplaceAll(s, "{s}", schema) }
	return queries{
		createRun: t(`INSERT INTO {s}.runs (` + runColumns + `)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`),
		// As createRun, for runs of the arrays $1..$13, but a run already
		// stored is left as it is (and its id not returned), so that it fails no
		// other write of a batch (WriteRuns).
		createRuns: t(`INSERT INTO {s}.runs (` + runColumns + `)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
				$8::text[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::text[], $13::json[])
			ON CONFLICT (run_id) DO NOTHING
			RETURNING run_id`),
		// A queued run (PENDING, no lease) taken to be started, or cancelled.
		takeQueued: t(`UPDATE {s}.runs SET lease_until = $2, updated_at = $3
			WHERE run_id = $1 AND status = 'PENDING' AND lease_until IS NULL`),
		countQueued: t(`SELECT count(*) FROM (SELECT 1 FROM {s}.runs
			WHERE status = 'PENDING' AND lease_until IS NULL LIMIT $1) AS queued`),
		untakeQueued: t(`UPDATE {s}.runs SET lease_until = NULL
			WHERE run_id = $1 AND status = 'PENDING' AND lease_until = $2`),
		updateRun: t(`UPDATE {s}.runs SET status = $2, replica = $3, lease_until = $4, updated_at = $5, output = $6,
				pause_expires = $7
			WHERE run_id = $1 AND NOT (` + takenOver("$2", "$3", "$5") + `)`),
		// As updateRun, for runs of the arrays $1..$7 (each once), returning the
		// ids of those updated.
		updateRuns: t(`UPDATE {s}.runs SET status = v.status, replica = v.replica, lease_until = v.lease_until,
				updated_at = v.updated_at, output = v.output, pause_expires = v.pause_expires
			FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::json[],
				$7::timestamptz[]) AS v(run_id, status, replica, lease_until, updated_at, output, pause_expires)
			WHERE runs.run_id = v.run_id AND NOT (` + takenOver("v.status", "v.replica", "v.updated_at") + `)
			RETURNING runs.run_id`),
		getRun: t(`SELECT ` + runColumns + ` FROM {s}.runs WHERE run_id = $1`),
		takePaused: t(`UPDATE {s}.runs SET status = 'RUNNING', replica = $2, lease_until = $3, updated_at = $4,
				pause_expires = NULL
			WHERE run_id = $1 AND status = 'PAUSED' RETURNING ` + runColumns),
		listRuns: t(`SELECT ` + runColumns + ` FROM {s}.runs`),
		expiredPauses: t(`SELECT ` + runColumns + ` FROM {s}.runs
			WHERE status = 'PAUSED' AND pause_expires IS NOT NULL AND pause_expires <= $1
				AND (pause_expires, run_id) > ($2, $3)
			ORDER BY pause_expires, run_id LIMIT $4`),
		// A run's pages from index $2 on (LIMIT $3: a page holds one such event at
		// least, its last).
		events: t(`SELECT data FROM {s}.event_pages
			WHERE run_id = $1 AND last_idx >= $2 ORDER BY last_idx LIMIT $3`),
		// The advisory locks ($1, key) of the keys $2, in their order, until the
		// transaction ends (see Store.appendEvents), and generic plans for the
		// statements after it (see genericPlans).
		lockRuns: `SELECT ` + genericPlans + `, count(pg_advisory_xact_lock($1::integer, k)) FROM unnest($2::integer[]) AS k`,
		// The pages holding events of the runs $1 between the indexes $2 and $3.
		storedPages: t(`SELECT r.i, p.data FROM unnest($1::text[], $2::integer[], $3::integer[]) WITH ORDINALITY AS r(run_id, lo, hi, i)
			JOIN {s}.event_pages p ON p.run_id = r.run_id AND p.last_idx >= r.lo AND p.first_idx <= r.hi`),
		getSession: t(`SELECT ` + sessionColumns + ` FROM {s}.sessions WHERE session_id = $1`),
		saveSession: t(`INSERT INTO {s}.sessions (session_id, user_id, kind, component_id, state, created_at, updated_at, name)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (session_id) DO UPDATE SET user_id = excluded.user_id, kind = excluded.kind,
				component_id = excluded.component_id, state = excluded.state, updated_at = excluded.updated_at,
				name = CASE WHEN excluded.name = '' THEN sessions.name ELSE excluded.name END
			RETURNING created_at`),
		listSessions:  t(`SELECT ` + sessionColumns + `, count(*) OVER () FROM {s}.sessions`),
		countSessions: t(`SELECT count(*) FROM {s}.sessions`),
		deleteEvents:  t(`DELETE FROM {s}.event_pages WHERE run_id IN (SELECT run_id FROM {s}.runs WHERE session_id = $1)`),
		deleteRuns:    t(`DELETE FROM {s}.runs WHERE session_id = $1`),
		deleteSess:    t(`DELETE FROM {s}.sessions WHERE session_id = $1`),
		renewLeases: t(`UPDATE {s}.runs SET lease_until = $3
			WHERE replica = $1 AND run_id = ANY($2::text[]) AND status IN ('RUNNING', 'PENDING')
			RETURNING run_id`),
		owner: t(`SELECT replica FROM {s}.runs WHERE run_id = $1`),
		lapsed: t(`SELECT ` + runColumns + ` FROM {s}.runs
			WHERE ` + leftBehind + `
			ORDER BY created_at, run_id
			FOR UPDATE SKIP LOCKED`),
		// One statement: the runs are locked, skipping those another claim (or a
		// renewal) holds, and taken in the same transaction. The output is left as
		// saved.
		claim: t(`UPDATE {s}.runs SET status = 'RUNNING', replica = $2, lease_until = $3, updated_at = $4
			FROM (SELECT run_id AS claimed, replica AS claimed_from FROM {s}.runs
				WHERE ` + leftBehind + `
				ORDER BY created_at, run_id
				LIMIT $5
				FOR UPDATE SKIP LOCKED) c
			WHERE run_id = c.claimed
			RETURNING ` + runColumns + `, c.claimed_from`),
		interrupt: t(`UPDATE {s}.runs SET status = $3, updated_at = $4, output = u.output
			FROM unnest($1::text[], $2::json[]) AS u(id, output)
			WHERE runs.run_id = u.id`),
	}
}

// lenCheck refuses a value larger than store.MaxValueSize.
func lenCheck(what string, n int) error {
	if n > store.MaxValueSize {
		return fmt.Errorf("%s is %d bytes, more than the %d a value may hold: %w", what, n, store.MaxValueSize, store.ErrTooLarge)
	}
	return nil
}

// encodeOutput marshals a run's output, refusing one that is too large.
func encodeOutput(o *run.Output) ([]byte, error) {
	// Its JSON holds at least these strings: refuse without encoding them.
	if err := lenCheck("output", len(o.Content)+len(o.Input)+len(o.Error)+len(o.Reason)); err != nil {
		return nil, err
	}
	b, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("encode output: %w", err)
	}
	return b, lenCheck("output", len(b))
}

// lease is a run's lease as stored: NULL for none.
func lease(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = ms(t)
	return &t
}

// createOutput checks r's input and returns its output encoded, as a create
// stores them.
func createOutput(r *store.Run) ([]byte, error) {
	if err := lenCheck("input", len(r.Input)); err != nil {
		return nil, err
	}
	return encodeOutput(&r.Output)
}

// createArgs returns the arguments of the createRun statement for r, and the
// creation and update times they hold.
func createArgs(r *store.Run) (args []any, created, now time.Time, err error) {
	out, err := createOutput(r)
	if err != nil {
		return nil, created, now, err
	}
	now = ms(time.Now())
	created = now
	if !r.CreatedAt.IsZero() {
		created = ms(r.CreatedAt)
	}
	return []any{r.ID, r.SessionID, r.UserID, r.ParentRunID, string(r.Kind), r.ComponentID, string(r.Status),
		r.Replica, lease(r.LeaseUntil), created, now, r.Input, out}, created, now, nil
}

// CreateRun stores a new run, or returns store.ErrExists. It sets r's CreatedAt
// (when zero) and UpdatedAt to the times stored.
func (s *Store) CreateRun(ctx context.Context, r *store.Run) error {
	op := "create run " + r.ID
	if err := s.check(op); err != nil {
		return err
	}
	args, created, now, err := createArgs(r)
	if err != nil {
		return fmt.Errorf("store/postgres: %s: %w", op, err)
	}
	_, err = s.pool.Exec(ctx, s.q.createRun, args...)
	if isUniqueViolation(err) {
		return fmt.Errorf("store/postgres: %s: %w", op, store.ErrExists)
	}
	if err != nil {
		return s.wrap(op, err)
	}
	r.CreatedAt, r.UpdatedAt = created, now
	return nil
}

// UpdateRun saves a run's status, output, replica and lease, or returns
// store.ErrNotFound. It sets r's UpdatedAt to the time stored. When the status is
// terminal, the same transaction notifies the schema's listeners that the run
// ended (see Listen); the ends of runs saved at the same time share one
// transaction and one notification.
func (s *Store) UpdateRun(ctx context.Context, r *store.Run) error {
	op := "update run " + r.ID
	if err := s.check(op); err != nil {
		return err
	}
	out, err := encodeOutput(&r.Output)
	if err != nil {
		return fmt.Errorf("store/postgres: %s: %w", op, err)
	}
	now := ms(time.Now())
	var found bool
	if r.Status.Terminal() && len(r.ID) <= MaxCancelRunID {
		// The end and its notification in one transaction, which a listener
		// told of it can read, shared with the ends written at the same time.
		found, err = s.writeEnd(ctx, r.ID, r.Status, r.Replica, lease(r.LeaseUntil), now, out)
	} else {
		tag, xerr := s.pool.Exec(ctx, s.q.updateRun, r.ID, string(r.Status), r.Replica, lease(r.LeaseUntil), now, out,
			lease(store.PauseExpiry(r)))
		found, err = tag.RowsAffected() > 0, xerr
	}
	if err != nil {
		return s.wrap(op, err)
	}
	if !found {
		return s.notUpdated(ctx, op, r.ID)
	}
	r.UpdatedAt = now
	return nil
}

// notUpdated returns why UpdateRun updated no run: store.ErrNotFound if there is
// none, else store.ErrTakenOver (the update was refused: see takenOver).
func (s *Store) notUpdated(ctx context.Context, op string, id string) error {
	var holder string
	err := s.pool.QueryRow(ctx, s.q.owner, id).Scan(&holder)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("store/postgres: %s: %w", op, store.ErrNotFound)
	case err != nil:
		return s.wrap(op, err)
	}
	return fmt.Errorf("store/postgres: %s: replica %q holds it: %w", op, holder, store.ErrTakenOver)
}

// scanRun reads one row of runColumns.
func scanRun(row pgx.Row) (*store.Run, error) {
	var (
		r            store.Run
		kind, status string
		leaseUntil   *time.Time
		out          []byte
	)
	err := row.Scan(&r.ID, &r.SessionID, &r.UserID, &r.ParentRunID, &kind, &r.ComponentID, &status,
		&r.Replica, &leaseUntil, &r.CreatedAt, &r.UpdatedAt, &r.Input, &out)
	if err != nil {
		return nil, err
	}
	r.Kind, r.Status = run.Kind(kind), run.Status(status)
	if leaseUntil != nil {
		r.LeaseUntil = leaseUntil.UTC()
	}
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	if len(out) > 0 {
		if err := json.Unmarshal(out, &r.Output); err != nil {
			return nil, fmt.Errorf("decode output: %w", err)
		}
	}
	return &r, nil
}

// rowThen is a row with one more column than a run's, scanned into extra.
type rowThen struct {
	pgx.Row
	extra any
}

func (r rowThen) Scan(dest ...any) error { return r.Row.Scan(append(dest, r.extra)...) }

// GetRun returns the run with the given id, or store.ErrNotFound.
func (s *Store) GetRun(ctx context.Context, id string) (*store.Run, error) {
	op := "get run " + id
	if err := s.check(op); err != nil {
		return nil, err
	}
	r, err := scanRun(s.pool.QueryRow(ctx, s.q.getRun, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("store/postgres: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return r, nil
}

// ListRuns returns the runs q selects, newest first.
func (s *Store) ListRuns(ctx context.Context, q store.RunQuery) ([]*store.Run, error) {
	const op = "list runs"
	if err := s.check(op); err != nil {
		return nil, err
	}
	var (
		sb   strings.Builder
		args []any
	)
	sb.WriteString(s.q.listRuns)
	where := func(col string, v string) {
		if v == "" {
			return
		}
		args = append(args, v)
		if len(args) == 1 {
			sb.WriteString(" WHERE ")
		} else {
			sb.WriteString(" AND ")
		}
		sb.WriteString(col + " = $" + strconv.Itoa(len(args)))
	}
	where("session_id", q.SessionID)
	where("user_id", q.UserID)
	where("kind", string(q.Kind))
	where("component_id", q.ComponentID)
	where("status", string(q.Status))
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	args = append(args, limit, max(q.Offset, 0))
	fmt.Fprintf(&sb, " ORDER BY created_at DESC, run_id DESC LIMIT $%d OFFSET $%d", len(args)-1, len(args))

	rows, err := s.pool.Query(ctx, sb.String(), args...)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Run, error) { return scanRun(row) })
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return runs, nil
}

// RenewLeases extends to until the lease of those of runIDs that replica
// executes, RUNNING or PENDING, and returns the others.
func (s *Store) RenewLeases(ctx context.Context, replica string, runIDs []string, until time.Time) ([]string, error) {
	const op = "renew leases"
	if err := s.check(op); err != nil {
		return nil, err
	}
	if len(runIDs) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, s.q.renewLeases, replica, runIDs, lease(until))
	if err != nil {
		return nil, s.wrap(op+" of replica "+replica, err)
	}
	renewed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.wrap(op+" of replica "+replica, err)
	}
	return notIn(runIDs, renewed), nil
}

// notIn returns the ids of all that are not in some.
func notIn(all, some []string) []string {
	if len(some) == len(all) {
		return nil
	}
	in := make(map[string]bool, len(some))
	for _, id := range some {
		in[id] = true
	}
	var out []string
	for _, id := range all {
		if !in[id] {
			out = append(out, id)
		}
	}
	return out
}

// Interrupt ends every run left behind, RUNNING or PENDING with a lease that lapsed
// before now (RUNNING with none): its status and its output's become ERROR, with
// reason as the output's error. It returns the runs it ended. A queued run (PENDING
// with no lease) is left alone.
//
// The runs are locked with FOR UPDATE SKIP LOCKED, so that replicas recovering at
// once never both end the same run, and a run whose lease is being renewed is
// left to the renewal.
func (s *Store) Interrupt(ctx context.Context, now time.Time, reason string) ([]*store.Run, error) {
	const op = "interrupt runs"
	if err := s.check(op); err != nil {
		return nil, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit it is a no-op
	rows, err := tx.Query(ctx, s.q.lapsed, ms(now))
	if err != nil {
		return nil, s.wrap(op, err)
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Run, error) { return scanRun(row) })
	if err != nil {
		return nil, s.wrap(op, err)
	}
	if len(runs) == 0 {
		return nil, nil
	}
	updated := ms(now)
	ids := make([]string, len(runs))
	outs := make([]string, len(runs))
	for i, r := range runs {
		r.Status, r.Output.Status, r.Output.Error = run.StatusError, run.StatusError, reason
		r.UpdatedAt = updated
		b, err := json.Marshal(&r.Output)
		if err != nil {
			return nil, s.wrap(op, fmt.Errorf("encode output of run %s: %w", r.ID, err))
		}
		ids[i], outs[i] = r.ID, string(b)
	}
	if _, err := tx.Exec(ctx, s.q.interrupt, ids, outs, string(run.StatusError), updated); err != nil {
		return nil, s.wrap(op, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, s.wrap(op, err)
	}
	return runs, nil
}

// Claim takes over at most limit runs left behind, as Interrupt would end them,
// oldest first: they become RUNNING, executed by replica until the given time, their
// output as saved. It returns them as now stored.
//
// The runs are locked with FOR UPDATE SKIP LOCKED in the claiming statement itself,
// so that replicas claiming at once never take the same run.
func (s *Store) Claim(ctx context.Context, replica string, now, until time.Time, limit int) ([]*store.Run, error) {
	const op = "claim runs"
	if err := s.check(op); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, s.q.claim, ms(now), replica, lease(until), ms(time.Now()), limit)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Run, error) {
		var from string
		r, err := scanRun(rowThen{row, &from})
		if r != nil {
			r.ClaimedFrom = from
		}
		return r, err
	})
	if err != nil {
		return nil, s.wrap(op+" for replica "+replica, err)
	}
	slices.SortFunc(runs, func(a, b *store.Run) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return runs, nil
}
