package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kern-dev/kern/client"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

type runsOptions struct {
	server      string
	securityKey string
	db          string
	session     string
	status      string
	limit       int
}

// runRow is one line of the runs table.
type runRow struct {
	id, component, status, replica string
	created                        time.Time
}

func newRunsCmd() *cobra.Command {
	o := runsOptions{}
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List recent runs",
		Long: `List recent runs, newest first, as a table: run id, workflow (or agent:<id>, team:<id>),
status, creation time and the replica that executed it.

The runs are read from the database --db names (default sqlite://kern.db), or
from a kern server with --server (its GET /runs). --session and
--status narrow the list; --limit bounds it.`,
		Example: `  kern runs
  kern runs --status CANCELLED --limit 5
  kern runs --db postgres://kern:secret@db.internal/kern --session 8d1c...
  kern runs --server http://127.0.0.1:7777`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.server != "" && cmd.Flags().Changed("db") {
				return fmt.Errorf("give --server or --db, not both")
			}
			return listRuns(cmd, o)
		},
	}
	f := cmd.Flags()
	addServerFlags(cmd, &o.server, &o.securityKey, "", "read the runs from the kern server at this URL instead of a database")
	f.StringVar(&o.db, "db", defaultDB, "database to read the runs from: sqlite://path or postgres://...")
	f.StringVar(&o.session, "session", "", "only the runs of this session")
	f.StringVar(&o.status, "status", "", "only the runs with this status: PENDING, RUNNING, COMPLETED, PAUSED, CANCELLED or ERROR")
	f.IntVar(&o.limit, "limit", 20, "at most this many runs")
	cmd.AddCommand(newRunsShowCmd())
	return cmd
}

func listRuns(cmd *cobra.Command, o runsOptions) error {
	st := run.Status(strings.ToUpper(o.status))
	switch st {
	case "", run.StatusPending, run.StatusRunning, run.StatusCompleted, run.StatusPaused, run.StatusCancelled, run.StatusError:
	default:
		return fmt.Errorf("--status %q: want PENDING, RUNNING, COMPLETED, PAUSED, CANCELLED or ERROR", o.status)
	}
	if o.limit <= 0 {
		return fmt.Errorf("--limit must be positive, not %d", o.limit)
	}
	var (
		rows []runRow
		err  error
	)
	if o.server != "" {
		rows, err = serverRuns(cmd.Context(), o, st)
	} else {
		rows, err = storeRuns(cmd.Context(), o, st)
	}
	if err != nil {
		return err
	}
	return printRuns(cmd.OutOrStdout(), rows)
}

func storeRuns(ctx context.Context, o runsOptions, st run.Status) ([]runRow, error) {
	s, err := openStore(ctx, o.db)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	recs, err := s.ListRuns(ctx, store.RunQuery{SessionID: o.session, Status: st, Limit: o.limit})
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", redact(o.db), err)
	}
	rows := make([]runRow, 0, len(recs))
	for _, r := range recs {
		rows = append(rows, runRow{id: r.ID, component: componentName(r.Kind, r.ComponentID),
			status: string(r.Status), replica: r.Replica, created: r.CreatedAt})
	}
	return rows, nil
}

// componentName is how the runs table names a run's workflow (its id), agent
// (agent:<id>) or team (team:<id>).
func componentName(kind run.Kind, id string) string {
	if kind == run.KindAgent || kind == run.KindTeam {
		return string(kind) + ":" + id
	}
	return id
}

// serverRuns lists the runs of the server's database (GET /runs): every
// workflow's, agent's and team's, or a session's, newest first, filtered and
// limited by the server.
func serverRuns(ctx context.Context, o runsOptions, st run.Status) ([]runRow, error) {
	c, err := newClient(o.server, o.securityKey)
	if err != nil {
		return nil, err
	}
	rs, err := c.Runs(ctx, client.RunQuery{SessionID: o.session, Status: st, Limit: o.limit})
	if err != nil {
		return nil, err
	}
	rows := make([]runRow, 0, len(rs))
	for _, r := range rs {
		kind, id := run.KindWorkflow, r.WorkflowID
		switch {
		case r.TeamID != "" && id == "":
			kind, id = run.KindTeam, r.TeamID
		case id == "":
			kind, id = run.KindAgent, r.AgentID
		}
		rows = append(rows, runRow{id: r.RunID, component: componentName(kind, id), status: string(r.Status),
			replica: r.Replica, created: time.Unix(r.CreatedAt, 0)})
	}
	return rows, nil
}

func printRuns(w io.Writer, rows []runRow) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "no runs")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN ID\tWORKFLOW\tSTATUS\tCREATED\tREPLICA")
	for _, r := range rows {
		replica := r.replica
		if replica == "" {
			replica = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.id, r.component, r.status,
			r.created.Local().Format(time.DateTime), replica)
	}
	return tw.Flush()
}
