package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Defaults shared by the commands.
const (
	defaultAddr   = "127.0.0.1:7777"
	defaultDB     = "sqlite://kern.db"
	defaultServer = "http://127.0.0.1:7777"
)

// Environment variables the commands read.
const (
	envSecurityKey = "KERN_SECURITY_KEY"
	envServer      = "KERN_SERVER"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "kern",
		Short: "kern runs LLM agents and workflows, and serves them over HTTP",
		Long: `kern runs LLM agents and multi-step workflows with a live stream of events,
and cancels any run at any moment without losing what it produced.

"kern serve" serves the workflows over an HTTP API compatible with Agno's AgentOS,
keeping runs in an embedded SQLite database (or PostgreSQL). "kern run" runs a
workflow from the terminal, locally or on a server, and cancels it on Ctrl-C.

Without OPENAI_API_KEY the workflows run on the scripted model: pre-written text,
offline, no LLM called.`,
		Example: `  kern serve
  kern run article-creation-workflow "Write a very long story about a dragon who learns to code."
  kern run article-creation-workflow "A story about Go" --server http://127.0.0.1:7777
  kern runs --limit 10
  kern cancel 0f8e5c1a-...
  kern version`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w (see %q)", err, cmd.CommandPath()+" --help")
	})
	root.AddCommand(newServeCmd(), newRunCmd(), newCancelCmd(), newRunsCmd(), newVersionCmd(), newAttachCmd())
	root.AddCommand(newApprovalsCmd(), newResolveCmd(true), newResolveCmd(false))
	return root
}

// envOr returns the environment variable name, or def when it is unset or empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
