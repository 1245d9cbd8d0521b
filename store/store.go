// Package store is what kern's runtime asks of a database: sessions, runs and the
// events each run streamed, kept so that a run can be looked back at, its stream
// resumed, and its session continued.
//
// Store is the interface the runtime and the server call; store/sqlite (the embedded
// default) and store/postgres implement it. A Recorder on top of any Store batches the
// events of many runs into few transactions, so that persisting a run does not slow
// its stream down.
package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kern-dev/kern/run"
)

// Errors callers tell apart with errors.Is.
var (
	// ErrNotFound: no run or session with that id.
	ErrNotFound = errors.New("store: not found")
	// ErrExists: a run with that id is already stored.
	ErrExists = errors.New("store: already exists")
	// ErrTooLarge: a value is larger than the store keeps (MaxValueSize); nothing
	// was written. Values are never truncated.
	ErrTooLarge = errors.New("store: value too large")
	// ErrSchemaTooNew: the database's schema was written by a newer kern.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this binary")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrNotHere: a queued run cannot start in this process, or not now (it
	// serves no such agent or workflow, it is shutting down, the run's cancel
	// intent cannot be read); returned by a Queue's Work fn, it puts the run back
	// in the queue, for another process or this one later. Work hands fn only
	// runs of the components it serves, so for a component no longer served this
	// is the fallback.
	ErrNotHere = errors.New("store: run cannot start in this process")
	// ErrNotResumable: a run left behind cannot be resumed (see
	// Recovery.Takeover); it ends ERROR "interrupted".
	ErrNotResumable = errors.New("store: run cannot be resumed")
	// ErrTakenOver: the run is no longer this replica's: another replica claimed
	// it (see Store.Claim) after this one's lease lapsed, and executes it now.
	ErrTakenOver = errors.New("store: run taken over by another replica")
	// ErrUnavailable: the store cannot take writes now: its disk is full, its
	// file cannot be written or opened, it fails to read or write (an I/O
	// error), its server refuses connections or is out of resources. The error
	// is an *UnavailableError, whose driver error says which; writing again may
	// succeed once the cause is gone.
	ErrUnavailable = errors.New("store unavailable")
)

// UnavailableError is why a store cannot take writes now; it matches
// ErrUnavailable. Its message is the driver's own words.
type UnavailableError struct {
	// Err is the driver's error.
	Err error
	// Lasting: the cause is the storage itself (a full disk, an I/O error, a
	// read-only file or server), which does not clear in the moments a retry
	// waits, rather than the way to it (a refused or dropped connection, too
	// many connections, a server out of memory), which a retry may find again.
	Lasting bool
}

func (e *UnavailableError) Error() string { return e.Err.Error() }

// Unwrap returns the driver's error.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Is reports whether target is ErrUnavailable.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// MaxValueSize bounds one stored value: a run's input, content or output, an
// event, a session's state. Larger values are refused with ErrTooLarge.
const MaxValueSize = 64 << 20

// Run is a stored run: where it belongs, how it stands, who executes it, and its
// output so far (content, step results, metrics, error, reason).
type Run struct {
	ID          string
	SessionID   string
	UserID      string
	ParentRunID string
	Kind        run.Kind
	ComponentID string // the agent's or workflow's id
	Status      run.Status
	Input       string
	// Output is the run's output as the runtime last saved it; its Content is the
	// partial content of a run that was cancelled or interrupted.
	Output run.Output
	// Replica names the process that executes the run, and LeaseUntil is when its
	// claim lapses unless renewed; recovery takes over only runs whose lease lapsed.
	// A PENDING run with a zero LeaseUntil is queued (see Queue): no process holds
	// it, so recovery leaves it alone.
	Replica    string
	LeaseUntil time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time

	// ClaimedFrom is set only on the runs Claim returns: the replica whose lapsed
	// lease the run was taken from (Replica names the claimer by then).
	ClaimedFrom string
}

// Event is one stored event of a run. Events are stored under the top-level run's
// id, nested runs' included, in the order of their index.
type Event struct {
	RunID     string
	Index     int
	Type      run.EventType
	Data      json.RawMessage // the event as sent to clients
	CreatedAt time.Time
}

// Ends reports whether e is the terminal event of the run with the given id, not
// of a run nested in it (an agent called as a tool stores its own RunCompleted in
// the stream of the run that called it).
func (e *Event) Ends(runID string) bool {
	if !e.Type.Terminal() {
		return false
	}
	var id struct {
		RunID string `json:"run_id"`
	}
	return json.Unmarshal(e.Data, &id) == nil && id.RunID == runID
}

// Session groups the runs of one conversation or job, and carries the state its runs
// share. A session exists from its first run: CreateRun of a run with a session id
// creates the session (with the run's user, kind and component, its input as the
// session's name, and no state) unless it exists, and moves its UpdatedAt (see
// SessionUpdatePrecision).
type Session struct {
	ID          string
	UserID      string
	Kind        run.Kind
	ComponentID string
	// Name is the input of the session's first run, at most MaxSessionName
	// characters, as Agno names a session.
	Name      string
	State     map[string]any
	CreatedAt time.Time
	UpdatedAt time.Time
}

// MaxSessionName bounds a session's name, in characters: the input of its first
// run, truncated.
const MaxSessionName = 256

// SessionUpdatePrecision is how far a session's UpdatedAt may lag behind the
// CreatedAt of its latest run: the runs of a busy session do not each rewrite the
// session (Agno keeps seconds).
const SessionUpdatePrecision = time.Second

// SessionOrder is the time ListSessions sorts sessions by.
type SessionOrder int

// Orders of sessions.
const (
	ByUpdated SessionOrder = iota // when the session last had a new run or state
	ByCreated                     // when the session began
)

// SessionQuery selects sessions. Zero fields select everything; sessions come most
// recently updated first.
type SessionQuery struct {
	UserID      string
	Kind        run.Kind
	ComponentID string
	// Name selects the sessions whose name contains it, ignoring the case of
	// ASCII letters.
	Name      string
	OrderBy   SessionOrder
	Ascending bool // oldest first
	Limit     int  // 0 means 100
	Offset    int
}

// RunQuery selects runs. Zero fields select everything; runs come newest first.
type RunQuery struct {
	SessionID   string
	UserID      string
	Kind        run.Kind
	ComponentID string
	Status      run.Status
	Limit       int // 0 means 100
	Offset      int
}

// Store keeps sessions, runs and events. Implementations are safe for concurrent
// use; every method honours ctx.
type Store interface {
	// CreateRun stores a new run (ErrExists if its id is taken), and creates its
	// session, in the same transaction, if the run has a session id and the session
	// does not exist yet (see Session), with the run's CreatedAt as its CreatedAt and
	// UpdatedAt; a later run moves the session's UpdatedAt to its CreatedAt when that
	// is more than SessionUpdatePrecision later.
	CreateRun(ctx context.Context, r *Run) error
	// UpdateRun saves a run's status, output, replica and lease (ErrNotFound if it
	// was never created). An end (a terminal status) written for a replica (r.Replica
	// set) is refused with ErrTakenOver, and nothing is written, while the stored
	// run is RUNNING or PENDING and another replica holds its lease (a live lease,
	// at the time of the write): a replica that lost a run does not end it over the
	// one that took it over.
	UpdateRun(ctx context.Context, r *Run) error
	// GetRun returns the run with the given id, or ErrNotFound.
	GetRun(ctx context.Context, id string) (*Run, error)
	// ListRuns returns the runs q selects, newest first.
	ListRuns(ctx context.Context, q RunQuery) ([]*Run, error)

	// AppendEvents stores events of any runs in one transaction. An event whose
	// (RunID, Index) is already stored is left as it is.
	AppendEvents(ctx context.Context, events []Event) error
	// Events returns the events of a run from index from on, at most limit of them
	// (all when limit is 0), in order.
	Events(ctx context.Context, runID string, from, limit int) ([]Event, error)

	// GetSession returns a session, or ErrNotFound.
	GetSession(ctx context.Context, id string) (*Session, error)
	// SaveSession creates or updates a session. An empty Name keeps the stored one.
	SaveSession(ctx context.Context, s *Session) error
	// DeleteSession deletes a session with its runs and their events (ErrNotFound if
	// there is none).
	DeleteSession(ctx context.Context, id string) error
	// ListSessions returns a page of the sessions q selects, in q's order (ties
	// broken by id), and total, the number of sessions q selects without its Limit
	// and Offset.
	ListSessions(ctx context.Context, q SessionQuery) (sessions []*Session, total int, err error)

	// RenewLeases extends the lease of the given runs that replica executes, and
	// returns those of runIDs it did not renew: the runs no longer replica's (another
	// replica claimed them), no longer RUNNING or PENDING, or not stored. A replica
	// has lost those runs, and should write nothing more of them.
	RenewLeases(ctx context.Context, replica string, runIDs []string, until time.Time) (lost []string, err error)
	// Interrupt ends every RUNNING (or PENDING) run whose lease lapsed before now:
	// ERROR with the given reason. It returns the runs it ended. A queued run (PENDING
	// with a zero lease) is left alone.
	Interrupt(ctx context.Context, now time.Time, reason string) ([]*Run, error)
	// Claim takes over at most limit runs whose lease lapsed before now, as
	// Interrupt would end them, for replica until the given time: their Replica and
	// LeaseUntil are set, their status becomes RUNNING, and they are returned whole
	// (with their saved Output, and ClaimedFrom naming their replica before). Two processes claiming at once never claim the same
	// run; a queued run is left alone.
	Claim(ctx context.Context, replica string, now, until time.Time, limit int) ([]*Run, error)

	// Close releases the store's resources; calls after it return ErrClosed.
	Close() error
}

// Fencer is implemented by stores that write a run's events only for the replica
// that owns the run (store/sqlite and store/postgres): once another replica claimed
// a run (see Store.Claim), the replica that lost it cannot append an event under an
// index the new owner reuses, which AppendEvents would leave as it is and the old
// owner would take for written. A Recorder on a Fencer appends through it.
type Fencer interface {
	// AppendEventsAs stores events as AppendEvents does, for replica, except the
	// events of the runs whose stored record names another replica: none of
	// those is written, and their ids are returned as lost. Events of a run
	// with no record are written. A claim of a run is ordered with the appends
	// of its events: once a claim is committed, the former owner's appends of
	// the run are refused, and an append committed before it is seen by whoever
	// reads the run's events after the claim.
	AppendEventsAs(ctx context.Context, replica string, events []Event) (lost []string, err error)
}

// RunsWriter is a Store that writes the records of many runs in one call more
// cheaply than in one call each (SQLite: one op of its writer, so one transaction,
// instead of as many ops as runs, which its writer may take in several). A
// Recorder writes the records, ends and checkpoints of a flush through it.
type RunsWriter interface {
	// WriteRuns creates the runs of create, as CreateRun does, and updates those of
	// update, as UpdateRun does, each with its own outcome, in that order.
	WriteRuns(ctx context.Context, create, update []*Run) (createErrs, updateErrs []error)
}

// Notifications are what a Canceller tells the processes that share its database.
// A nil field is not called. The fields are called one at a time, on the listener's
// goroutine, and should not block.
type Notifications struct {
	// Cancel: a cancel intent for the run was stored. Pending intents are delivered
	// again on every (re)connection and periodically, so Cancel may see an intent
	// more than once.
	Cancel func(runID, reason string)
	// Events: the run's events up to index last are stored (one notification per
	// write of a batch, not per event: read the new events from the store).
	Events func(runID string, last int)
	// Ended: the run's final state, in status st, is stored.
	Ended func(runID string, st run.Status)
	// Reconnected: the listener's connection was made again after it failed; what
	// was notified in between was not heard (Cancel has been re-read). A polling
	// listener (SQLite) calls it when it fell so far behind that what it had not
	// read was pruned.
	Reconnected func()
}

// IntentTTL is how long a cancel intent is kept for a run that has not ended: a
// cancel may come before the run starts, but not a day before. Older intents are
// no longer delivered and are deleted; so is the intent of a run that ended.
const IntentTTL = 24 * time.Hour

// Canceller is implemented by stores that carry cancels between processes sharing
// one database, so that a cancel accepted by one process reaches the process that
// executes the run, or will start it: store/postgres notifies them (LISTEN/NOTIFY),
// store/sqlite, which has no notifications, has its listeners poll the file at a
// short interval. A host (package host) on a Canceller uses it; others cancel in
// their own process only. The same channel tells them when a run's events are
// stored and when a run ended, so that a process can follow a run another one
// executes.
type Canceller interface {
	// CancelRun stores a cancel intent for the run durably and notifies the
	// listeners; it returns once the intent is committed. Cancelling twice keeps
	// the first reason.
	CancelRun(ctx context.Context, runID, reason string) error
	// PendingCancel reports the kept cancel intent for a run, if any.
	PendingCancel(ctx context.Context, runID string) (reason string, ok bool, err error)
	// Listen delivers the store's notifications to n until ctx is done, then
	// returns nil. On each (re)connection, and periodically, it calls n.Cancel for
	// every pending intent, so that a cancel notified while it was disconnected is
	// not lost. It reconnects on its own when its connection drops, and returns an
	// error only when it cannot listen at all (the store is closed).
	Listen(ctx context.Context, n Notifications) error
}

// Job is a run queued on a Queue: its stored record (PENDING, no lease), which
// holds everything needed to start it.
type Job = Run

// Component names an agent or a workflow, as a run's Kind and ComponentID do.
type Component struct {
	Kind run.Kind
	ID   string
}

// Queue is implemented by stores that schedule background runs between the
// processes sharing one database (store/postgres on River, store/sqlite on its
// runs table), so that any process with a free worker that serves a queued run's
// component starts it, and a queued run survives the process that queued it: a
// run is queued exactly when its record is stored.
type Queue interface {
	// Enqueue stores r, PENDING with no lease, and queues it, in one transaction
	// (ErrExists if its id is taken); r's session is created as CreateRun does.
	Enqueue(ctx context.Context, r *Job) error
	// Work starts queued runs of the components in serves, at most workers at
	// once, until ctx is done, then waits for the runs it started and returns nil.
	// A run of another component is left to the processes that serve it, however
	// long it waits. fn starts the run and returns once it has ended; a run whose
	// fn returned is done, whatever its outcome.
	// Before fn, the run is taken: still PENDING, it gets a lease (DefaultLease),
	// so that no other process starts it, and recovery takes it over if this one
	// dies before the run's own lease is written; a run no longer queued (taken,
	// cancelled, deleted) is skipped.
	Work(ctx context.Context, workers int, serves []Component, fn func(ctx context.Context, j *Job) error) error
	// CancelQueued ends a run that is still queued CANCELLED with reason, its
	// terminal event stored, and reports true; it reports false for a run no
	// longer queued (a worker took it, or it ended).
	CancelQueued(ctx context.Context, runID, reason string) (bool, error)
	// Queued counts the runs queued (of every component), reading at most limit
	// of them: the bound a caller keeps on the queue's length.
	Queued(ctx context.Context, limit int) (int, error)
}

// ReasonInterrupted is the error of a run that a dead process left behind.
const ReasonInterrupted = "interrupted"

// Recover ends the runs that a process which died left RUNNING: every run whose lease
// lapsed before now ends ERROR "interrupted", with a terminal event after its last
// stored one. A live lease, held by a process still running (a replica, a `kern run`
// beside `kern serve`), is never touched. It returns the runs it ended.
func Recover(ctx context.Context, s Store) ([]*Run, error) {
	var ended []*Run
	for {
		now := time.Now()
		runs, err := s.Claim(ctx, "recover", now, now.Add(DefaultLease), claimBatch)
		if err != nil {
			return ended, fmt.Errorf("store: recover runs left behind: %w", err)
		}
		out, err := interruptRuns(ctx, s, runs, nil)
		ended = append(ended, out...)
		if err != nil || len(runs) < claimBatch {
			return ended, err
		}
	}
}

// DefaultReplica names a process that was given no replica name: host and pid.
func DefaultReplica() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "kern"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// LastEvent returns the last stored event of a run, nil if it has none.
func LastEvent(ctx context.Context, s Store, runID string) (*Event, error) {
	var last *Event
	for from := 0; ; {
		evs, err := s.Events(ctx, runID, from, eventPage)
		if err != nil {
			return nil, err
		}
		if len(evs) > 0 {
			last = &evs[len(evs)-1]
			from = last.Index + 1
		}
		if len(evs) < eventPage {
			return last, nil
		}
	}
}

// EndEvent returns the terminal event of a run that ends without the runtime that
// executed it (left behind by a process that died, or cancelled while queued), at
// the given index, built as the runtime builds it from r's Status and Output: its
// Error (also as content, as Agno's RunError carries it), its Reason, or its
// Content (with its ContentType, so that a structured output stays a JSON value).
func EndEvent(r *Run, index int, at time.Time) (Event, error) {
	origin := &run.Origin{
		AgentID: cmp.Or(r.ComponentID, r.Output.AgentID), AgentName: r.Output.AgentName,
		SessionID: cmp.Or(r.SessionID, r.Output.SessionID), UserID: cmp.Or(r.UserID, r.Output.UserID),
		ParentRunID: cmp.Or(r.ParentRunID, r.Output.ParentRunID),
	}
	if r.Kind == run.KindWorkflow {
		origin.AgentID, origin.AgentName = "", ""
		origin.WorkflowID, origin.WorkflowName = cmp.Or(r.ComponentID, r.Output.WorkflowID), r.Output.WorkflowName
	}
	ev := run.Event{Event: r.Kind.TerminalEvent(r.Status), RunID: r.ID, CreatedAt: at.Unix(), EventIndex: index, Origin: origin}
	switch r.Status {
	case run.StatusCompleted:
		ev.Content = r.Output.Content
		if r.Output.ContentType != "" { // a structured output stays a JSON value
			ev.Detail = &run.Detail{ContentType: r.Output.ContentType}
		}
	case run.StatusCancelled:
		ev.Reason = r.Output.Reason
	default:
		ev.Content, ev.Error = r.Output.Error, r.Output.Error
	}
	data, err := ev.AppendJSON(nil)
	if err != nil {
		return Event{}, fmt.Errorf("store: terminal event of run %s: %w", r.ID, err)
	}
	return Event{RunID: r.ID, Index: index, Type: ev.Event, Data: data, CreatedAt: time.Unix(ev.CreatedAt, 0)}, nil
}
