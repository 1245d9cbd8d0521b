// Package agentos serves kern's workflows and agents over HTTP, with an API compatible
// with Agno's AgentOS: runs started by form or JSON, streamed as server-sent events,
// resumed after a dropped connection, cancelled on request, and read back from the
// store.
//
// New builds a Server from a Config around a host.Host, which owns the runs: the
// server parses a request, calls the host, and answers. Handler gives its
// http.Handler, to mount in a program's own http.Server, and Serve runs it on an
// address until its context is done, then shuts down gracefully. Every error is
// answered as JSON {"detail": "..."}.
package agentos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/team"
	"github.com/kern-dev/kern/telemetry"
	"github.com/kern-dev/kern/workflow"
)

// Defaults of a Config's zero fields.
const (
	DefaultStreamGrace    = 5 * time.Second
	DefaultHeartbeat      = 15 * time.Second
	DefaultMaxBodyBytes   = 1 << 20
	DefaultMaxAttachments = 10
	DefaultWorkers        = host.DefaultWorkers
	DefaultQueueSize      = host.DefaultQueueSize
	DefaultShutdownGrace  = host.DefaultShutdownGrace
	DefaultCancelWait     = 10 * time.Second
	DefaultKeepRuns       = host.DefaultKeepRuns
	DefaultOSID           = "kern"

	// DefaultReadHeaderTimeout bounds how long a request's headers take to arrive.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultBodyTimeout bounds how long a request's body takes to arrive.
	DefaultBodyTimeout = time.Minute
)

// CancelAtOnce, as Config.StreamGrace, cancels a streamed run the moment its last
// client disconnects, with no grace period to resume in.
const CancelAtOnce time.Duration = -1

// Reasons the server gives for the cancels it makes itself.
const (
	ReasonClientDisconnected = "client disconnected"
	ReasonShutdown           = host.ReasonShutdown
)

// Config is what a Server serves and how. Only a Host, or Workflows or Agents, are
// needed; every other field has a default.
type Config struct {
	// Host runs the server's workflows and agents: the server answers HTTP by
	// calling it, and its Shutdown (or Serve's end) shuts the host down too.
	// Without one, New makes one from Workflows, Agents, Store, Registry,
	// Recorder, Workers, QueueSize, MaxRuns, KeepRuns, Replica, Lease,
	// ShutdownGrace and Logger. With one, New refuses Workflows, Agents, Store and
	// Recorder (they are the host's), and Registry, Workers, QueueSize, MaxRuns,
	// KeepRuns, Replica and Lease are the host's options, not read here.
	Host      *host.Host
	Workflows []*workflow.Workflow
	Agents    []*agent.Agent
	// Teams are served under /teams, as Agents are under /agents.
	Teams []*team.Team
	// Store is where finished runs, their events and sessions are read back from.
	// With a Store and no Recorder, the server records runs to Store itself. Nil keeps
	// runs in memory only (the last KeepRuns finished runs). The caller closes the
	// Store after Serve (or Shutdown) has returned. A Store that is a
	// store.Canceller (PostgreSQL, SQLite) carries cancels between the servers
	// sharing it: the host listens for them until it is shut down.
	Store store.Store
	// Registry cancels the runs. Nil means a new one. It is set on every workflow and
	// agent whose Registry is nil, so that cancels over HTTP reach their runs.
	Registry *run.Registry
	// Recorder persists runs; it is set on every workflow and agent that has none.
	// The caller closes a Recorder it passed, after Serve (or Shutdown) has returned.
	Recorder run.Recorder
	// Metrics, if set, is served at GET /metrics (the Prometheus text format),
	// behind the security key unless MetricsPublic is set.
	Metrics       http.Handler
	MetricsPublic bool
	// Traces, if set, holds the spans of recent runs, served at
	// GET /runs/{run_id}/trace, GET /traces and GET /traces/{trace_id}.
	Traces *telemetry.SpanStore
	// SecurityKey, if set, makes every route but /health require the header
	// "Authorization: Bearer <SecurityKey>" (the scheme in any case, as RFC 6750
	// allows).
	SecurityKey string
	// CORSOrigins are the origins ("https://app.example.com", scheme://host[:port])
	// whose web pages may call the server: their CORS preflights are answered and
	// their requests carry CORS headers. A browser's state-changing request (POST,
	// DELETE) from any other origin than the server's own is refused with 403.
	// Requests with no Origin header (programs: Agno's client, curl) are not
	// concerned.
	CORSOrigins []string
	// AllowedHosts are the host names (without port) a server listening on a
	// loopback address answers to besides localhost and loopback addresses, e.g.
	// the name a reverse proxy on the same machine passes on. Any other Host is
	// refused with 421, so that a web page whose name was rebound to 127.0.0.1 (DNS
	// rebinding) cannot reach the server. Only Serve and ServeListener check Host.
	AllowedHosts []string
	// ReadHeaderTimeout bounds how long a request's headers take to arrive
	// (DefaultReadHeaderTimeout if 0), in Serve and ServeListener.
	ReadHeaderTimeout time.Duration
	// BodyTimeout bounds how long a request's body takes to arrive once its headers
	// have (DefaultBodyTimeout if 0, no bound if negative): a slower one is answered
	// 408 and its connection closed. Answers, streams included, are not bounded.
	BodyTimeout time.Duration
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
	// MaxAttachments bounds the images and files of one run
	// (DefaultMaxAttachments if 0): more are answered 422. MaxAttachmentBytes
	// bounds the bytes of each (MaxBodyBytes if 0): a larger one is answered 413.
	// MaxBodyBytes bounds them all together: raise it for runs given images.
	MaxAttachments     int
	MaxAttachmentBytes int64
	// Workers bounds the background runs executing at once (DefaultWorkers if 0), and
	// QueueSize the background runs waiting for a worker (DefaultQueueSize if 0); a
	// background run beyond both is refused with 429.
	Workers   int
	QueueSize int
	// MaxRuns bounds the foreground runs (streamed or answered as JSON) the host
	// executes at once (0: no bound; see host.Options.MaxRuns), a host's option
	// read only when the server makes its host. MaxStreams bounds the open SSE
	// streams, of new runs and of resumptions (0: no bound). A request beyond
	// either is answered 503 with a Retry-After header (RetryAfter) and a JSON
	// detail, before any run starts. Background runs are bounded by Workers and
	// QueueSize instead; cancels, reads and /health are never refused, so that a
	// cancel gets through to a saturated server.
	MaxRuns    int
	MaxStreams int
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

// Server serves a host's workflows and agents over HTTP. It is safe for concurrent
// use.
type Server struct {
	cfg         Config
	log         *slog.Logger
	host        *host.Host
	store       store.Store // the host's: where runs and sessions are read back from
	workflows   []*component
	agents      []*component
	teams       []*component
	components  map[string]*component // "workflow/<id>" or "agent/<id>"
	streams     streams
	streamSlots slots    // Config.MaxStreams
	hijacked    hijacked // the streams served from connections taken over
	beats       *beats   // the heartbeats of the streams
	keepStreams bool     // tests: streams are served by their handlers, never taken over
	handler     http.Handler
	table       []route        // what the mux serves, /openapi.json and /docs describe
	mux         *http.ServeMux // built from table
	apiDoc      []byte         // GET /openapi.json's answer, built from table
	mcpServer   *sdk.Server    // what /mcp serves (see mcp.go)
}

// component is a workflow or an agent, as routes see it.
type component struct {
	kind        run.Kind
	id          string
	name        string
	description string
	info        any // what GET /workflows/{id} or /agents/{id} answers
}

// New returns a Server for cfg. Without cfg.Host it makes one, which validates
// every workflow and agent, and refuses duplicate ids.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, log: cfg.Logger, host: cfg.Host, components: make(map[string]*component)}
	s.defaults()
	s.beats = newBeats(s.cfg.Heartbeat)
	if s.host != nil && (len(cfg.Workflows) > 0 || len(cfg.Agents) > 0 || len(cfg.Teams) > 0 || cfg.Store != nil || cfg.Recorder != nil) {
		return nil, errors.New("agentos: Config.Host is set: give the workflows, agents, store and recorder to the host")
	}
	if s.host == nil {
		h, err := host.New(cfg.Store, host.Options{
			Workflows: cfg.Workflows, Agents: cfg.Agents, Teams: cfg.Teams, Replica: s.cfg.Replica, Lease: cfg.Lease,
			Workers: cfg.Workers, QueueSize: cfg.QueueSize, MaxRuns: cfg.MaxRuns, Registry: cfg.Registry, Recorder: cfg.Recorder,
			KeepRuns: cfg.KeepRuns, ShutdownGrace: s.cfg.ShutdownGrace, Logger: s.log,
		})
		if err != nil {
			return nil, fmt.Errorf("agentos: %w", err)
		}
		s.host = h
	}
	s.cfg.Replica, s.store = s.host.Replica(), s.host.Store()
	s.streamSlots.max = int64(max(cfg.MaxStreams, 0))
	s.addComponents()
	var err error
	if s.handler, err = s.guard(s.routes()); err == nil {
		if s.apiDoc, err = s.openAPI(); err != nil {
			err = fmt.Errorf("agentos: openapi document: %w", err)
		}
	}
	if err != nil {
		if cfg.Host == nil {
			s.host.Shutdown(context.Background())
		}
		return nil, err
	}
	return s, nil
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
	if c.MaxAttachments <= 0 {
		c.MaxAttachments = DefaultMaxAttachments
	}
	if c.MaxAttachmentBytes <= 0 {
		c.MaxAttachmentBytes = c.MaxBodyBytes
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.CancelWait <= 0 {
		c.CancelWait = DefaultCancelWait
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.BodyTimeout == 0 {
		c.BodyTimeout = DefaultBodyTimeout
	}
	if c.OSID == "" {
		c.OSID = DefaultOSID
	}
	if s.log == nil {
		s.log = slog.Default()
	}
}

// addComponents lists the host's workflows and agents as the routes describe them.
func (s *Server) addComponents() {
	for _, w := range s.host.Workflows() {
		c := &component{kind: run.KindWorkflow, id: w.WorkflowID(), name: w.Name, description: w.Description}
		c.info = workflowDetail{workflowSummary: c.workflowSummary(), Steps: workflow.Describe(w.Steps)}
		s.components[string(c.kind)+"/"+c.id] = c
		s.workflows = append(s.workflows, c)
	}
	for _, a := range s.host.Agents() {
		c := &component{kind: run.KindAgent, id: a.AgentID(), name: a.Name, info: agentDetail(a)}
		s.components[string(c.kind)+"/"+c.id] = c
		s.agents = append(s.agents, c)
	}
	s.addTeams()
}

// Host returns the host that runs the server's workflows and agents.
func (s *Server) Host() *host.Host { return s.host }

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
// Streams are not cut by a write timeout; a request's headers must arrive within
// Config.ReadHeaderTimeout and its body within Config.BodyTimeout. On a loopback
// address, requests must name it in Host (see Config.AllowedHosts).
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(ln net.Listener) context.Context { return withListener(context.Background(), ln) },
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

// Shutdown shuts the server's host down (see host.Host.Shutdown): it starts no
// more runs (requests to start one are answered 503 from then on), the background
// runs still queued end CANCELLED, running runs go on until ctx is done, then are
// cancelled, and it returns once every run has ended and its end is persisted, and
// the streams served from connections taken over from net/http (see hijackStream),
// which http.Server.Shutdown does not wait for, have written their runs' ends (until
// ctx is done, or for a second if it is done already; then they are cut). It
// closes the recorder the host made for the store, not the store.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.host.Shutdown(ctx)
	s.hijacked.close(ctx)
	s.closeMCP()
	return err
}
