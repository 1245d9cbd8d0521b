// Package runaccess lets kern's engine (internal/engine) reach what package run keeps
// unexported, so that run's public API holds only what users call: run sets these
// variables in its init, and the engine asserts their types once, when it is
// initialised (as grpc's internal package links its packages). Each variable's
// comment gives its type; nothing outside kern can import this package.
package runaccess

// Hooks into package run, set by its init.
var (
	// NewExec is func(id string, kind run.Kind, out *run.Output, rs *run.Resume)
	// (*run.Exec, *eventlog.Log[run.Event]): a handle on a top-level run about to
	// start, and the write side of its log.
	NewExec any
	// Log is func(x *run.Exec) *eventlog.Log[run.Event]: the write side of x's log.
	Log any
	// Started is func(x *run.Exec, e any): x's run is registered as e, which
	// implements Cancel(reason string) bool, Done() <-chan struct{} and
	// Status() run.Status.
	Started any
	// Ended is func(x *run.Exec, persistErr error): x's run has ended; Done closes,
	// and the functions given to AfterDone are called.
	Ended any
	// AfterDone is func(x *run.Exec, fn func()): fn is called once x's Done is
	// closed, on the run's goroutine as it ends (at once if it ended).
	AfterDone any
	// Entry is func(x *run.Exec) any: the e given to Started.
	Entry any
	// SetErr is func(o *run.Output, err error): the run's own error, which
	// Output.Err reports.
	SetErr any
	// Begin is func(r *run.Registry, id string, e any) error: registers e (as
	// Started's e, and with Intended(reason string), which Begin calls, with r's
	// lock held, when a cancel intent for id was kept) as run id's active entry.
	Begin any
	// End is func(r *run.Registry, id string, e any, st run.Status): run id, whose
	// entry is e, ended in st.
	End any
	// Lookup is func(r *run.Registry, id string) (any, bool): the entry of an active
	// run.
	Lookup any
)
