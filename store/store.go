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
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"kern/run"
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
)

// MaxValueSize bounds one stored value: a run's input, content or output, an
// event, a session's state. Larger values are refused with ErrTooLarge.
const MaxValueSize = 64 << 20

// Kind is what ran: an agent or a workflow.
type Kind string

// Kinds of component.
const (
	KindAgent    Kind = "agent"
	KindWorkflow Kind = "workflow"
)

// Run is a stored run: where it belongs, how it stands, who executes it, and its
// output so far (content, step results, metrics, error, reason).
type Run struct {
	ID          string
	SessionID   string
	UserID      string
	ParentRunID string
	Kind        Kind
	ComponentID string // the agent's or workflow's id
	Status      run.Status
	Input       string
	// Output is the run's output as the runtime last saved it; its Content is the
	// partial content of a run that was cancelled or interrupted.
	Output run.Output
	// Replica names the process that executes the run, and LeaseUntil is when its
	// claim lapses unless renewed; recovery takes over only runs whose lease lapsed.
	Replica    string
	LeaseUntil time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
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

// Session groups the runs of one conversation or job, and carries the state its runs
// share.
type Session struct {
	ID          string
	UserID      string
	Kind        Kind
	ComponentID string
	State       map[string]any
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// RunQuery selects runs. Zero fields select everything; runs come newest first.
type RunQuery struct {
	SessionID   string
	Kind        Kind
	ComponentID string
	Status      run.Status
	Limit       int // 0 means 100
	Offset      int
}

// Store keeps sessions, runs and events. Implementations are safe for concurrent
// use; every method honours ctx.
type Store interface {
	// CreateRun stores a new run (ErrExists if its id is taken).
	CreateRun(ctx context.Context, r *Run) error
	// UpdateRun saves a run's status, output, replica and lease (ErrNotFound if it
	// was never created).
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
	// SaveSession creates or updates a session.
	SaveSession(ctx context.Context, s *Session) error
	// DeleteSession deletes a session with its runs and their events (ErrNotFound if
	// there is none).
	DeleteSession(ctx context.Context, id string) error

	// RenewLeases extends the lease of the given runs that replica executes.
	RenewLeases(ctx context.Context, replica string, runIDs []string, until time.Time) error
	// Interrupt ends every RUNNING (or PENDING) run whose lease lapsed before now:
	// ERROR with the given reason. It returns the runs it ended.
	Interrupt(ctx context.Context, now time.Time, reason string) ([]*Run, error)

	// Close releases the store's resources; calls after it return ErrClosed.
	Close() error
}

// Canceller is implemented by stores that carry cancels between processes sharing
// one database (store/postgres), so that a cancel accepted by one replica reaches
// the replica that executes the run, or will start it. A server whose Store is a
// Canceller uses it; others cancel in their own process only.
type Canceller interface {
	// CancelRun stores a cancel intent for the run durably and notifies the
	// listeners; it returns once the intent is committed. Cancelling twice keeps
	// the first reason.
	CancelRun(ctx context.Context, runID, reason string) error
	// PendingCancel reports the kept cancel intent for a run, if any.
	PendingCancel(ctx context.Context, runID string) (reason string, ok bool, err error)
	// Listen calls fn for every cancel notified until ctx is done, then returns
	// nil. On each (re)connection it first calls fn for every pending intent, so
	// that a cancel notified while it was disconnected is not lost: fn may see a
	// cancel more than once. It reconnects on its own when its connection drops,
	// and returns an error only when it cannot listen at all (the store is closed).
	// fn runs on Listen's goroutine and should not block.
	Listen(ctx context.Context, fn func(runID, reason string)) error
}

// ReasonInterrupted is the error of a run that a dead process left behind.
const ReasonInterrupted = "interrupted"

// Recover ends the runs that a process which died left RUNNING: every run whose lease
// lapsed before now ends ERROR "interrupted". A live lease, held by a process still
// running (a replica, a `kern run` beside `kern serve`), is never touched. It returns
// the runs it ended.
func Recover(ctx context.Context, s Store) ([]*Run, error) {
	runs, err := s.Interrupt(ctx, time.Now(), ReasonInterrupted)
	if err != nil {
		return nil, fmt.Errorf("store: recover runs left behind: %w", err)
	}
	return runs, nil
}
