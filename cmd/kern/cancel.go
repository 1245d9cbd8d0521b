package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/kern-dev/kern/client"
	"github.com/kern-dev/kern/run"
)

// exitUnknownRun is kern cancel's exit code for a run id no server knows.
const exitUnknownRun = 3

func newCancelCmd() *cobra.Command {
	var server, key string
	cmd := &cobra.Command{
		Use:   "cancel <run_id>",
		Short: "Cancel a run on a kern server",
		Long: `Cancel a run on a kern server (POST /runs/{run_id}/cancel), wait for it to end,
and print its status: CANCELLED for a run that was running, its final status for a
run that had already ended.

A run id the server does not know prints PENDING, says so on stderr and exits 3:
the cancel is kept for 24 h all the same, so that a run with this id is cancelled
as soon as it starts (a typing mistake costs nothing).

The server is --server, else $KERN_SERVER, else http://127.0.0.1:7777.

Exit codes: 0 the run is cancelled or had ended; 3 no run with this id is known;
1 any other error.`,
		Example: `  kern cancel 0f8e5c1a-3b7d-4e0f-9a51-2c6d8e7f1a2b
  kern cancel 0f8e5c1a-3b7d-4e0f-9a51-2c6d8e7f1a2b --server https://kern.internal:7777`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(server, key)
			if err != nil {
				return err
			}
			id := args[0]
			ans, err := c.CancelRun(cmd.Context(), id, true)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(cmd.OutOrStdout(), "run %s: %s\n", id, ans.Status); err != nil {
				return err
			}
			// Once the cancel's answer says whether the server knew the run, this
			// line reads that instead.
			unknown, err := unknownRun(cmd.Context(), c, id, ans.Status)
			if err != nil || !unknown {
				return err
			}
			return &exitError{code: exitUnknownRun,
				err: fmt.Errorf("no run with id %s is known; the intent is kept for 24 h", id)}
		},
	}
	addServerFlags(cmd, &server, &key, envOr(envServer, defaultServer), "URL of the kern server")
	return cmd
}

// unknownRun reports whether no run with the cancelled id is known: the cancel
// answered PENDING (the intent is kept for a run not started yet) and GET
// /runs/{run_id} answers 404 once the intent is kept, so that a run that started
// meanwhile counts as known.
func unknownRun(ctx context.Context, c *client.Client, id string, answered run.Status) (bool, error) {
	if answered != run.StatusPending {
		return false, nil
	}
	_, err := c.GetRun(ctx, id)
	if ce, ok := errors.AsType[*client.Error](err); ok && ce.StatusCode == http.StatusNotFound {
		return true, nil
	}
	return false, err
}
