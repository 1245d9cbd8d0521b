// Package agentos serves kern's workflows and agents over HTTP, with an API compatible
// with Agno's AgentOS: runs started by form or JSON, streamed as server-sent events,
// resumed after a dropped connection, cancelled on request, and read back from the
// store.
//
// New builds a Server from a Config; Handler gives its http.Handler, to mount in a
// program's own http.Server, and Serve runs it on an address until its context is
// done, then shuts down gracefully. Every error is answered as JSON {"detail": "..."}.
package agentos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/workflow"
)

// Defaults of a Config's zero fields.
const (
	DefaultStreamGrace   = 5 * time.Second
	DefaultHeartbeat     = 15 * time.Second
	DefaultMaxBodyBytes  = 1 << 20
	DefaultWorkers       = 64
	DefaultQueueSize     = 1024
	DefaultShutdownGrace = 10 * time.Second
	DefaultCancelWait    = 10 * time.Second
	DefaultKeepRuns      = 1000
	DefaultOSID          = "github.com/kern-dev/kern"
)

// CancelAtOnce, as Config.StreamGrace, cancels a streamed run the moment its last
// client disconnects, with no grace period to resume in.
const CancelAtOnce time.Duration = -1

// Reasons the server gives for the cancels it makes itself.
const (
	ReasonClientDisconnected = "client disconnected"
	ReasonShutdown           = "server shutting down"
)

// Config is what a Server serves and how. Only Workflows or Agents are needed; every
// other field has a default.
type Config struct {
	Workflows []*workflow.Workflow
	Agents    []*agent.Agent
	// Store is where finished runs, their events and sessions are read back from.
	// With a Store and no Recorder, the server records runs to Store itself. Nil keeps
	// runs in memory only (the last KeepRuns finished runs). The caller closes the
	// Store after Serve (or Shutdown) has returned. A Store that is a
	// store.Canceller (PostgreSQL) carries cancels between the servers sharing it:
	// New starts a listener for them, which Shutdown stops.
	Store store.Store
	// Registry cancels the runs. Nil means a new one. It is set on every workflow and
	// agent whose Registry is nil, so that cancels over HTTP reach their runs.
	Registry *run.Registry
	// Recorder persists runs; it is set on every workflow and agent that has none.
	// The caller closes a Recorder it passed, after Serve (or Shutdown) has returned.
	Recorder run.Recorder
	// SecurityKey, if set, makes every route but /health require the header
	// "Authorization: Bearer <SecurityKey>".
	SecurityKey string
	// StreamGrace is how long a run whose streaming clients all disconnected goes on
	// before it is cancelled, so that a client may resume it: DefaultStreamGrace if 0,
	// no grace at all if negative (CancelAtOnce). Background runs are never cancelled
	// for a disconnect.
	StreamGrace time.Duration
	// Heartbeat is the interval of the ": ping" comments on idle streams
	// (DefaultHeartbeat if 0).
	Heartbeat time.Duration
	// MaxBodyBytes bounds a request's body (DefaultMaxBodyBytes if 0); larger bodies
	// are answered 413.
	MaxBodyBytes int64
	// Workers bounds the background runs executing at once (DefaultWorkers if 0), and
	// QueueSize the background runs waiting for a worker (DefaultQueueSize if 0); a
	// background run beyond both is refused with 429.
	Workers   int
	QueueSize int
	// ShutdownGrace is how long Serve lets running runs go on once its context is
	// done before it cancels them (DefaultShutdownGrace if 0).
	ShutdownGrace time.Duration
	// CancelWait bounds how long a cancel request waits for the run to end
	// (DefaultCancelWait if 0).
	CancelWait time.Duration
	// KeepRuns is how many finished runs are kept in memory when there is no Store
	// (DefaultKeepRuns if 0).
	KeepRuns int
	// OSID names this server in GET /config (DefaultOSID if empty).
	OSID string
	// Replica names this process among the servers sharing a Store: shown in GET
	// /config and in the records of the runs it executes (host-pid if empty).
	Replica string
	// Lease is how long the record of a run this server executes stays claimed
	// unless renewed (store.DefaultLease if 0), when the server records runs itself
	// (Store set, Recorder nil). Such a server also takes over the runs that a
	// process which died left behind, once their lease lapsed: a workflow's run
	// resumes after its last finished step (unless the workflow is NotResumable),
	// others end ERROR "interrupted".
	Lease  time.Duration
	Logger *slog.Logger
}

// Server serves workflows and agents over HTTP. It is safe for concurrent use.
type Server struct {
	cfg        Config
	log        *slog.Logger
	store      store.Store
	registry   *run.Registry
	ownRec     *store.Recorder // the recorder the server made, closed by Shutdown
	workflows  []*component
	agents     []*component
	components map[string]*component // "workflow/<id>" or "agent/<id>"
	handler    http.Handler
	table      []route        // what the mux serves, /openapi.json and /docs describe
	mux        *http.ServeMux // built from table
	apiDoc     []byte         // GET /openapi.json's answer, built from table

	runCtx    context.Context // the context runs start with: cancelled at shutdown
	cancelAll context.CancelCauseFunc

	canceller  store.Canceller    // the store, when it carries cancels between replicas
	stopListen context.CancelFunc // stops the listener
	listenDone chan struct{}      // closed once the listener has returned
	followers  watchers           // followers of runs executing elsewhere

	queue    store.Queue        // the store, when it queues background runs between replicas
	stopWork context.CancelFunc // stops taking queued runs
	workDone chan struct{}      // closed once the queue's Work has returned

	ready    chan struct{} // closed once New has finished
	notReady bool          // New failed: set before ready is closed

	mu       sync.Mutex // guards the fields below and every liveRun's guarded fields
	live     map[string]*liveRun
	recent   []*liveRun // finished runs kept in memory, oldest first (no store)
	pending  []*liveRun // background runs waiting for a worker, oldest first
	workers  int        // workers executing background runs
	closing  bool
	shutdown chan struct{} // closed once Shutdown has ended every run
	wg       sync.WaitGroup
}

// component is a workflow or an agent, as routes see it.
type component struct {
	kind        store.Kind
	id          string
	name        string
	description string
	registry    *run.Registry
	resumable   bool // a run left behind by a dead process may be resumed
	start       func(ctx context.Context, input string, opts ...run.Option) (*run.Exec, error)
	info        any // what GET /workflows/{id} or /agents/{id} answers
}

// New returns a Server for cfg. It validates every workflow and agent, and refuses
// duplicate ids.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, log: cfg.Logger, store: cfg.Store, registry: cfg.Registry,
		components: make(map[string]*component), live: make(map[string]*liveRun), ready: make(chan struct{})}
	s.defaults()
	s.runCtx, s.cancelAll = context.WithCancelCause(context.Background())
	rec := cfg.Recorder
	if rec == nil && cfg.Store != nil {
		// Its recovery may hand runs to takeover at once: takeover waits for ready.
		s.ownRec = store.NewRecorder(cfg.Store, store.RecorderOptions{
			Replica: s.cfg.Replica, Lease: s.cfg.Lease, Takeover: s.takeover, OnRecover: s.logRecovered,
		})
		rec = s.ownRec
	}
	fail := func(err error) (*Server, error) {
		s.notReady = true
		close(s.ready)
		if s.ownRec != nil {
			s.ownRec.Close()
		}
		return nil, err
	}
	err := s.addComponents(rec)
	if err != nil {
		return fail(err)
	}
	s.handler = s.routes()
	if s.apiDoc, err = s.openAPI(); err != nil {
		return fail(fmt.Errorf("agentos: openapi document: %w", err))
	}
	s.canceller, _ = cfg.Store.(store.Canceller)
	if q, ok := cfg.Store.(store.Queue); ok && s.canceller != nil {
		s.queue = q
	}
	close(s.ready)
	s.startListener()
	s.startWork()
	return s, nil
}

// logRecovered reports the runs left behind that recovery ended ERROR.
func (s *Server) logRecovered(runs []*store.Run, err error) {
	if err != nil {
		s.log.Error("agentos: recover runs left behind", "err", err)
	}
	for _, r := range runs {
		s.log.Warn("agentos: a run left behind by a process that died ended ERROR \"interrupted\"",
			"run_id", r.ID, "component", r.ComponentID, "replica", r.Replica)
	}
}

// startWork starts taking background runs from the shared queue, stopped by
// Shutdown. It does nothing when the store queues no runs.
func (s *Server) startWork() {
	if s.queue == nil {
		return
	}
	serves := make([]store.Component, 0, len(s.components)) // the queues this replica works
	for _, c := range s.components {
		serves = append(serves, store.Component{Kind: c.kind, ID: c.id})
	}
	ctx, stop := context.WithCancel(context.Background())
	s.stopWork, s.workDone = stop, make(chan struct{})
	go func() {
		defer close(s.workDone)
		if err := s.queue.Work(ctx, s.cfg.Workers, serves, s.runJob); err != nil {
			s.log.Error("agentos: queue stopped: this replica no longer starts background runs", "err", err)
		}
	}()
}

func (s *Server) defaults() {
	c := &s.cfg
	if c.StreamGrace == 0 {
		c.StreamGrace = DefaultStreamGrace
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.CancelWait <= 0 {
		c.CancelWait = DefaultCancelWait
	}
	if c.KeepRuns <= 0 {
		c.KeepRuns = DefaultKeepRuns
	}
	if c.OSID == "" {
		c.OSID = DefaultOSID
	}
	if c.Replica == "" {
		c.Replica = store.DefaultReplica()
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.registry == nil {
		s.registry = new(run.Registry)
	}
}

func (s *Server) addComponents(rec run.Recorder) error {
	for i, w := range s.cfg.Workflows {
		if w == nil {
			return fmt.Errorf("agentos: workflow %d is nil", i)
		}
		if err := w.Validate(); err != nil {
			return fmt.Errorf("agentos: %w", err)
		}
		if w.Registry == nil {
			w.Registry = s.registry
		}
		if w.Recorder == nil {
			w.Recorder = rec
		}
		c := &component{kind: store.KindWorkflow, id: w.WorkflowID(), name: w.Name,
			description: w.Description, registry: w.Registry, start: w.Start, resumable: !w.NotResumable}
		c.info = workflowDetail{workflowSummary: c.workflowSummary(), Steps: workflow.Describe(w.Steps)}
		if err := s.add(c); err != nil {
			return err
		}
		s.workflows = append(s.workflows, c)
	}
	for i, a := range s.cfg.Agents {
		if err := a.Validate(); err != nil {
			return fmt.Errorf("agentos: agent %d: %w", i, err)
		}
		if a.Registry == nil {
			a.Registry = s.registry
		}
		if a.Recorder == nil {
			a.Recorder = rec
		}
		c := &component{kind: store.KindAgent, id: a.AgentID(), name: a.Name,
			registry: a.Registry, start: a.Start}
		c.info = agentDetail(a)
		if err := s.add(c); err != nil {
			return err
		}
		s.agents = append(s.agents, c)
	}
	return nil
}

func (s *Server) add(c *component) error {
	if c.id == "" {
		return fmt.Errorf("agentos: a %s has neither id nor name", c.kind)
	}
	key := string(c.kind) + "/" + c.id
	if _, dup := s.components[key]; dup {
		return fmt.Errorf("agentos: two %ss with id %q", c.kind, c.id)
	}
	s.components[key] = c
	return nil
}

// Handler returns the server's HTTP handler, to mount in a program's own
// http.Server; call Shutdown before exiting so that every run ends.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves HTTP on addr until ctx is done, then shuts down gracefully (see
// ServeListener).
func (s *Server) Serve(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("agentos: %w", err)
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener serves HTTP on ln until ctx is done, then stops accepting
// connections and new runs, lets running runs go on for Config.ShutdownGrace,
// cancels those still running, and returns once every run has ended and, when runs
// are recorded, its end is persisted. The caller closes the store after it returns.
// Streams are not cut by a write timeout; request headers must arrive within 10 s.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var serveErr error
	select {
	case serveErr = <-served:
	case <-ctx.Done():
	}
	// Stop accepting at once; open streams end with their runs.
	closed := make(chan error, 1)
	go func() { closed <- srv.Shutdown(context.WithoutCancel(ctx)) }()
	grace, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownGrace)
	defer cancel()
	err := s.Shutdown(grace)
	// Every run has ended: handlers still open are ending; give them a moment.
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
		srv.Close()
		<-closed
	}
	if serveErr == nil {
		serveErr = <-served
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return errors.Join(serveErr, err)
}

// Shutdown stops the server from starting runs, cancels the background runs still
// queued, lets running runs go on until ctx is done, then cancels them, and returns
// once every run has ended and its end is persisted. It closes the recorder the
// server made for Config.Store, not the store. Requests to start a run are answered
// 503 from then on.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	first := !s.closing
	s.closing = true
	if first {
		s.shutdown = make(chan struct{})
	}
	queued := s.pending
	s.pending = nil
	done := s.shutdown
	s.mu.Unlock()
	if !first {
		<-done
		return nil
	}
	if s.stopWork != nil {
		s.stopWork() // take no more runs from the shared queue
	}
	s.cancelQueued(queued)
	ended := make(chan struct{})
	go func() { s.wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-ctx.Done():
		s.cancelAll(errors.New(ReasonShutdown))
		<-ended
	}
	s.cancelAll(errors.New(ReasonShutdown))
	if s.workDone != nil {
		<-s.workDone
	}
	s.stopListener()
	var err error
	if s.ownRec != nil {
		err = s.ownRec.Close()
	}
	close(done)
	return err
}

// cancelQueued ends queued background runs CANCELLED: each is started on a
// cancelled context, so that it ends at once and its end is recorded.
func (s *Server) cancelQueued(queued []*liveRun) {
	if len(queued) == 0 {
		return
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New(ReasonShutdown))
	for _, lr := range queued {
		if lr.claim() {
			s.begin(ctx, lr)
		}
	}
}
