package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newCancelCmd() *cobra.Command {
	var server, key string
	cmd := &cobra.Command{
		Use:   "cancel <run_id>",
		Short: "Cancel a run on a kern server",
		Long: `Cancel a run on a kern server (POST /runs/{run_id}/cancel), wait for it to end,
and print its status: CANCELLED for a run that was running, its final status for a
run that had already ended, and PENDING for a run the server does not know yet,
whose cancel is kept so that the run is cancelled as soon as it starts.

The server is --server, else $KERN_SERVER, else http://127.0.0.1:7777.`,
		Example: `  kern cancel 0f8e5c1a-3b7d-4e0f-9a51-2c6d8e7f1a2b
  kern cancel 0f8e5c1a-3b7d-4e0f-9a51-2c6d8e7f1a2b --server https://kern.internal:7777`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(server, key)
			if err != nil {
				return err
			}
			st, err := c.cancel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "run %s: %s\n", args[0], st)
			return err
		},
	}
	addServerFlags(cmd, &server, &key, envOr(envServer, defaultServer), "URL of the kern server")
	return cmd
}
