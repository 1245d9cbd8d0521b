package main

import (
	"context"
	"fmt"
	"io"
	"slices"
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
		Long: `List recent runs, newest first, as a table: run id, workflow (or agent:<id>),
status, creation time and the replica that executed it.

The runs are read from the database --db names (default sqlite://kern.db), or
from a kern server with --server. --session and
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

func componentName(kind run.Kind, id string) string {
	if kind == run.KindAgent {
		return "agent:" + id
	}
	return id
}

// serverRuns lists a session's runs, or the runs of every workflow and agent the
// server offers, merged newest first.
func serverRuns(ctx context.Context, o runsOptions, st run.Status) ([]runRow, error) {
	c, err := newClient(o.server, o.securityKey)
	if err != nil {
		return nil, err
	}
	q := client.RunQuery{Status: st, Limit: o.limit}
	if o.session != "" {
		rs, err := c.SessionRuns(ctx, o.session, q)
		if err != nil {
			return nil, err
		}
		return outputRows(rs, o.limit), nil
	}
	cfg, err := c.Config(ctx)
	if err != nil {
		return nil, err
	}
	var comps []client.Component
	for _, w := range cfg.Workflows {
		comps = append(comps, c.Workflow(w.ID))
	}
	for _, a := range cfg.Agents {
		comps = append(comps, c.Agent(a.ID))
	}
	var all []*client.Run
	for _, comp := range comps {
		rs, err := comp.Runs(ctx, q)
		if err != nil {
			return nil, err
		}
		all = append(all, rs...)
	}
	return outputRows(all, o.limit), nil
}

func outputRows(rs []*client.Run, limit int) []runRow {
	rows := make([]runRow, 0, len(rs))
	for _, r := range rs {
		name := r.WorkflowID
		if name == "" {
			name = componentName(run.KindAgent, r.AgentID)
		}
		rows = append(rows, runRow{id: r.RunID, component: name, status: string(r.Status),
			replica: r.Replica, created: time.Unix(r.CreatedAt, 0)})
	}
	slices.SortStableFunc(rows, func(a, b runRow) int { return b.created.Compare(a.created) })
	return rows[:min(len(rows), limit)]
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
