package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

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

func componentName(kind store.Kind, id string) string {
	if kind == store.KindAgent {
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
	q := url.Values{"limit": {strconv.Itoa(o.limit)}}
	if st != "" {
		q.Set("status", string(st))
	}
	var outs []serverRun
	if o.session != "" {
		if err := c.getJSON(ctx, "/sessions/"+url.PathEscape(o.session)+"/runs?"+q.Encode(), &outs); err != nil {
			return nil, err
		}
		return outputRows(outs, o.limit), nil
	}
	var cfg struct {
		Workflows []struct {
			ID string `json:"id"`
		} `json:"workflows"`
		Agents []struct {
			ID string `json:"id"`
		} `json:"agents"`
	}
	if err := c.getJSON(ctx, "/config", &cfg); err != nil {
		return nil, err
	}
	var paths []string
	for _, w := range cfg.Workflows {
		paths = append(paths, "/workflows/"+url.PathEscape(w.ID)+"/runs?"+q.Encode())
	}
	for _, a := range cfg.Agents {
		paths = append(paths, "/agents/"+url.PathEscape(a.ID)+"/runs?"+q.Encode())
	}
	for _, p := range paths {
		var page []serverRun
		if err := c.getJSON(ctx, p, &page); err != nil {
			return nil, err
		}
		outs = append(outs, page...)
	}
	return outputRows(outs, o.limit), nil
}

// serverRun is a run as a kern server answers it: its output and its replica.
type serverRun struct {
	run.Output
	Replica string `json:"replica"`
}

func outputRows(outs []serverRun, limit int) []runRow {
	rows := make([]runRow, 0, len(outs))
	for _, out := range outs {
		name := out.WorkflowID
		if name == "" {
			name = componentName(store.KindAgent, out.AgentID)
		}
		rows = append(rows, runRow{id: out.RunID, component: name, status: string(out.Status),
			replica: out.Replica, created: time.Unix(out.CreatedAt, 0)})
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
