package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

const (
	runColumns = `run_id, session_id, user_id, parent_run_id, kind, component_id, status,
		input, output, replica, lease_until, created_at, updated_at`

	sqlCreateRun = `INSERT INTO runs (` + runColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING`

	// An end (?8: ?1 is terminal or PAUSED) written for a replica (?3) is refused
	// while another replica holds the run with a live lease (see
	// store.Store.UpdateRun). ?8 is computed by the caller: SQLite would build a
	// temporary index of a list of four constants at every execution.
	sqlUpdateRun = `UPDATE runs SET status = ?1, output = ?2, replica = ?3, lease_until = ?4, updated_at = ?5,
			pause_expires = ?7
		WHERE run_id = ?6 AND NOT (?8 AND ?3 <> ''
			AND replica <> ?3 AND status IN ('RUNNING', 'PENDING')
			AND COALESCE(lease_until, 0) <> 0 AND lease_until >= ?5)`

	// sqlUpdateSameStatus is sqlUpdateRun for a record that is no end (a
	// checkpoint, a resumed run's record) of a run whose stored status is the
	// record's (?1): it does not set the status, so that the trigger on the status
	// (cancel_intents_ended) is not run, nor the statement journal that a trigger
	// takes. An UPDATE that sets the status ran a trigger program at every
	// checkpoint, though only an end can fire it. It takes sqlUpdateRun's first
	// seven arguments; when it matches no row, sqlUpdateRun says why.
	sqlUpdateSameStatus = `UPDATE runs SET output = ?2, replica = ?3, lease_until = ?4, updated_at = ?5,
			pause_expires = ?7
		WHERE run_id = ?6 AND status = ?1`
)

// encodeOutput returns a run's output as stored, or ErrTooLarge; input is the
// run's input column ("" for an update, which does not write it). It takes the
// output by pointer: a copy of a run.Output in a store.Run escaped to the heap at
// every update.
func encodeOutput(input string, o *run.Output) ([]byte, error) {
	if err := tooLarge("input", len(input)); err != nil {
		return nil, err
	}
	if err := tooLarge("content", len(o.Content)); err != nil {
		return nil, err
	}
	out, err := o.AppendJSON(outputBuf(outputSize(o)))
	if err != nil {
		return nil, fmt.Errorf("encode output: %w", err)
	}
	if err := tooLarge("output", len(out)); err != nil {
		return nil, err
	}
	return out, nil
}

// outputPool holds the buffers of runs' outputs once written: the driver copies
// what it binds, so that a buffer is free again once its op is done (see
// outputs). A run's output is encoded at its creation, at each checkpoint and at
// its end.
var outputPool sync.Pool // of *[]byte

// maxPooledOutput bounds the buffers outputPool keeps: a rare large output does
// not stay pinned.
const maxPooledOutput = 64 << 10

// outputBuf returns an empty buffer for an output of about n bytes.
func outputBuf(n int) []byte {
	if p, ok := outputPool.Get().(*[]byte); ok {
		return slices.Grow((*p)[:0], n)
	}
	return make([]byte, 0, n)
}

// outputs are the buffers of the outputs that ops bind, to be released once the
// ops are done.
type outputs [][]byte

// keep adds b, an output that an op binds, if o is not nil.
func (o *outputs) keep(b []byte) {
	if o != nil {
		*o = append(*o, b)
	}
}

// release puts the buffers back in outputPool: the ops that bound them are done.
func (o *outputs) release() {
	for i, b := range *o {
		if cap(b) <= maxPooledOutput {
			outputPool.Put(&b)
		}
		(*o)[i] = nil
	}
	*o = (*o)[:0]
}

// outputSize returns about the size of o's JSON, so that it is written in one
// buffer.
func outputSize(o *run.Output) int {
	n := 512 + len(o.Input) + len(o.Content)
	for _, r := range o.StepResults {
		n += 192 + len(r.Content)
	}
	return n
}

// CreateRun stores a new run; store.ErrExists if its id is taken. A zero CreatedAt
// is stored as the current time.
func (s *Store) CreateRun(ctx context.Context, r *store.Run) error {
	if err := s.begin(ctx); err != nil {
		return s.fail("create run "+r.ID, err)
	}
	var outs outputs
	o, err := s.createOp(ctx, r, &outs)
	if err == nil {
		err = s.submit(o)
		outs.release()
	}
	return s.fail("create run "+r.ID, err)
}

// createOp returns the write of CreateRun; outs keeps the buffer it binds (see
// outputs), for the caller to release once the op is done.
func (s *Store) createOp(ctx context.Context, r *store.Run, outs *outputs) (*op, error) {
	out, err := encodeOutput(r.Input, &r.Output)
	if err != nil {
		return nil, err
	}
	outs.keep(out)
	now := time.Now().UnixMilli()
	created := millis(r.CreatedAt)
	if created == 0 {
		created = now
	}
	args := []any{r.ID, r.SessionID, r.UserID, r.ParentRunID, string(r.Kind),
		r.ComponentID, string(r.Status), r.Input, out, r.Replica, millis(r.LeaseUntil), created, now}
	return newOp(ctx, true, func(ctx context.Context, tx *sql.Tx) error {
		res, err := s.stmt(ctx, tx, s.createRun).ExecContext(ctx, args...)
		if err != nil {
			return err
		}
		return oneRow(res, store.ErrExists)
	}, nil), nil
}

// UpdateRun saves a run's status, output, replica and lease; store.ErrNotFound if
// it was never created. When the status is terminal, the same transaction stores a
// notice that the run ended, for listeners (see Listen), and deletes the run's
// cancel intent.
func (s *Store) UpdateRun(ctx context.Context, r *store.Run) error {
	if err := s.begin(ctx); err != nil {
		return s.fail("update run "+r.ID, err)
	}
	var outs outputs
	o, err := s.updateOp(ctx, r, &outs)
	if err == nil {
		err = s.submit(o)
		outs.release()
	}
	return s.fail("update run "+r.ID, err)
}

// updateOp returns the write of UpdateRun; outs keeps the buffer it binds (see
// outputs), for the caller to release once the op is done.
func (s *Store) updateOp(ctx context.Context, r *store.Run, outs *outputs) (*op, error) {
	out, err := encodeOutput("", &r.Output)
	if err != nil {
		return nil, err
	}
	outs.keep(out)
	ends := r.Status.Terminal() || r.Status == run.StatusPaused
	args := []any{string(r.Status), out, r.Replica, millis(r.LeaseUntil), time.Now().UnixMilli(), r.ID,
		millis(store.PauseExpiry(r)), ends}
	var notes func([]byte) []byte
	if r.Status.Terminal() && len(r.ID) <= MaxCancelRunID {
		id, st := r.ID, string(r.Status)
		notes = func(b []byte) []byte { return appendNotice(b, noticeEnded, id, st) }
	}
	return newOp(ctx, true, func(ctx context.Context, tx *sql.Tx) error {
		if !ends {
			res, err := s.stmt(ctx, tx, s.updateSame).ExecContext(ctx, args[:7]...)
			if err != nil {
				return err
			}
			if oneRow(res, store.ErrNotFound) == nil {
				return nil
			}
		}
		res, err := s.stmt(ctx, tx, s.updateRun).ExecContext(ctx, args...)
		if err != nil {
			return err
		}
		if oneRow(res, store.ErrNotFound) == nil {
			return nil
		}
		var holder string
		err = tx.QueryRowContext(ctx, `SELECT replica FROM runs WHERE run_id = ?`, r.ID).Scan(&holder)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("replica %q holds it: %w", holder, store.ErrTakenOver)
	}, notes), nil
}

var _ store.RunsWriter = (*Store)(nil)

// WriteRuns creates and updates runs as CreateRun and UpdateRun do, each with its
// own outcome, in one op of the writer: they share a transaction.
func (s *Store) WriteRuns(ctx context.Context, create, update []*store.Run) (createErrs, updateErrs []error) {
	errs := make([]error, len(create)+len(update))
	name := func(i int) string {
		if i < len(create) {
			return "create run " + create[i].ID
		}
		return "update run " + update[i-len(create)].ID
	}
	if err := s.begin(ctx); err != nil {
		for i := range errs {
			errs[i] = s.fail(name(i), err)
		}
		return errs[:len(create)], errs[len(create):]
	}
	ops := make([]*op, 0, len(errs))
	at := make([]int, 0, len(errs)) // the index in errs of each op
	outs := make(outputs, 0, len(errs))
	defer outs.release() // once submitAll returned: every op it sent is done
	for i := range errs {
		var o *op
		var err error
		if i < len(create) {
			o, err = s.createOp(ctx, create[i], &outs)
		} else {
			o, err = s.updateOp(ctx, update[i-len(create)], &outs)
		}
		if err != nil {
			errs[i] = s.fail(name(i), err)
			continue
		}
		ops, at = append(ops, o), append(at, i)
	}
	for k, err := range s.submitAll(ctx, ops) {
		errs[at[k]] = s.fail(name(at[k]), err)
	}
	return errs[:len(create)], errs[len(create):]
}

// oneRow returns none unless res affected a row.
func oneRow(res sql.Result, none error) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return none
	}
	return nil
}

// GetRun returns the run with the given id, or store.ErrNotFound.
func (s *Store) GetRun(ctx context.Context, id string) (*store.Run, error) {
	if err := s.begin(ctx); err != nil {
		return nil, s.fail("get run "+id, err)
	}
	r, err := scanRun(s.r.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE run_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, s.fail("get run "+id, err)
	}
	return r, nil
}

// ListRuns returns the runs q selects, newest first.
func (s *Store) ListRuns(ctx context.Context, q store.RunQuery) ([]*store.Run, error) {
	if err := s.begin(ctx); err != nil {
		return nil, s.fail("list runs", err)
	}
	var where []string
	var args []any
	for _, f := range []struct{ col, val string }{
		{"session_id", q.SessionID},
		{"user_id", q.UserID},
		{"kind", string(q.Kind)},
		{"component_id", q.ComponentID},
		{"status", string(q.Status)},
	} {
		if f.val != "" {
			where = append(where, f.col+" = ?")
			args = append(args, f.val)
		}
	}
	query := `SELECT ` + runColumns + ` FROM runs`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	query += ` ORDER BY created_at DESC, run_id DESC LIMIT ? OFFSET ?`
	args = append(args, limit, max(q.Offset, 0))
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.fail("list runs", err)
	}
	runs, err := scanRuns(rows)
	if err != nil {
		return nil, s.fail("list runs", err)
	}
	return runs, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanRun(sc scanner) (*store.Run, error) {
	var (
		r                       store.Run
		kind, status            string
		out                     []byte
		lease, created, updated int64
	)
	if err := sc.Scan(&r.ID, &r.SessionID, &r.UserID, &r.ParentRunID, &kind, &r.ComponentID, &status,
		&r.Input, &out, &r.Replica, &lease, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(out, &r.Output); err != nil {
		return nil, fmt.Errorf("run %s: decode output: %w", r.ID, err)
	}
	r.Kind, r.Status = run.Kind(kind), run.Status(status)
	r.LeaseUntil, r.CreatedAt, r.UpdatedAt = fromMillis(lease), fromMillis(created), fromMillis(updated)
	return &r, nil
}

func scanRuns(rows *sql.Rows) ([]*store.Run, error) {
	defer rows.Close()
	var runs []*store.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, rows.Err()
}

// RenewLeases extends until the lease of those of runIDs that replica executes.
func (s *Store) RenewLeases(ctx context.Context, replica string, runIDs []string, until time.Time) ([]string, error) {
	if err := s.begin(ctx); err != nil {
		return nil, s.fail("renew leases", err)
	}
	if len(runIDs) == 0 {
		return nil, nil
	}
	ids, err := json.Marshal(runIDs)
	if err != nil {
		return nil, s.fail("renew leases", err)
	}
	var lost []string
	// A renewal, far from lapsing, may wait for the writes queued beside it
	// (see writer).
	err = s.writeLater(ctx, true, func(ctx context.Context, tx *sql.Tx) error {
		lost = nil // the writer may run fn again
		rows, err := tx.QueryContext(ctx, `UPDATE runs SET lease_until = ?
			WHERE replica = ? AND run_id IN (SELECT value FROM json_each(?)) AND status IN ('RUNNING', 'PENDING')
			RETURNING run_id`, millis(until), replica, ids)
		if err != nil {
			return err
		}
		defer rows.Close()
		renewed := make(map[string]bool, len(runIDs))
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			renewed[id] = true
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range runIDs {
			if !renewed[id] {
				lost = append(lost, id)
			}
		}
		return nil
	}, nil)
	if err != nil {
		return nil, s.fail("renew leases", err)
	}
	return lost, nil
}

// sqlLapsed selects the runs left behind: RUNNING with a lease that lapsed before
// the first argument (or none), or PENDING with one that lapsed. A PENDING run with
// no lease is queued, not left behind.
const sqlLapsed = `(status = 'RUNNING' AND lease_until < ?1) OR (status = 'PENDING' AND lease_until <> 0 AND lease_until < ?1)`

// Interrupt ends every run left behind (RUNNING or PENDING with a lease that lapsed
// before now; RUNNING with none): status ERROR, the output's error reason. It
// returns the runs it ended. Runs with a live lease, and queued runs (PENDING with
// no lease), are never touched.
func (s *Store) Interrupt(ctx context.Context, now time.Time, reason string) ([]*store.Run, error) {
	if err := s.begin(ctx); err != nil {
		return nil, s.fail("interrupt", err)
	}
	if found, err := s.anyLeftBehind(ctx, now); err != nil || !found {
		return nil, s.fail("interrupt", err)
	}
	var ended []*store.Run
	err := s.writeNoted(ctx, false, func(ctx context.Context, tx *sql.Tx) error {
		ended = nil
		rows, err := tx.QueryContext(ctx, `SELECT `+runColumns+` FROM runs WHERE `+sqlLapsed, now.UnixMilli())
		if err != nil {
			return err
		}
		if ended, err = scanRuns(rows); err != nil {
			return err
		}
		updated := time.Now()
		for _, r := range ended {
			r.Status, r.Output.Status, r.Output.Error = run.StatusError, run.StatusError, reason
			r.UpdatedAt = updated.Truncate(time.Millisecond)
			out, err := encodeOutput("", &r.Output)
			if err != nil {
				return fmt.Errorf("run %s: %w", r.ID, err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = ?, output = ?, updated_at = ? WHERE run_id = ?`,
				string(r.Status), out, updated.UnixMilli(), r.ID); err != nil {
				return fmt.Errorf("run %s: %w", r.ID, err)
			}
		}
		return nil
	}, func(b []byte) []byte {
		for _, r := range ended {
			if len(r.ID) <= MaxCancelRunID {
				b = appendNotice(b, noticeEnded, r.ID, string(r.Status))
			}
		}
		return b
	})
	if err != nil {
		return nil, s.fail("interrupt", err)
	}
	return ended, nil
}

// Claim takes over at most limit runs left behind, as Interrupt would end them,
// oldest first: they become RUNNING, executed by replica until the given time, their
// output as saved. It returns them as now stored. The store's single writer runs
// the claim in one transaction, which SQLite serialises with every other process's
// writes, so two claims never take the same run.
func (s *Store) Claim(ctx context.Context, replica string, now, until time.Time, limit int) ([]*store.Run, error) {
	if err := s.begin(ctx); err != nil {
		return nil, s.fail("claim runs", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	if found, err := s.anyLeftBehind(ctx, now); err != nil || !found {
		return nil, s.fail("claim runs", err)
	}
	var claimed []*store.Run
	err := s.write(ctx, false, func(ctx context.Context, tx *sql.Tx) error {
		claimed = nil
		// RETURNING sees only new values: the replicas the runs are taken from are
		// read first, in the same transaction.
		from, err := claimedFrom(ctx, tx, now, limit)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `UPDATE runs SET status = ?2, replica = ?3, lease_until = ?4, updated_at = ?5
			WHERE run_id IN (SELECT run_id FROM runs WHERE `+sqlLapsed+` ORDER BY created_at, run_id LIMIT ?6)
			RETURNING `+runColumns,
			now.UnixMilli(), string(run.StatusRunning), replica, millis(until), time.Now().UnixMilli(), limit)
		if err != nil {
			return err
		}
		if claimed, err = scanRuns(rows); err != nil {
			return err
		}
		for _, r := range claimed {
			r.ClaimedFrom = from[r.ID]
		}
		return nil
	})
	if err != nil {
		return nil, s.fail("claim runs", err)
	}
	sortRuns(claimed)
	return claimed, nil
}

// claimedFrom maps the runs Claim is about to take to their replicas.
func claimedFrom(ctx context.Context, tx *sql.Tx, now time.Time, limit int) (map[string]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT run_id, replica FROM runs WHERE `+sqlLapsed+`
		ORDER BY created_at, run_id LIMIT ?2`, now.UnixMilli(), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	from := make(map[string]string)
	for rows.Next() {
		var id, replica string
		if err := rows.Scan(&id, &replica); err != nil {
			return nil, err
		}
		from[id] = replica
	}
	return from, rows.Err()
}

// anyLeftBehind reports whether a run was left behind at now. It only reads, so that
// the periodic recovery of every process sharing the database takes the write lock
// only when there is something to recover.
func (s *Store) anyLeftBehind(ctx context.Context, now time.Time) (bool, error) {
	var one int
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM runs WHERE `+sqlLapsed+` LIMIT 1`, now.UnixMilli()).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
