package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kern-dev/kern/client"
	"github.com/kern-dev/kern/run"
)

func newAttachCmd() *cobra.Command {
	var server, key string
	var cancel bool
	cmd := &cobra.Command{
		Use:   "attach <run_id>",
		Short: "Follow a run's live stream on a kern server",
		Long: `Follow a run of any workflow, agent or team on a kern server, from any replica
on its database: its events from the first (steps, streamed text, tool calls),
then the live ones until it ends, as kern run shows them; the same stream the
console shows (GET .../runs/{run_id}/resume).

Ctrl-C detaches: the run goes on. (A streamed run whose own client has left is
cancelled once the server's stream grace period passes with no client following
it; a background run is never cancelled for a client leaving.) With --cancel,
kern attach cancels the run, follows it to its end and prints the status it
reached.

Exit codes: 0 the run completed (with --cancel: it ended, however), or kern
attach was detached; 1 the run ended otherwise, or an error; 4 the run is
paused, waiting for a person (kern approvals; kern approve, kern reject), as
kern run exits.`,
		Example: `  kern attach 0f8e5c1a-3b7d-4e0f-9a51-2c6d8e7f1a2b
  kern attach 0f8e5c1a-3b7d-4e0f-9a51-2c6d8e7f1a2b --cancel --server https://kern.internal:7777`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(server, key)
			if err != nil {
				return err
			}
			return attach(cmd, c, args[0], cancel)
		},
	}
	addServerFlags(cmd, &server, &key, envOr(envServer, defaultServer), "URL of the kern server")
	cmd.Flags().BoolVar(&cancel, "cancel", false, "cancel the run, then follow it to its end")
	return cmd
}

func attach(cmd *cobra.Command, c *client.Client, id string, cancel bool) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := c.GetRun(ctx, id)
	if err != nil {
		return err
	}
	comp := c.Workflow(r.WorkflowID)
	switch {
	case r.WorkflowID != "":
	case r.TeamID != "":
		comp = c.Team(r.TeamID)
	default:
		comp = c.Agent(r.AgentID)
	}
	cancelled := make(chan error, 1)
	if cancel {
		go func() {
			ans, err := c.CancelRun(context.WithoutCancel(ctx), id, true)
			if err == nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "run %s: %s\n", id, ans.Status)
			}
			cancelled <- err
		}()
	}
	p := newProgress(cmd.OutOrStdout())
	var serr error
	for ev, err := range comp.Resume(ctx, id, -1) {
		if err != nil {
			serr = err
			break
		}
		if p.show(ev) {
			break
		}
	}
	if cancel {
		if err := <-cancelled; err != nil {
			return fmt.Errorf("cancel run %s: %w", id, err)
		}
	}
	switch {
	case ctx.Err() != nil && cmd.Context().Err() == nil && p.end == nil:
		fmt.Fprintf(cmd.ErrOrStderr(), "\ndetached from run %s: it goes on\n", id)
		return nil
	case serr != nil && !errors.Is(serr, context.Canceled):
		return serr
	case p.paused != nil && cancel:
		return nil // the cancel's answer told the status it reached
	case p.paused != nil:
		return outcome(p, nil, nil, "--server "+c.BaseURL())
	case p.end == nil:
		return fmt.Errorf("the stream ended before run %s did", id)
	case cancel || p.status() == run.StatusCompleted:
		return nil
	}
	return fmt.Errorf("run %s ended %s", id, p.status())
}
