package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kern-dev/kern/client"
	"github.com/kern-dev/kern/config"
	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/telemetry"
	"github.com/kern-dev/kern/workflow"
)

type runOptions struct {
	config       string
	server       string
	securityKey  string
	session      string
	db           string
	replica      string
	lease        time.Duration
	openAIModel  string
	scriptedPace time.Duration
	observe      observeOptions
	noInput      bool
}

func newRunCmd() *cobra.Command {
	o := runOptions{}
	cmd := &cobra.Command{
		Use:   "run <workflow_id> <message>",
		Short: "Run a workflow and show it live; Ctrl-C cancels the run",
		Long: `Run a workflow on a message and show the run live: which step is running, the
streamed text, tool calls and the elapsed time, then a final line with the run's
status.

Without --server the workflow runs in this process (the reference
article-creation-workflow, on OpenAI when OPENAI_API_KEY is set and on the
scripted model otherwise), and the run is kept in the database --db names, so
that "kern runs" lists it. With --server it runs on that kern server.

Ctrl-C (SIGINT) cancels the run, waits for it to end, shows its end and exits 130
(SIGTERM: 143). --trace prints the run's span tree with durations at its end;
--otel exports the run's OpenTelemetry spans over OTLP/HTTP (OTEL_* variables),
both for a local run. Otherwise the exit code is 0 when the run completed and 1 when it
ended CANCELLED (cancelled from elsewhere) or ERROR, or could not run.

A run that pauses for a person (a step that requires a confirmation or input, a
tool call that does) shows what it waits for and asks on the terminal (y/n, or
the values); the run then goes on. With --no-input, or when the input ends, the run
is left paused (kept in the database: "kern approvals" and "kern approve" on a
server on it continue it), kern run says how to continue it and exits 4.`,
		Example: `  kern run article-creation-workflow "Write a very long story about a dragon who learns to code."
  kern run article-creation-workflow "The state of Go in 2026" --server http://127.0.0.1:7777
  kern run article-creation-workflow "Continue the story" --session 8d1c... --db sqlite://runs.db
  kern run article "Dragons and code" --config kern.yaml
  kern run article-creation-workflow "Dragons" --trace`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.server != "" && (cmd.Flags().Changed("db") || o.config != "") {
				return fmt.Errorf("give --server or --db/--config, not both: a run on a server runs the server's workflows and is kept in its database")
			}
			if o.server != "" {
				return runRemote(cmd, o, args[0], args[1])
			}
			return runLocal(cmd, o, args[0], args[1])
		},
	}
	f := cmd.Flags()
	addServerFlags(cmd, &o.server, &o.securityKey, "", "run on the kern server at this URL instead of in this process")
	f.StringVar(&o.session, "session", "", "session id the run belongs to (default: a new session)")
	f.StringVar(&o.db, "db", defaultDB, "database keeping a local run: sqlite://path or postgres://...")
	f.StringVar(&o.replica, "replica", "", "name of this process in the run's record (default host-pid)")
	f.DurationVar(&o.lease, "lease", store.DefaultLease, "how long the run's claim lasts unless renewed: if this process dies, a kern serve on the same database takes the run over about this long after")
	f.StringVar(&o.config, "config", "", "kern.yaml declaring the workflows to run locally (default: the reference article workflow)")
	f.BoolVar(&o.noInput, "no-input", false, "never ask on the terminal: a run that pauses for a person is left paused (exit 4)")
	addModelFlags(cmd, &o.openAIModel, &o.scriptedPace)
	f.BoolVar(&o.observe.otel, "otel", false, otelHelp)
	f.BoolVar(&o.observe.printTrace, "trace", false, "print the run's span tree with durations once it ended (a local run)")
	return cmd
}

// localWorkflow returns the workflow with the given id: from the kern.yaml o names,
// or the reference workflow; a line saying what it runs on; and what to close once
// the run has ended (the file's MCP servers).
func localWorkflow(o runOptions, workflowID string) (*workflow.Workflow, string, func() error, error) {
	none := func() error { return nil }
	if o.config == "" {
		m := chooseModels(o.openAIModel, o.scriptedPace)
		wf := referenceWorkflow(m)
		if workflowID != wf.WorkflowID() {
			return nil, "", none, fmt.Errorf("unknown workflow %q: this kern runs %q locally (or use --config or --server)", workflowID, wf.WorkflowID())
		}
		return wf, m.label, none, nil
	}
	c, err := config.Load(o.config)
	if err != nil {
		return nil, "", none, err
	}
	ids := make([]string, len(c.Workflows))
	for i, wf := range c.Workflows {
		if wf.WorkflowID() == workflowID {
			return wf, "as declared in " + o.config, c.Close, nil
		}
		ids[i] = wf.WorkflowID()
	}
	c.Close()
	return nil, "", none, fmt.Errorf("unknown workflow %q: %s declares %s", workflowID, o.config, strings.Join(ids, ", "))
}

// runLocal runs the reference workflow in this process, through a host recording
// it in the store: a cancel sent to any process on the same database (kern cancel
// through a kern serve) reaches it.
func runLocal(cmd *cobra.Command, o runOptions, workflowID, message string) error {
	wf, label, closeConfig, err := localWorkflow(o, workflowID)
	if err != nil {
		return err
	}
	defer closeConfig() // after the host and the store (the deferred call runs last)
	if o.session == "" {
		o.session = run.NewID()
	}
	tel, err := o.observe.setup(cmd.Context(), o.replica)
	if err != nil {
		return err
	}
	defer func() { _ = shutdownTelemetry(tel) }()
	st, err := openStore(cmd.Context(), o.db)
	if err != nil {
		return err
	}
	// kern serve recovers runs left behind and works the queue: this process runs
	// its one run only.
	h, err := host.New(st, host.Options{Workflows: []*workflow.Workflow{wf}, Replica: o.replica, Lease: o.lease,
		NoRecovery: true, NoWork: true, Telemetry: tel.Observer,
		Logger: slog.New(telemetry.LogHandler(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn})))})
	if err != nil {
		return errors.Join(err, st.Close())
	}
	cn := watchSignals(cmd.ErrOrStderr(), func(ctx context.Context, id string) (run.Status, error) {
		st, _, err := h.Cancel(ctx, id, run.ReasonRequested, true)
		return st, err
	})
	defer cn.stop()
	fmt.Fprintln(cmd.ErrOrStderr(), "model:", label)

	r, err := h.Start(host.Request{Kind: run.KindWorkflow, Component: wf.WorkflowID(), Input: message, SessionID: o.session})
	if err != nil {
		return joinClose(fmt.Errorf("start run: %w", err), h, st)
	}
	cn.setID(r.ID())
	p := newProgress(cmd.OutOrStdout())
	ask := newAsker(cmd.InOrStdin(), cmd.ErrOrStderr(), cn.fired)
	for {
		x := r.Exec()
		for ev := range x.Stream {
			p.show(ev)
		}
		if err = x.PersistErr(); err != nil {
			err = fmt.Errorf("run %s: not stored: %w", r.ID(), err)
			break
		}
		if p.paused == nil {
			break
		}
		d, ok := decide(o, ask, p.paused)
		if !ok {
			break
		}
		p.paused = nil
		r, err = h.Continue(cmd.Context(), host.ContinueRequest{Kind: run.KindWorkflow, Component: wf.WorkflowID(), RunID: r.ID(), Steps: d.Steps, Tools: d.Tools})
		if err != nil {
			err = fmt.Errorf("continue run: %w", err)
			break
		}
	}
	sig := cn.stop()
	err = joinClose(err, h, st) // the run's spans are ended once the host is shut down
	if o.observe.printTrace {
		printTrace(cmd.OutOrStdout(), tel, r.ID())
	}
	return outcome(p, sig, err, "continue it from a kern serve on "+o.db)
}

// decide asks for the decisions a paused run waits for, unless --no-input.
func decide(o runOptions, ask *asker, ev *run.Event) (client.Decisions, bool) {
	if o.noInput {
		return client.Decisions{}, false
	}
	return ask.decide(ev)
}

// joinClose shuts the host down, then closes the store, and joins their errors to
// err.
func joinClose(err error, h *host.Host, st store.Store) error {
	if cerr := h.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if cerr := st.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close database: %w", cerr)
	}
	return err
}

// runRemote runs a workflow on a server, reading its events as they stream.
func runRemote(cmd *cobra.Command, o runOptions, workflowID, message string) error {
	c, err := newClient(o.server, o.securityKey)
	if err != nil {
		return err
	}
	cn := watchSignals(cmd.ErrOrStderr(), func(ctx context.Context, id string) (run.Status, error) {
		ans, err := c.CancelRun(ctx, id, true)
		if err != nil {
			return "", err
		}
		return ans.Status, nil
	})
	defer cn.stop()
	// Not the command's context: a Ctrl-C cancels the run, and the stream then
	// brings its end.
	req := client.RunRequest{Message: message, SessionID: o.session}
	p := newProgress(cmd.OutOrStdout())
	ask := newAsker(cmd.InOrStdin(), cmd.ErrOrStderr(), cn.fired)
	wf := c.Workflow(workflowID)
	events := wf.Stream(context.Background(), req)
	var serr error
	for {
		for ev, err := range events {
			if err != nil {
				serr = err
				break
			}
			if p.topID == "" {
				cn.setID(ev.RunID)
			}
			p.show(ev)
		}
		if serr != nil || p.paused == nil {
			break
		}
		d, ok := decide(o, ask, p.paused)
		if !ok {
			break
		}
		p.paused = nil
		events = wf.Continue(context.Background(), p.topID, d)
	}
	return outcome(p, cn.stop(), serr, "--server "+o.server)
}

// outcome is how kern run ends: 130 (143) once a signal cancelled the run, nil
// when it completed, 4 when it was left paused (where says where it can be
// continued), an error otherwise.
func outcome(p *progress, sig os.Signal, err error, where string) error {
	switch {
	case err != nil && p.end == nil:
		return err
	case sig == nil && p.paused != nil:
		id := p.paused.RunID
		return &exitError{code: exitPaused, err: fmt.Errorf("run %s is paused, waiting for a person: %s "+
			"(kern approvals; kern approve %s, or kern reject %s --note ...)", id, where, id, id)}
	case sig != nil:
		code := 130
		if sig == syscall.SIGTERM {
			code = 143
		}
		return &exitError{code: code, err: err}
	case err != nil:
		return err
	case p.end == nil:
		return fmt.Errorf("the stream ended before run %s did", p.topID)
	case p.status() != run.StatusCompleted:
		return fmt.Errorf("run %s ended %s", p.end.RunID, p.status())
	}
	return nil
}

// canceller cancels a run on the first SIGINT or SIGTERM, once the run's id is
// known; a second signal after that exits at once.
type canceller struct {
	sigc  chan os.Signal
	fired chan struct{} // closed on the first signal
	ids   chan string   // the run's id, sent once
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	mu  sync.Mutex
	sig os.Signal // the signal that cancelled the run
}

func watchSignals(stderr io.Writer, cancel func(ctx context.Context, id string) (run.Status, error)) *canceller {
	c := &canceller{sigc: make(chan os.Signal, 2), ids: make(chan string, 1), done: make(chan struct{}), fired: make(chan struct{})}
	signal.Notify(c.sigc, os.Interrupt, syscall.SIGTERM)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		var sig os.Signal
		select {
		case sig = <-c.sigc:
		case <-c.done:
			return
		}
		c.mu.Lock()
		c.sig = sig
		c.mu.Unlock()
		close(c.fired)
		fmt.Fprintf(stderr, "\n%s: cancelling the run (again to exit at once)\n", sig)
		var id string
		select {
		case id = <-c.ids:
		case <-c.done:
			return
		}
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.force(stderr) }()
		ctx, stop := context.WithTimeout(context.Background(), time.Minute)
		defer stop()
		st, err := cancel(ctx, id)
		if err != nil {
			fmt.Fprintf(stderr, "cancel run %s: %v\n", id, err)
			return
		}
		fmt.Fprintf(stderr, "run %s: %s\n", id, st)
	}()
	return c
}

// force exits at once on a second signal.
func (c *canceller) force(stderr io.Writer) {
	select {
	case <-c.sigc:
		fmt.Fprintln(stderr, "kern: interrupted again: exiting without waiting for the run")
		os.Exit(130)
	case <-c.done:
	}
}

// setID tells the canceller the run's id; call it once.
func (c *canceller) setID(id string) { c.ids <- id }

// stop stops watching signals, waits for a cancel in flight, and returns the signal
// that cancelled the run, if any.
func (c *canceller) stop() os.Signal {
	c.once.Do(func() {
		signal.Stop(c.sigc)
		close(c.done)
		c.wg.Wait()
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sig
}
