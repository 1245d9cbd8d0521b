// Package host is the one owner of the live runs of a process: it starts the runs
// of its workflows and agents, queues background runs, cancels any run by id —
// executing here, queued, or executing in another process on the same database —
// waits for runs to end, follows runs executing elsewhere, takes over the runs that
// a process which died left behind, and shuts down in order: runs cancelled first,
// their end persisted, the store left for the caller to close.
//
// A Go program, `kern run` and `kern serve` share it: agentos answers HTTP by
// calling a Host, and a program without HTTP gets everything `kern serve` has but
// the routes.
package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/team"
	"github.com/kern-dev/kern/telemetry"
	"github.com/kern-dev/kern/workflow"
)

// Defaults of the zero fields of Options.
const (
	DefaultWorkers       = 64
	DefaultQueueSize     = 1024
	DefaultKeepRuns      = 1000
	DefaultShutdownGrace = 10 * time.Second
	// DefaultPollInterval is how often a follower of a run executing elsewhere
	// reads the store when the store does not notify (it is not a
	// store.Canceller); with notifications it reads it every second, as the
	// fallback for a lost one.
	DefaultPollInterval = 200 * time.Millisecond
)

// ReasonShutdown is the reason of the runs a host cancels as it shuts down.
const ReasonShutdown = "server shutting down"

// Errors callers tell apart with errors.Is.
var (
	// ErrClosed: the host is shutting down and starts no run.
	ErrClosed = errors.New("server is shutting down")
	// ErrQueueFull: the queue of background runs is full (Options.QueueSize).
	ErrQueueFull = errors.New("background queue is full")
	// ErrBusy: the host executes as many runs as Options.MaxRuns allows and
	// starts no other now; a later Start may succeed once one ends.
	ErrBusy = errors.New("server is busy")
	// ErrUnknownRun: no run with that id is known (Wait, without a store).
	ErrUnknownRun = errors.New("host: no such run")
	// ErrUnknownComponent: no workflow or agent with that id.
	ErrUnknownComponent = errors.New("host: no such workflow or agent")
	// ErrNotDurable: a cancel took effect in this process, but nothing of it is
	// durable: neither its intent nor the run's end could be stored (the store
	// failed), so a process that takes the run over after this one dies would
	// not know of it. The cancel is not to be acknowledged as done.
	ErrNotDurable = errors.New("host: cancel not durable")
)

// Options configure a Host; every zero field has a default.
type Options struct {
	// Workflows and Agents are what the host runs. Each is validated; its
	// Registry and Recorder are set to the host's when nil.
	Workflows []*workflow.Workflow
	Agents    []*agent.Agent
	// Teams are what the host runs too, as Agents are.
	Teams []*team.Team
	// Replica names this process among those sharing the store, in the records of
	// the runs it executes (host-pid if empty).
	Replica string
	// Lease is how long the record of a run this host executes stays claimed
	// unless renewed (store.DefaultLease if zero).
	Lease time.Duration
	// Workers bounds the background runs this host executes at once, QueueSize
	// those waiting for a worker: in the store's queue (counted over every
	// process on it) when the store is a store.Queue, in this process's memory
	// otherwise. A full queue refuses a run with ErrQueueFull.
	Workers   int
	QueueSize int
	// MaxRuns bounds the runs Start executes at once in this host (0: no
	// bound): a Start beyond it fails with ErrBusy before any work, no record
	// written and no model called. Background runs are not counted: Workers
	// bounds them, and QueueSize those waiting. Nor are the runs recovery takes
	// over from a process that died: they were acknowledged already, and are
	// never refused.
	MaxRuns int
	// Registry cancels the runs (a new one if nil, which remembers intents and
	// ended runs for store.IntentTTL).
	Registry *run.Registry
	// Recorder persists the runs; nil makes one on the store (none without a
	// store). The caller closes a Recorder it passed, after Shutdown.
	Recorder run.Recorder
	// KeepRuns is how many finished runs are kept in memory without a store.
	KeepRuns int
	// ShutdownGrace is how long Close lets running runs go on before it cancels
	// them.
	ShutdownGrace time.Duration
	// PollInterval is how often a follower of a run executing elsewhere reads
	// the store when the store does not notify (DefaultPollInterval if zero).
	PollInterval time.Duration
	// NoRecovery leaves the runs that dead processes left behind to other
	// processes: a short-lived `kern run` beside servers that take them over.
	NoRecovery bool
	// NoWork takes no background runs from the store's queue: the runs queued
	// there are for other processes (a short-lived `kern run`). Nor does it end
	// the paused runs whose pause expired.
	NoWork bool
	// ExpiryInterval is how often the host looks for paused runs whose pause
	// expired (DefaultExpiryInterval if zero); only hosts with a tool or a step
	// whose pause can expire look.
	ExpiryInterval time.Duration
	Logger         *slog.Logger
	// Telemetry, if set, makes the spans and metrics of the runs the host
	// executes (see package telemetry); nil makes none, at no cost to a run.
	Telemetry *telemetry.Observer
}

// Host owns the live runs of a process. It is safe for concurrent use.
type Host struct {
	opts      Options
	log       *slog.Logger
	store     store.Store
	canceller store.Canceller // the store, when it carries cancels between processes
	registry  *run.Registry
	ownRec    *store.Recorder // the recorder the host made, closed by Shutdown
	comps     map[string]*component
	workflows []*component
	agents    []*component
	teams     []*component
	queue     queue
	followers watchers

	runCtx    context.Context // the context runs start with: cancelled at shutdown
	cancelAll context.CancelCauseFunc
	stopBG    context.CancelFunc // stops the listener and the recovery loop
	bg        sync.WaitGroup     // the listener and the recovery loop
	signals   testSignals
	unobserve func() // stops the telemetry's reading of the queue's depth

	mu       sync.Mutex // guards the fields below and every Run's guarded fields
	live     map[string]*Run
	started  int    // runs of Start executing or starting (counted, see Options.MaxRuns)
	recent   []*Run // finished runs kept in memory (no store), oldest first
	closing  bool
	shutdown chan struct{} // closed once Shutdown has ended every run
	wg       sync.WaitGroup
}

// component is a workflow or an agent the host runs.
type component struct {
	kind      run.Kind
	id        string
	registry  *run.Registry
	resumable bool // a run left behind by a dead process may be resumed
	// recordsHere: its runs are recorded by the recorder the host made on its
	// store, so a run's end persisted is stored where the host's cancels look.
	recordsHere bool
	start       func(ctx context.Context, input string, opts ...run.Option) (*run.Exec, error)
	wf          *workflow.Workflow
	agent       *agent.Agent
	team        *team.Team
}

// New returns a Host running opts' workflows and agents, recording their runs into
// st (nil keeps them in memory only). It validates every workflow and agent, and
// refuses duplicate ids. When st is a store.Canceller the host hears cancels from
// the other processes on the same database; unless NoRecovery is set it takes over
// the runs they left behind. Shutdown stops it; the caller closes st after.
func New(st store.Store, opts Options) (*Host, error) {
	return newHost(st, opts, testSignals{})
}

// newHost is New with the test signals of the host's loops.
func newHost(st store.Store, opts Options, sig testSignals) (*Host, error) {
	h := &Host{opts: opts, log: opts.Logger, store: st, registry: opts.Registry, signals: sig,
		comps: make(map[string]*component), live: make(map[string]*Run)}
	h.defaults()
	rec := opts.Recorder
	if rec == nil && st != nil {
		ro := store.RecorderOptions{Replica: h.opts.Replica, Lease: h.opts.Lease, NoRecovery: true}
		if h.opts.Telemetry != nil {
			ro.OnWrite = h.opts.Telemetry.StoreWrite
		}
		h.ownRec = store.NewRecorder(st, ro)
		rec = h.ownRec
	}
	if err := h.addComponents(rec); err != nil {
		if h.ownRec != nil {
			h.ownRec.Close()
		}
		return nil, err
	}
	h.runCtx, h.cancelAll = context.WithCancelCause(context.Background())
	h.canceller, _ = st.(store.Canceller)
	h.queue = h.newQueue()
	var err error
	if h.unobserve, err = h.opts.Telemetry.ObserveQueue(h.queueDepth); err != nil {
		if h.ownRec != nil {
			h.ownRec.Close()
		}
		return nil, fmt.Errorf("host: %w", err)
	}
	bg, stop := context.WithCancel(context.Background())
	h.stopBG = stop
	h.startListener(bg)
	h.startRecovery(bg)
	h.startExpiry(bg)
	h.queue.start()
	return h, nil
}

func (h *Host) defaults() {
	o := &h.opts
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.KeepRuns <= 0 {
		o.KeepRuns = DefaultKeepRuns
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Lease <= 0 {
		o.Lease = store.DefaultLease
	}
	if o.Replica == "" {
		o.Replica = store.DefaultReplica()
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.registry == nil {
		// A cancel for an id no run has yet is kept as long as a store keeps one, so
		// that what `kern cancel` says ("kept for 24 h") holds without a store too.
		h.registry = &run.Registry{Memory: store.IntentTTL}
	}
}

func (h *Host) addComponents(rec run.Recorder) error {
	for i, w := range h.opts.Workflows {
		if w == nil {
			return fmt.Errorf("host: workflow %d is nil", i)
		}
		if err := w.Validate(); err != nil {
			return fmt.Errorf("host: %w", err)
		}
		here := h.share(&w.Registry, &w.Recorder, rec)
		c := &component{kind: run.KindWorkflow, id: w.WorkflowID(), registry: w.Registry,
			start: w.Start, resumable: !w.NotResumable, wf: w, recordsHere: here}
		if err := h.add(c); err != nil {
			return err
		}
		h.workflows = append(h.workflows, c)
	}
	for i, a := range h.opts.Agents {
		if err := a.Validate(); err != nil {
			return fmt.Errorf("host: agent %d: %w", i, err)
		}
		here := h.share(&a.Registry, &a.Recorder, rec)
		c := &component{kind: run.KindAgent, id: a.AgentID(), registry: a.Registry, start: a.Start, agent: a, recordsHere: here}
		if err := h.add(c); err != nil {
			return err
		}
		h.agents = append(h.agents, c)
	}
	for i, t := range h.opts.Teams {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("host: team %d: %w", i, err)
		}
		here := h.share(&t.Registry, &t.Recorder, rec)
		c := &component{kind: run.KindTeam, id: t.TeamID(), registry: t.Registry, start: t.Start, team: t, recordsHere: here}
		if err := h.add(c); err != nil {
			return err
		}
		h.teams = append(h.teams, c)
	}
	for _, reg := range h.registries() {
		if reg.Canceller == nil {
			reg.Canceller = registryHook{h}
		}
	}
	return nil
}

// share gives a component the host's registry and rec where it has none of its
// own, so that its runs are cancelled and recorded as the host's, and reports
// whether they are recorded by the recorder the host made on its store.
func (h *Host) share(reg **run.Registry, recorder *run.Recorder, rec run.Recorder) (recordsHere bool) {
	if *reg == nil {
		*reg = h.registry
	}
	if *recorder == nil {
		*recorder = rec
	}
	return h.ownRec != nil && *recorder == run.Recorder(h.ownRec)
}

func (h *Host) add(c *component) error {
	if c.id == "" {
		return fmt.Errorf("host: a %s has neither id nor name", c.kind)
	}
	key := string(c.kind) + "/" + c.id
	if _, dup := h.comps[key]; dup {
		return fmt.Errorf("host: two %ss with id %q", c.kind, c.id)
	}
	h.comps[key] = c
	return nil
}

// registries returns the distinct registries of the host and its components.
func (h *Host) registries() []*run.Registry {
	regs := []*run.Registry{h.registry}
	for _, c := range h.comps {
		seen := false
		for _, r := range regs {
			seen = seen || r == c.registry
		}
		if !seen {
			regs = append(regs, c.registry)
		}
	}
	return regs
}

// Teams returns the teams the host runs, in the order of Options.
func (h *Host) Teams() []*team.Team {
	out := make([]*team.Team, len(h.teams))
	for i, c := range h.teams {
		out[i] = c.team
	}
	return out
}

// Workflows returns the workflows the host runs, in the order of Options.
func (h *Host) Workflows() []*workflow.Workflow {
	out := make([]*workflow.Workflow, len(h.workflows))
	for i, c := range h.workflows {
		out[i] = c.wf
	}
	return out
}

// Agents returns the agents the host runs, in the order of Options.
func (h *Host) Agents() []*agent.Agent {
	out := make([]*agent.Agent, len(h.agents))
	for i, c := range h.agents {
		out[i] = c.agent
	}
	return out
}

// Store returns the host's store, nil when runs are kept in memory only.
func (h *Host) Store() store.Store { return h.store }

// Replica returns the name of this process in the runs it executes.
func (h *Host) Replica() string { return h.opts.Replica }

// Registry returns the host's registry.
func (h *Host) Registry() *run.Registry { return h.registry }

// Close is Shutdown with Options.ShutdownGrace as the time runs may go on.
func (h *Host) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.ShutdownGrace)
	defer cancel()
	return h.Shutdown(ctx)
}

// Shutdown stops the host from starting runs, ends the background runs still
// queued in memory CANCELLED (those queued in a store.Queue stay queued, for the
// next process), lets running runs go on until ctx is done, then cancels
// them, and returns once every run has ended and its end is persisted. It then
// stops the listener, the recovery loop and the recorder the host made, not the
// store: the caller closes the store after. Calls after the first wait for it.
// Runs a program started on a workflow or agent directly (wf.Stream, a.Run) rather
// than through Start or Enqueue are the program's to end before Shutdown.
func (h *Host) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	first := !h.closing
	h.closing = true
	if first {
		h.shutdown = make(chan struct{})
	}
	done := h.shutdown
	h.mu.Unlock()
	if !first {
		<-done
		return nil
	}
	h.queue.stop() // take no more runs; those queued in memory end CANCELLED
	ended := make(chan struct{})
	go func() { h.wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-ctx.Done():
		h.opts.Telemetry.CancelAllRequested(telemetry.SourceShutdown)
		h.cancelAll(errors.New(ReasonShutdown))
		<-ended
	}
	h.cancelAll(errors.New(ReasonShutdown))
	h.queue.wait()
	h.unobserve()
	h.opts.Telemetry.Wait() // every run's spans ended
	h.stopBG()
	h.bg.Wait()
	var err error
	if h.ownRec != nil {
		err = h.ownRec.Close()
	}
	close(done)
	return err
}

// Closing reports whether Shutdown has begun.
func (h *Host) Closing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closing
}

// component returns the component of that kind and id, or nil.
func (h *Host) component(kind run.Kind, id string) *component {
	return h.comps[string(kind)+"/"+id]
}

// testSignals tell tests what the host's background loops did, so that they wait
// on them instead of sleeping (River's testSignals); nil channels are not used.
type testSignals struct {
	recovered   chan struct{}    // a recovery round ended
	recoverTick <-chan time.Time // replaces the recovery loop's ticker
}

func (s *testSignals) signal(ch chan struct{}) {
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
