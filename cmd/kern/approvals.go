package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kern-dev/kern/client"
)

func newApprovalsCmd() *cobra.Command {
	var server, key, agentID, workflowID, teamID, userID string
	var limit int
	cmd := &cobra.Command{
		Use:   "approvals",
		Short: "List the decisions paused runs wait for",
		Long: `List the decisions paused runs wait for on a kern server (GET /approvals), newest
first, as a table: approval id (the paused run's id), agent, team or workflow,
what it waits for (confirmation, user_input or external_execution), the tool
call or the workflow step, and since when.

Resolve one with "kern approve <id>" or "kern reject <id> --note ...". The server
is --server, else $KERN_SERVER, else http://127.0.0.1:7777.`,
		Example: `  kern approvals
  kern approvals --agent mailer
  kern approve 0f8e5c1a-...
  kern reject 0f8e5c1a-... --note "not to this address"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit <= 0 {
				return fmt.Errorf("--limit must be positive, not %d", limit)
			}
			c, err := newClient(server, key)
			if err != nil {
				return err
			}
			list, err := c.Approvals(cmd.Context(), client.ApprovalQuery{AgentID: agentID, WorkflowID: workflowID, TeamID: teamID, UserID: userID, Limit: limit})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(list) == 0 {
				_, err := fmt.Fprintln(out, "no pending approvals")
				return err
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "APPROVAL ID\tSOURCE\tWAITS FOR\tCALL\tSINCE")
			for _, a := range list {
				source := "agent:" + a.AgentID
				switch a.SourceType {
				case "workflow":
					source = a.WorkflowID
				case "team":
					source = "team:" + a.TeamID
				}
				since := time.Unix(a.CreatedAt, 0).Local().Format(time.DateTime)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.ID, source, a.PauseType, describeCall(a), since)
			}
			return tw.Flush()
		},
	}
	addServerFlags(cmd, &server, &key, envOr(envServer, defaultServer), "URL of the kern server")
	f := cmd.Flags()
	f.StringVar(&agentID, "agent", "", "only the approvals of this agent")
	f.StringVar(&workflowID, "workflow", "", "only the approvals of this workflow")
	f.StringVar(&teamID, "team", "", "only the approvals of this team")
	f.StringVar(&userID, "user", "", "only the approvals of this user's runs")
	f.IntVar(&limit, "limit", 100, "at most this many approvals")
	return cmd
}

// describeCall says what an approval is about: the tool call with its arguments,
// or the workflow step.
func describeCall(a client.Approval) string {
	if a.SourceType == "workflow" {
		return "step " + a.ToolName
	}
	args := strings.TrimSpace(string(a.ToolArgs))
	if len(args) > 60 {
		args = args[:57] + "..."
	}
	return a.ToolName + "(" + args + ")"
}

func newResolveCmd(approve bool) *cobra.Command {
	var server, key, note, result, by string
	var fields []string
	use, short := "reject <approval_id>", "Reject what a paused run waits for, and let it go on"
	long := `Reject every call (or the workflow step) a paused run waits for
(POST /approvals/{id}/resolve): the model reads --note as the call's result, or the
workflow skips the step, runs a condition's else steps or ends CANCELLED, as the
step's on_reject says. The run goes on on the server.`
	example := `  kern reject 0f8e5c1a-... --note "not to this address"
  kern reject 0f8e5c1a-... --note "not today" --by ops`
	if approve {
		example = `  kern approve 0f8e5c1a-...
  kern approve 0f8e5c1a-... --field address="1 Lovelace Row" --by ops`
		use, short = "approve <approval_id>", "Approve what a paused run waits for, and let it go on"
		long = `Approve every call (or the workflow step) a paused run waits for
(POST /approvals/{id}/resolve): confirmed calls run, --field name=value gives a
user input's values (a JSON value, or else the text), --result an external
execution's result. The run goes on on the server.`
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: long + `

The server is --server, else $KERN_SERVER, else http://127.0.0.1:7777.`,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			values := map[string]any{}
			for _, kv := range fields {
				name, v, ok := strings.Cut(kv, "=")
				if !ok || name == "" {
					return fmt.Errorf("--field %q: want name=value", kv)
				}
				var parsed any
				if json.Unmarshal([]byte(v), &parsed) != nil {
					parsed = v
				}
				values[name] = parsed
			}
			c, err := newClient(server, key)
			if err != nil {
				return err
			}
			a, err := c.Resolve(cmd.Context(), args[0], client.Resolution{Approved: approve, ResolvedBy: by, Note: note, Values: values, Result: result})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "approval %s: %s; run %s goes on\n", a.ID, a.Status, a.RunID)
			return err
		},
	}
	addServerFlags(cmd, &server, &key, envOr(envServer, defaultServer), "URL of the kern server")
	f := cmd.Flags()
	f.StringVar(&by, "by", "", "who resolves it, kept as resolved_by")
	if approve {
		f.StringArrayVar(&fields, "field", nil, "a user input's value, name=value (repeatable)")
		f.StringVar(&result, "result", "", "an external execution's result")
	} else {
		f.StringVar(&note, "note", "", "why: the model reads it as the rejected call's result")
	}
	return cmd
}
