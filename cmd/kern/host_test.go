package main

import (
	"context"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kern-dev/kern/config"
	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store/postgres"
	"github.com/kern-dev/kern/workflow"
)

// The tests of this file check that every way of running a workflow goes through
// one run host, so that a run started by a Go program, or by a local `kern run`,
// is cancelled by `kern cancel` sent to a `kern serve` on the same database, and
// that a run a killed `kern run` left behind is taken over by a `kern serve`.

// holdWorkflow returns replicas.yaml's hold workflow (a word a second for two
// minutes), as a Go program would declare it.
func holdWorkflow(t *testing.T) *workflow.Workflow {
	t.Helper()
	c, err := config.Load(replicasYAML)
	if err != nil {
		t.Fatal(err)
	}
	for _, wf := range c.Workflows {
		if wf.WorkflowID() == "hold" {
			return wf
		}
	}
	t.Fatalf("%s declares no workflow hold", replicasYAML)
	return nil
}

// TestHostRunCancelledByKernCancel: a workflow run started by a plain Go program
// through a host (no HTTP) on PostgreSQL is cancelled by `kern cancel <id>` sent to
// a `kern serve` on the same database, and ends CANCELLED with its partial content.
func TestHostRunCancelledByKernCancel(t *testing.T) {
	t.Parallel()
	db, _ := replicaDB(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, err := host.New(st, host.Options{Replica: "program", Workflows: []*workflow.Workflow{holdWorkflow(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv := startReplica(t, db, "S", replicasYAML, testLease)

	r, err := h.Start(host.Request{Kind: run.KindWorkflow, Component: "hold", Input: "hold on"})
	if err != nil {
		t.Fatal(err)
	}
	x := r.Exec()
	firstContent := make(chan struct{})
	go func() {
		_ = x.Log.Follow(ctx, 0, func(ev *run.Event) bool {
			if ev.Event == run.EventRunContent {
				close(firstContent)
				return false
			}
			return true
		})
	}()
	select {
	case <-firstContent:
	case <-time.After(patience):
		t.Fatal("no content from the program's run")
	}
	srv.awaitStored(t, r.ID())

	sent := time.Now()
	res := runKern(t, "cancel", r.ID(), "--server", srv.url)
	if res.code != 0 || res.stdout != "run "+r.ID()+": CANCELLED\n" {
		t.Fatalf("kern cancel of the program's run: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	select {
	case <-x.Done():
	case <-time.After(patience):
		t.Fatal("kern cancel answered CANCELLED, the program's run still runs")
	}
	t.Logf("kern cancel (a process started, its request, the cancel across processes, the answer): %v", time.Since(sent).Round(time.Millisecond))
	out := x.Output()
	if out.Status != run.StatusCancelled || !strings.Contains(out.Content, "hold") || out.Reason != run.ReasonRequested {
		t.Fatalf("the program's run ended %s %q (reason %q); want CANCELLED with its partial content", out.Status, out.Content, out.Reason)
	}
	if ri := srv.getRun(t, r.ID()); ri.Status != run.StatusCancelled || ri.Replica != "program" {
		t.Errorf("the run read on the server: %s on %q, want CANCELLED on program", ri.Status, ri.Replica)
	}
	stop(t, srv)
}

// TestLocalRunCancelledByKernCancel: a local `kern run --db …` hears a cancel sent
// by `kern cancel` to a `kern serve` on the same database: it shows the cancel and
// exits 1. On PostgreSQL the cancel is notified; on a SQLite file, polled.
func TestLocalRunCancelledByKernCancel(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"postgres", "sqlite"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var db string
			if backend == "postgres" {
				db, _ = replicaDB(t)
			} else {
				db = sqliteDB(t)
			}
			srv := startReplica(t, db, "S", replicasYAML, testLease)
			c := start(t, "run", "hold", "hold on", "--db", db, "--config", replicasYAML, "--replica", "cli")
			id := c.stdout.waitFor(t, runStarted)
			c.stdout.waitFor(t, regexp.MustCompile(`hold`)) // the first streamed word
			srv.awaitStored(t, id)

			res := runKern(t, "cancel", id, "--server", srv.url)
			if res.code != 0 || res.stdout != "run "+id+": CANCELLED\n" {
				t.Fatalf("kern cancel of the local run: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
			}
			if code := c.wait(t); code != 1 {
				t.Fatalf("kern run exited %d after a cancel from another process, want 1:\n%s%s", code, c.stdout, c.stderr)
			}
			if out := c.stdout.String(); !regexp.MustCompile(`CANCELLED after \S+: run ` + id + ` \(cancelled by request\)\n$`).MatchString(out) {
				t.Fatalf("kern run's output does not end with the cancellation:\n%s", out)
			}
			if ri := srv.getRun(t, id); ri.Status != run.StatusCancelled || ri.Replica != "cli" {
				t.Errorf("the run read on the server: %s on %q, want CANCELLED on cli", ri.Status, ri.Replica)
			}
			stop(t, srv)
		})
	}
}

// TestKilledLocalRunTakenOver: a local `kern run` killed (SIGKILL) after the first
// step of a three-step workflow leaves its run behind; a `kern serve` on the same
// database takes it over once its lease lapsed and resumes it from the second
// step.
func TestKilledLocalRunTakenOver(t *testing.T) {
	t.Parallel()
	db, schema := replicaDB(t)
	srv := startReplica(t, db, "S", replicasYAML, testLease)
	c := start(t, "run", "three-steps", "survive", "--db", db, "--config", replicasYAML, "--replica", "cli",
		"--lease", testLease.String())
	id := c.stdout.waitFor(t, runStarted)
	srv.awaitStored(t, id)
	f := srv.follow(t, "three-steps", id, -1)
	f.waitFor(t, "the first step's end", step(run.EventStepCompleted, id, 0))
	// The second step streams once the first one's output is checkpointed.
	f.waitFor(t, "the second step's content", func(ev sseEvent) bool {
		return ev.Event.Event == run.EventRunContent && ev.Origin != nil && ev.StepIndex != nil && *ev.StepIndex == 1
	})
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.wait(t)

	ri := srv.awaitRun(t, id, "ended", ended)
	if ri.Status != run.StatusCompleted || ri.Replica != "S" || len(ri.StepResults) != 3 {
		t.Fatalf("run %s left behind by a killed kern run: %s on %q with %d step results; want COMPLETED on S with 3",
			id, ri.Status, ri.Replica, len(ri.StepResults))
	}
	evs := f.end(t)
	checkEvents(t, "the server following the run across the takeover", evs, 0, id, run.EventWorkflowCompleted)
	if n := count(evs, step(run.EventStepStarted, id, 0)); n != 1 {
		t.Errorf("the first step started %d times, want once (finished steps are not run again):\n%s", n, summary(evs))
	}
	checkRunsEnded(t, schema)
	stop(t, srv)
}
