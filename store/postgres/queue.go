package postgres

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

var _ store.Queue = (*Store)(nil)

// MaxSchemaLen bounds the name of the store's schema: River names its
// notification channels "<schema>.river_leadership" (the longest), and a
// PostgreSQL name holds at most 63 bytes.
const MaxSchemaLen = 63 - len(".river_leadership")

// Background runs are queued on River (github.com/riverqueue/river), whose
// tables live in the store's schema beside kern's, and whose notifications are
// named after that schema, so that schemas sharing a database never see each
// other's jobs. A job holds only its run's id: everything else is in the run's
// record, inserted in the same transaction.
//
// Each component (agent or workflow) has a River queue of its own (see
// queueOf), and a Work loop works only the queues of the components it serves:
// a process never fetches a run it cannot start, so a run is never kept waiting
// by processes that keep fetching it and putting it back.
const (
	// legacyQueue is the one queue of every run before runs were routed by
	// component. Every Work loop works it, moving each of its jobs to the
	// queue of its run's component, so that runs queued by an older kern (a
	// database upgraded with runs queued, or an older replica during a rolling
	// deploy) still start.
	legacyQueue = "kern_runs"

	// queueNameMax is the longest queue name River accepts.
	queueNameMax = 64
	// queueHashLen is how many hex digits of a component's SHA-256 end its
	// queue's name: 64 bits, so that no two components share a queue.
	queueHashLen = 16

	// queueRescueAfter is how long a job may be running before River's rescuer
	// hands it out again: it bounds how late a run that a process fetched but
	// never started, because the process died, is started elsewhere — within
	// queueRescueAfter + 36 s (the rescuer runs every 30 s on the elected
	// leader, retries after 1 s, and the scheduler makes the job available
	// within 5 s).
	// River rescues only jobs whose timeout is positive and has passed, so it is
	// also River's job timeout; the run's fn never sees that timeout (its context
	// is detached from it). A run that lasts longer is handed to fn once more,
	// which finds its record no longer PENDING and returns at once: one cheap
	// GetRun per long run, the price of never losing a queued run.
	queueRescueAfter = time.Minute
	// queueRequeueAfter is how soon a run that a process cannot start (see
	// store.ErrNotHere), or cannot start now because all its workers are busy,
	// is offered again.
	queueRequeueAfter = time.Second

	// queueMaxAttempts bounds how often a job is handed out: a rescue after a
	// process died, the one rescue of a long run, a failed GetRun or a panic in
	// fn each take an attempt. Retries back off as attempt⁴ seconds (River's
	// default policy), so 25 attempts span about three weeks: a job is
	// discarded, leaving its run PENDING, only after that much trouble.
	queueMaxAttempts = 25

	// queueFetchCooldown is the least time between two fetches of one Work
	// loop, and between two insert notifications of one store. River's 100 ms
	// default adds up to 100 ms to every hand-over, and leaves a run enqueued
	// within 100 ms of another's notification to the next poll, a second later
	// (p99 ≈ 1 s, measured); at River's minimum, 1 ms, only runs enqueued less
	// than 1 ms apart share a notification. The cost is a fetch per
	// notification instead of per 100 ms: cheap at the rate runs are started.
	queueFetchCooldown = time.Millisecond

	// queueStuckThreshold keeps River from logging long runs as stuck jobs:
	// a run may last for hours, and fn detaches from River's job timeout.
	queueStuckThreshold = 100 * 365 * 24 * time.Hour
)

// runArgs are the arguments of a queued run's job.
type runArgs struct {
	RunID string `json:"run_id"`
}

// Kind names the job kind of kern's runs in River's tables.
func (runArgs) Kind() string { return "kern_run" }

// InsertOpts bounds the job's attempts; its queue is its component's, given
// at each insert (see insertJob).
func (runArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: queueMaxAttempts}
}

// queueOf returns the name of the River queue of c's runs: stable, distinct for
// every component, and one that River accepts (at most 64 bytes of lower-case
// letters and digits, groups separated by one '_' or '-'), whatever c's id
// holds. It reads "kern_<kind>-<id>_<hash>": the kind and id lower-cased, every
// run of other characters made one '-', cut to fit (the hash, of the exact kind
// and id, is what keeps names apart; the rest is for people reading River's
// tables).
func queueOf(c store.Component) string {
	sum := sha256.Sum256([]byte(string(c.Kind) + "/" + c.ID))
	hash := hex.EncodeToString(sum[:queueHashLen/2])
	const prefix = "kern_"
	slug := queueSlug(string(c.Kind)+" "+c.ID, queueNameMax-len(prefix)-1-len(hash))
	if slug == "" {
		return prefix + hash
	}
	return prefix + slug + "_" + hash
}

// queueSlug returns s lower-cased, with every run of characters other than
// ASCII letters and digits made one '-' and none at either end, cut to at most
// limit bytes.
func queueSlug(s string, limit int) string {
	b := make([]byte, 0, min(len(s), limit))
	dash := false
	for i := 0; i < len(s) && len(b) < limit; i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		default:
			dash = len(b) > 0
			continue
		}
		if dash {
			if len(b)+2 > limit {
				break // no room for '-' and a character after it
			}
			b = append(b, '-')
			dash = false
		}
		b = append(b, c)
	}
	return string(b)
}

// riverLogger is the logger River is given: the store's, from warnings up, so
// that River's routine messages (client started, migration applied) stay out of
// kern's log.
func riverLogger(l *slog.Logger) *slog.Logger {
	return slog.New(minLevel{Handler: l.Handler(), min: slog.LevelWarn})
}

// minLevel drops records below min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(as), min: h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}

// openQueue migrates River's tables in the store's schema and makes the client
// that Enqueue inserts jobs with (it runs nothing until started, and Enqueue
// never starts it).
func (s *Store) openQueue(ctx context.Context) error {
	if err := s.migrateQueue(ctx); err != nil {
		return err
	}
	c, err := river.NewClient(riverpgxv5.New(s.pool), &river.Config{
		Schema:        s.schema,
		Logger:        riverLogger(s.log),
		FetchCooldown: queueFetchCooldown, // here, the insert notifications' limiter
		MaxAttempts:   queueMaxAttempts,
	})
	if err != nil {
		return fmt.Errorf("store/postgres: job queue: %w", err)
	}
	s.jobs = c
	return nil
}

// migrateQueue brings River's tables in the store's schema up to date. River
// applies each of its migrations in a transaction of its own (one adds an enum
// value a later one uses, which PostgreSQL forbids in one transaction), so the
// schema's migration lock is held meanwhile on a connection of its own; a
// database already up to date needs only the check.
func (s *Store) migrateQueue(ctx context.Context) error {
	fail := func(what string, err error) error {
		return fmt.Errorf("store/postgres: migrate job queue in schema %s: %s: %w", s.schema, what, err)
	}
	m, err := rivermigrate.New(riverpgxv5.New(s.pool), &rivermigrate.Config{Schema: s.schema, Logger: riverLogger(s.log)})
	if err != nil {
		return fail("migrator", err)
	}
	res, err := m.Validate(ctx, nil)
	if err != nil {
		return fail("check", err)
	}
	if res.OK {
		return nil
	}
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return fail("connect", err)
	}
	defer conn.Close(context.Background()) // which releases the lock
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey(s.schema)); err != nil {
		return fail("lock", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fail("migrate", err)
	}
	return nil
}

// Enqueue stores r, PENDING with no replica and no lease, and queues it, in one
// transaction: a run is queued exactly when its record is stored. A taken id
// returns store.ErrExists and queues nothing. It sets r's status, replica,
// lease, CreatedAt (when zero) and UpdatedAt to what was stored.
func (s *Store) Enqueue(ctx context.Context, r *store.Job) error {
	op := "enqueue run " + r.ID
	if err := s.check(op); err != nil {
		return err
	}
	queued := *r
	queued.Status, queued.Replica, queued.LeaseUntil = run.StatusPending, "", time.Time{}
	args, created, now, err := createArgs(&queued)
	if err != nil {
		return fmt.Errorf("store/postgres: %s: %w", op, err)
	}

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.wrap(op, err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit it is a no-op
	_, err = tx.Exec(ctx, s.q.createRun, args...)
	if isUniqueViolation(err) {
		return fmt.Errorf("store/postgres: %s: %w", op, store.ErrExists)
	}
	if err != nil {
		return s.wrap(op, err)
	}
	if err := s.insertJob(ctx, tx, r); err != nil {
		return s.wrap(op, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return s.wrap(op, err)
	}
	r.Status, r.Replica, r.LeaseUntil = run.StatusPending, "", time.Time{}
	r.CreatedAt, r.UpdatedAt = created, now
	return nil
}

// insertJob queues r's job, in tx, on the queue of r's component.
func (s *Store) insertJob(ctx context.Context, tx pgx.Tx, r *store.Run) error {
	queue := queueOf(store.Component{Kind: r.Kind, ID: r.ComponentID})
	_, err := s.jobs.InsertTx(ctx, tx, runArgs{RunID: r.ID}, &river.InsertOpts{Queue: queue})
	return err
}

// Work starts queued runs of the components in serves, at most workers at once
// in this process, until ctx is done; then it fetches no more, waits for the
// runs it started, and returns nil. It returns an error only when it cannot
// start (workers < 1, the store closed, the database unreachable).
//
// It works the queue of each component in serves, and no other: runs of other
// components are left to the processes that serve them. It also moves the jobs
// that an older kern queued on its one queue (see legacyQueue) to their
// components' queues, whichever components they are.
//
// fn is called with the run's stored record and a context that the queue never
// cancels: a run lasts as long as it lasts, and the caller cancels runs itself.
// Whatever fn returns, the run's job is done (an error is logged), but for
// store.ErrNotHere, which puts the run back in its queue; fn may be handed a run
// again, whose record it then finds no longer PENDING, when the process that
// held it died, or when it has lasted longer than a minute (see
// queueRescueAfter). A job whose run was deleted before it started is dropped.
//
// New runs reach a waiting Work loop through PostgreSQL's LISTEN/NOTIFY, within
// milliseconds; a poll of each queue each second is the fallback.
func (s *Store) Work(ctx context.Context, workers int, serves []store.Component, fn func(ctx context.Context, j *store.Job) error) error {
	const op = "work queued runs"
	if err := s.check(op); err != nil {
		return err
	}
	if workers < 1 {
		return fmt.Errorf("store/postgres: %s: workers = %d, want at least 1", op, workers)
	}
	// River bounds the workers of each queue, not of a client: each queue may
	// use them all, and the worker holds the process to workers runs at once.
	queues := map[string]river.QueueConfig{legacyQueue: {MaxWorkers: workers}}
	for _, c := range serves {
		queues[queueOf(c)] = river.QueueConfig{MaxWorkers: workers}
	}
	ws := river.NewWorkers()
	river.AddWorker(ws, &runWorker{s: s, fn: fn, slots: make(chan struct{}, workers)})
	c, err := river.NewClient(riverpgxv5.New(s.pool), &river.Config{
		Schema:               s.schema,
		Logger:               riverLogger(s.log),
		Queues:               queues,
		Workers:              ws,
		FetchCooldown:        queueFetchCooldown,
		JobTimeout:           queueRescueAfter,
		RescueStuckJobsAfter: queueRescueAfter,
		JobStuckThreshold:    queueStuckThreshold,
		MaxAttempts:          queueMaxAttempts,
	})
	if err != nil {
		return fmt.Errorf("store/postgres: %s: %w", op, err)
	}
	// Cancelling Start's context would cancel the running jobs' contexts too
	// (River's hard stop); Stop is the soft one, which waits for them.
	if err := c.Start(context.WithoutCancel(ctx)); err != nil {
		return s.wrap(op, err)
	}
	<-ctx.Done()
	if err := c.Stop(context.WithoutCancel(ctx)); err != nil {
		return s.wrap(op+": stop", err)
	}
	return nil
}

// runWorker is River's worker of kern's runs: it hands a job's run record to fn.
type runWorker struct {
	river.WorkerDefaults[runArgs]
	s  *Store
	fn func(ctx context.Context, j *store.Job) error
	// slots holds a token for each run that fn is running: at most workers.
	slots chan struct{}
}

// Work reads the run's record and calls fn with it. A failed read is retried by
// River; whatever fn returns ends the job. A job of the legacy queue is moved to
// its component's queue instead.
func (w *runWorker) Work(ctx context.Context, job *river.Job[runArgs]) error {
	if job.Queue == legacyQueue {
		return w.route(ctx, job)
	}
	select {
	case w.slots <- struct{}{}:
		defer func() { <-w.slots }()
	default:
		// Every worker is busy with a run of another component: leave this
		// one to a process with a free worker, or to this one later.
		return river.JobSnooze(queueRequeueAfter)
	}
	id := job.Args.RunID
	r, err := w.s.GetRun(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		w.s.log.Warn("store/postgres: queued run is gone (its session was deleted?); dropping its job",
			"run_id", id, "job_id", job.ID)
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	taken, err := w.s.take(ctx, r)
	if err != nil {
		return err
	}
	if !taken {
		return nil // started, or cancelled while queued, already
	}
	err = w.fn(context.WithoutCancel(ctx), r)
	if errors.Is(err, store.ErrNotHere) {
		// No longer served here (its component was removed while it was
		// queued): back in the queue, for a process that still serves it.
		if _, uerr := w.s.pool.Exec(context.WithoutCancel(ctx), w.s.q.untakeQueued, r.ID, r.LeaseUntil); uerr != nil {
			return uerr // retried by River; the run's lease lapses meanwhile
		}
		return river.JobSnooze(queueRequeueAfter)
	}
	if err != nil {
		w.s.log.Error("store/postgres: queued run ended with an error", "run_id", id, "job_id", job.ID,
			"attempt", job.Attempt, "err", err)
	}
	return nil
}

// route moves a job of the legacy queue to the queue of its run's component:
// the new job is inserted and the old one completed in one transaction. A run
// no longer queued needs no job; a run that is gone drops its job.
func (w *runWorker) route(ctx context.Context, job *river.Job[runArgs]) error {
	id := job.Args.RunID
	r, err := w.s.GetRun(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	if r.Status != run.StatusPending || !r.LeaseUntil.IsZero() {
		return nil // started, or cancelled while queued, already
	}
	tx, err := w.s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit it is a no-op
	if err := w.s.insertJob(ctx, tx, r); err != nil {
		return err
	}
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// take marks a queued run as taken by this process, with a lease, and reports
// whether it was still queued.
func (s *Store) take(ctx context.Context, r *store.Run) (bool, error) {
	if r.Status != run.StatusPending || !r.LeaseUntil.IsZero() {
		return false, nil
	}
	until, now := ms(time.Now().Add(store.DefaultLease)), ms(time.Now())
	tag, err := s.pool.Exec(ctx, s.q.takeQueued, r.ID, until, now)
	if err != nil {
		return false, s.wrap("take queued run "+r.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	r.LeaseUntil, r.UpdatedAt = until, now
	return true, nil
}

// CancelQueued ends a run still queued CANCELLED: it takes the run as a worker
// would (so that none starts it), stores its one terminal event, then its end,
// which notifies the listeners. It reports false for a run no longer queued. A
// process that dies in between leaves the run taken; recovery resumes it, and the
// cancel intent stored beforehand ends it at once.
func (s *Store) CancelQueued(ctx context.Context, runID, reason string) (bool, error) {
	op := "cancel queued run " + runID
	r, err := s.GetRun(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	taken, err := s.take(ctx, r)
	if err != nil || !taken {
		return false, err
	}
	out := r.Output
	out.RunID, out.Status, out.Reason = r.ID, run.StatusCancelled, reason
	if r.Kind == run.KindWorkflow {
		out.WorkflowID = cmp.Or(out.WorkflowID, r.ComponentID)
	} else {
		out.AgentID = cmp.Or(out.AgentID, r.ComponentID)
	}
	r.Status, r.Output = run.StatusCancelled, out
	ev, err := store.EndEvent(r, 0, time.Now())
	if err != nil {
		return false, fmt.Errorf("store/postgres: %s: %w", op, err)
	}
	if err := s.AppendEvents(ctx, []store.Event{ev}); err != nil {
		return false, err
	}
	if err := s.UpdateRun(ctx, r); err != nil {
		return false, err
	}
	return true, nil
}

// Queued counts the queued runs (PENDING with no lease), of every component, up
// to limit: it reads at most limit of them.
func (s *Store) Queued(ctx context.Context, limit int) (int, error) {
	const op = "count queued runs"
	if err := s.check(op); err != nil {
		return 0, err
	}
	var n int
	if err := s.pool.QueryRow(ctx, s.q.countQueued, max(limit, 0)).Scan(&n); err != nil {
		return 0, s.wrap(op, err)
	}
	return n, nil
}
