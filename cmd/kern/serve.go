package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/agentos"
	"github.com/kern-dev/kern/config"
	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/internal/procs"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/team"
	"github.com/kern-dev/kern/telemetry"
	"github.com/kern-dev/kern/workflow"
)

type serveOptions struct {
	addr          string
	db            string
	config        string
	securityKey   string
	replica       string
	lease         time.Duration
	workers       int
	maxRuns       int
	maxStreams    int
	shutdownGrace time.Duration
	openAIModel   string
	scriptedPace  time.Duration
	corsOrigins   []string
	allowedHosts  []string
	headerTimeout time.Duration
	bodyTimeout   time.Duration
	observe       observeOptions
}

func newServeCmd() *cobra.Command {
	o := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the workflows over an HTTP API compatible with Agno's AgentOS",
		Long: `Serve the workflows over HTTP: runs started by form or JSON, streamed as
server-sent events, resumed after a dropped connection, cancelled on request
(POST /workflows/{workflow_id}/runs/{run_id}/cancel or POST /runs/{run_id}/cancel),
and read back from the database. A browser at / gets the console: the workflows,
a form to start a run, each run live with a "Cancel run" button, the runs, the
sessions, the replicas and the queue.

It serves the reference "Article Creation Workflow" (id article-creation-workflow):
a research agent with Hacker News tools, then a writing agent. They run on OpenAI's
Responses API when OPENAI_API_KEY is set, on the scripted model (offline,
pre-written text) otherwise; the start-up log says which.

Runs are kept in the database --db names: SQLite (sqlite://path, the default
sqlite://kern.db) or PostgreSQL (postgres://user:pass@host/db). With a security key
(--security-key or KERN_SECURITY_KEY), every route but /health requires
"Authorization: Bearer <key>" (the console's page is public, and asks for the key).

Web pages may call the server only from the origins --cors-origins names (a
browser's POST or DELETE from another site is refused with 403; programs, which
send no Origin header, are not concerned). On a loopback address (the default)
the server answers only to requests naming localhost or a loopback address in
their Host header, and the names --allowed-hosts adds (e.g. a reverse proxy's),
so that a web page cannot reach it by rebinding its own name to 127.0.0.1.

Background runs (background=true, answered 202) are queued in the database
before they are acknowledged: a server killed with runs queued loses none, and the
next one on the database starts them; --workers bounds those this process executes
at once.

Under load the server sheds new work rather than slowing every stream and cancel:
--max-runs bounds the runs streamed or answered as JSON that this process
executes at once, --max-streams the open event streams (new runs streamed and
resumptions). A request beyond either is answered 503 with "Retry-After: 2" and a
JSON detail, before any run starts; cancels, reads and /health are never refused.

Several replicas may serve one PostgreSQL database behind a load balancer: a
cancel, a status query or a stream resumption may go to any of them; background
runs are queued in the database and started by any replica with a free worker;
and when a replica dies, another takes its runs over once their lease (--lease)
lapses, resuming each workflow run after its last finished step (a workflow
declared "resumable: false" ends ERROR "interrupted" instead). --replica names
this process in GET /config and in the runs it executes.

Telemetry is off unless asked for, and then costs a run nothing: --otel exports
OpenTelemetry spans following the GenAI semantic conventions (a span per run,
step, nested agent run, model request and tool call; cancels with their reason,
source and latency) over OTLP/HTTP, configured by the standard OTEL_* variables;
a traceparent header on POST .../runs makes the run part of the caller's trace.
--metrics serves GET /metrics (Prometheus text format; behind the security key
unless --metrics-public). --keep-traces N keeps the spans of the last N traces
in memory, served at GET /runs/{run_id}/trace and GET /traces. Logs go to stderr,
as text or JSON (--log-format), lines about a run carrying its run_id and, when
traced, trace_id and span_id.

On SIGINT or SIGTERM the server stops accepting, lets running runs go on for
--shutdown-grace, cancels those still running, persists their end, and exits 0.`,
		Example: `  kern serve
  kern serve --addr :7777 --db postgres://kern:secret@db.internal/kern
  KERN_SECURITY_KEY=s3cret kern serve --db sqlite:///var/lib/kern/kern.db
  kern serve --replica web-1 --shutdown-grace 30s
  kern serve --max-runs 500 --max-streams 2000
  kern serve --cors-origins https://app.example.com,http://localhost:3000
  kern serve --replica web-2 --addr :7778 --db 'postgres://db.internal/kern?schema=kern' --lease 10s
  OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 kern serve --otel --metrics --log-format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return serve(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", defaultAddr, "address to listen on (host:port; :7777 listens on every interface)")
	f.StringVar(&o.db, "db", defaultDB, "database: sqlite://path or postgres://...")
	f.StringVar(&o.config, "config", "", "kern.yaml declaring models, agents and workflows (default: the reference article workflow)")
	f.StringVar(&o.securityKey, "security-key", "", "require \"Authorization: Bearer <key>\" on every route but /health (default $"+envSecurityKey+")")
	f.StringVar(&o.replica, "replica", "", "name of this process in the runs it records (default host-pid)")
	f.DurationVar(&o.lease, "lease", store.DefaultLease, "how long a run's claim lasts unless renewed: a replica that dies is noticed, and its runs taken over, about this long after")
	f.IntVar(&o.workers, "workers", agentos.DefaultWorkers, "background runs this replica executes at once")
	f.IntVar(&o.maxRuns, "max-runs", 0, "runs (streamed or answered as JSON; background ones not counted) this replica executes at once; beyond: 503 with Retry-After (0: no limit)")
	f.IntVar(&o.maxStreams, "max-streams", 0, "open event streams (runs streamed and resumptions) this replica serves at once; beyond: 503 with Retry-After (0: no limit)")
	f.DurationVar(&o.shutdownGrace, "shutdown-grace", agentos.DefaultShutdownGrace, "on SIGINT/SIGTERM, how long running runs may go on before they are cancelled (0: at once)")
	f.StringSliceVar(&o.corsOrigins, "cors-origins", nil, "origins (scheme://host[:port], comma-separated) whose web pages may call the server")
	f.StringSliceVar(&o.allowedHosts, "allowed-hosts", nil, "host names a server on a loopback address answers to besides localhost and loopback addresses (comma-separated)")
	f.DurationVar(&o.headerTimeout, "read-header-timeout", agentos.DefaultReadHeaderTimeout, "how long a request's headers may take to arrive")
	f.DurationVar(&o.bodyTimeout, "body-timeout", agentos.DefaultBodyTimeout, "how long a request's body may take to arrive (slower: 408; negative: no bound); streamed answers are not bounded")
	addModelFlags(cmd, &o.openAIModel, &o.scriptedPace)
	addServeObserveFlags(cmd, &o.observe)
	return cmd
}

// addModelFlags adds the flags choosing the reference workflow's models.
func addModelFlags(cmd *cobra.Command, openAIModel *string, pace *time.Duration) {
	cmd.Flags().StringVar(openAIModel, "openai-model", defaultOpenAIModel, "OpenAI model id, when OPENAI_API_KEY is set")
	cmd.Flags().DurationVar(pace, "scripted-pace", defaultScriptedPace, "scripted model: pause between streamed words")
}

func serve(cmd *cobra.Command, o serveOptions) error {
	var declared *config.Config
	if o.config != "" {
		// Validated before anything else starts: errors point at the file's lines.
		c, err := config.Load(o.config)
		if err != nil {
			return err
		}
		declared = c
	}
	if o.maxRuns < 0 || o.maxStreams < 0 {
		return fmt.Errorf("--max-runs and --max-streams take 0 (no limit) or more, not %d and %d", o.maxRuns, o.maxStreams)
	}
	if o.replica == "" {
		o.replica = store.DefaultReplica()
	}
	if o.securityKey == "" {
		o.securityKey = os.Getenv(envSecurityKey)
	}
	grace := o.shutdownGrace
	if grace <= 0 {
		grace = time.Nanosecond // agentos reads 0 as its default
	}
	log, err := o.observe.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tel, err := o.observe.setupLogged(ctx, o.replica, log)
	if err != nil {
		return err
	}
	if isSQLite(o.db) {
		procs.SetForBlockingIO()
	}
	st, err := openStore(ctx, o.db)
	if err != nil {
		return errors.Join(err, shutdownTelemetry(tel))
	}
	err = serveWith(ctx, stop, log, st, o, grace, declared, tel)
	if declared != nil {
		err = errors.Join(err, declared.Close()) // the MCP servers, once no run uses them
	}
	// In this order: every run has ended and its end is written (Serve returned),
	// then the store lets go of the database, then the last spans go out.
	err = errors.Join(err, st.Close(), shutdownTelemetry(tel))
	if err == nil {
		log.Info("kern stopped")
	}
	return err
}

// serveWith serves the reference workflow, recorded into st, until ctx is done;
// stop stops the signals from cancelling ctx.
func serveWith(ctx context.Context, stop func(), log *slog.Logger, st store.Store, o serveOptions, grace time.Duration, declared *config.Config, tel *telemetry.Providers) error {
	var workflows []*workflow.Workflow
	var agents []*agent.Agent
	var teams []*team.Team
	label := "as declared in " + o.config
	if declared != nil {
		workflows, agents, teams = declared.Workflows, declared.Agents, declared.Teams
	} else {
		m := chooseModels(o.openAIModel, o.scriptedPace)
		workflows, label = []*workflow.Workflow{referenceWorkflow(m)}, m.label
	}
	ids := make([]string, len(workflows))
	for i, w := range workflows {
		ids[i] = w.WorkflowID()
	}
	h, err := host.New(st, host.Options{
		Workflows: workflows,
		Agents:    agents,
		Teams:     teams,
		Replica:   o.replica,
		Lease:     o.lease,
		Workers:   o.workers,
		MaxRuns:   o.maxRuns,
		Logger:    log,
		Telemetry: tel.Observer,
	})
	if err != nil {
		return err
	}
	srv, err := agentos.New(agentos.Config{Host: h, SecurityKey: o.securityKey, ShutdownGrace: grace, Logger: log,
		CORSOrigins: o.corsOrigins, AllowedHosts: o.allowedHosts, MaxStreams: o.maxStreams,
		ReadHeaderTimeout: o.headerTimeout, BodyTimeout: o.bodyTimeout,
		Metrics: tel.MetricsHandler(), MetricsPublic: o.observe.metricsPublic, Traces: tel.Recent})
	if err != nil {
		return errors.Join(err, h.Shutdown(ctx))
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.addr, err)
	}
	log.Info("kern serving", "addr", ln.Addr().String(), "db", redact(o.db), "model", label,
		"workflows", strings.Join(ids, ","), "replica", o.replica, "auth", o.securityKey != "",
		"max_runs", o.maxRuns, "max_streams", o.maxStreams, "procs", runtime.GOMAXPROCS(0), "otel", o.observe.otel, "metrics", o.observe.metrics)
	unwatch := context.AfterFunc(ctx, func() {
		log.Info("shutting down: stopping runs, then closing the database (signal again to force)",
			"grace", o.shutdownGrace)
		stop() // a second signal ends the process at once
	})
	defer unwatch()
	return srv.ServeListener(ctx, ln)
}
