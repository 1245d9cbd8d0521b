package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kern-dev/kern/client"
)

// addServerFlags adds --server and --security-key to cmd.
func addServerFlags(cmd *cobra.Command, server, key *string, def, serverHelp string) {
	cmd.Flags().StringVar(server, "server", def, serverHelp)
	cmd.Flags().StringVar(key, "security-key", "", "the server's security key (default $"+envSecurityKey+")")
}

// newClient returns a client of the kern server at the URL server, sending the
// security key key, else $KERN_SECURITY_KEY.
func newClient(server, key string) (*client.Client, error) {
	if key == "" {
		key = os.Getenv(envSecurityKey)
	}
	c, err := client.New(server, nil, client.WithSecurityKey(key), client.WithUserAgent(client.UserAgentCLI))
	if err != nil {
		return nil, fmt.Errorf("--server %q is not an http:// or https:// URL", server)
	}
	return c, nil
}
