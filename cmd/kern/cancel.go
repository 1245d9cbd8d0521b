package main

import (
	"fmt"

	"github.com/spf13/cobra"

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
			if ans.Known || ans.Status != run.StatusPending {
				return nil
			}
			return &exitError{code: exitUnknownRun,
				err: fmt.Errorf("no run with id %s is known; the intent is kept for 24 h", id)}
		},
	}
	addServerFlags(cmd, &server, &key, envOr(envServer, defaultServer), "URL of the kern server")
	return cmd
}
