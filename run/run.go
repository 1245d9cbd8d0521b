// Package run holds what every kern run shares: run IDs, statuses, events with Agno's
// wire names, run outputs and options, the cancellation registry, and the read side
// of a run (Exec: its event log, its output, its end).
//
// It is the floor of kern's layers: it knows nothing of models, HTTP or SQL. The
// machinery that executes runs (their lifecycle, the log's write side, nested runs'
// scope) is kern's own, under internal/engine.
package run

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// NewID returns a new run ID: a version 7 UUID, so that IDs sort by creation time.
//
// Its 74 random bits come from the runtime's ChaCha8 generator, seeded from the
// operating system's entropy: as unpredictable as crypto/rand for an ID, and free of
// the system call that crypto/rand costs per ID on some kernels (uuid.NewV7 measured
// 1.3 µs per ID inside a run here, more than a streamed chunk's whole budget).
func NewID() string {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[:8], idHigh())
	binary.BigEndian.PutUint64(u[8:], rand.Uint64())
	u[6] = u[6]&0x0f | 0x70 // version 7
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u.String()
}

// lastID is the high 64 bits (time and counter) of the last ID NewID returned.
var lastID atomic.Uint64

// idHigh returns the high 64 bits of a new ID: its millisecond, then 16 bits (12
// once the version is set) that start random in each millisecond and count up
// within it (RFC 9562, 6.2, method 1), so that the IDs of one process sort in the
// order they were made, even many to a millisecond: stores order runs created in
// the same millisecond by ID.
func idHigh() uint64 {
	for {
		last := lastID.Load()
		next := uint64(time.Now().UnixMilli())<<16 | rand.Uint64()&0x0fff
		if next <= last {
			// Bits 12-15 are the version's: a full counter carries into the
			// millisecond, which stays unique and ordered.
			ms, c := last>>16, last&0x0fff
			if c == 0x0fff {
				ms, c = ms+1, 0
			} else {
				c++
			}
			next = ms<<16 | c
		}
		if lastID.CompareAndSwap(last, next) {
			return next
		}
	}
}

// Status is a run's state. Its values are Agno's wire names.
type Status string

// Run statuses.
const (
	StatusPending   Status = "PENDING"
	StatusRunning   Status = "RUNNING"
	StatusCompleted Status = "COMPLETED"
	StatusPaused    Status = "PAUSED"
	StatusCancelled Status = "CANCELLED"
	StatusError     Status = "ERROR"
)

// Terminal reports whether a run in this status has ended for good.
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusCancelled || s == StatusError
}

// Errors callers tell apart with errors.Is.
var (
	// ErrCancelled matches the error of a run that was cancelled (see CancelledError).
	ErrCancelled = errors.New("run cancelled")
	// ErrDuplicateID is returned when a run is started with the ID of a run still active.
	ErrDuplicateID = errors.New("run id already in use")
	// ErrInvalid matches errors about invalid definitions or input, found before a run starts.
	ErrInvalid = errors.New("invalid definition")
)

// CancelledError is the error of a cancelled run. It matches ErrCancelled, and
// unwraps to its Cause when there is one (context.DeadlineExceeded for a run whose
// caller's deadline passed).
type CancelledError struct {
	RunID  string
	Reason string
	Cause  error
}

func (e *CancelledError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("run %s cancelled", e.RunID)
	}
	return fmt.Sprintf("run %s cancelled: %s", e.RunID, e.Reason)
}

// Is makes errors.Is(err, ErrCancelled) true.
func (e *CancelledError) Is(target error) bool { return target == ErrCancelled }

// Unwrap returns the cause of the cancel, if any.
func (e *CancelledError) Unwrap() error { return e.Cause }

// Options are the settings a caller gives one run.
type Options struct {
	ID          string // run ID; empty means a new one
	SessionID   string
	UserID      string
	ParentRunID string
	// Resume, when set, continues a run whose record is already stored.
	Resume *Resume
	// Metadata are the run's key-value pairs, kept in its output (see
	// Output.Metadata).
	Metadata map[string]string
	// Extras are options of the layers above run (such as agent.WithSettings),
	// which run passes on untouched.
	Extras []any
}

// Resume continues a stored run instead of starting a new one: a background run
// queued with a record, or a run that a process which died left behind and another
// one took over. The recorder updates the stored record instead of creating it, and
// the run's events go on from NextEvent.
type Resume struct {
	// NextEvent is the index of the run's next event: the events before it are
	// stored already.
	NextEvent int
	// Steps are the results of the workflow's top-level steps that finished, in
	// order: the workflow goes on with the step after them and does not run them
	// again. Agents take none.
	Steps []StepResult
	// Partial is the text the step after Steps had streamed when the run's
	// process died. A run that ends short of COMPLETED before that step streams
	// anything anew (a cancel that came while no process owned the run) keeps it
	// as its content, as a cancelled run keeps its running step's partial text.
	Partial string
	// Open are the ids of the runs nested in that step (its agents' runs) that
	// started and never ended: the workflow ends each with RunError before the
	// step runs again, so that every run in the stream has its end.
	Open []string
	// Paused, set when the run continues from a pause, is the state it paused
	// in, and Decisions what a person decided about the calls it waits for
	// (see Resolve: applied already).
	Paused    *Paused
	Decisions []ToolExecution
	// StepDecisions are a paused workflow's (see ResolveSteps: applied already).
	StepDecisions []StepRequirement
}

// WithResume continues the stored run r describes; see Resume.
func WithResume(r *Resume) Option { return func(o *Options) { o.Resume = r } }

// Option sets one of the Options.
type Option func(*Options)

// WithID runs with the given ID, so a caller can cancel the run before its first event.
func WithID(id string) Option { return func(o *Options) { o.ID = id } }

// WithSessionID puts the run in a session.
func WithSessionID(id string) Option { return func(o *Options) { o.SessionID = id } }

// WithUserID records who started the run.
func WithUserID(id string) Option { return func(o *Options) { o.UserID = id } }

// WithParentRunID records the run that started this one.
func WithParentRunID(id string) Option { return func(o *Options) { o.ParentRunID = id } }

// WithMetadata sets the run's metadata key to value (see Output.Metadata).
func WithMetadata(key, value string) Option {
	return func(o *Options) {
		m := make(map[string]string, len(o.Metadata)+1)
		for k, v := range o.Metadata {
			m[k] = v
		}
		m[key] = value
		o.Metadata = m
	}
}

// Apply returns the options set by opts, with a new run ID when none was given.
func Apply(opts []Option) Options {
	var o Options
	for _, opt := range opts {
		opt(&o)
	}
	if o.ID == "" {
		o.ID = NewID()
	}
	return o
}
