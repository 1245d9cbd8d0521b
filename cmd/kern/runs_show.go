package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kern-dev/kern/run"
)

// shownRun is a run as kern runs show prints it, read from a database or a server.
type shownRun struct {
	out     run.Output
	kind    run.Kind
	comp    string
	replica string
	events  []*run.Event
	note    string // why the events are not shown
}

func newRunsShowCmd() *cobra.Command {
	o := runsOptions{}
	var events bool
	cmd := &cobra.Command{
		Use:   "show <run_id>",
		Short: "Print a stored run: status, content, steps, events",
		Long: `Print one run as it is stored: its status (and why it was cancelled or failed),
session, user, replica, input, metrics, content (a cancelled run's partial text),
the results of its steps, and every event it emitted.

The run is read from the database --db names (default sqlite://kern.db), or from a
kern server with --server (a run still running shows no events there: kern attach
follows it).`,
		Example: `  kern runs show 0f8e5c1a-3b7d-4e0f-9a51-2c6d8e7f1a2b
  kern runs show 0f8e5c1a-3b7d-4e0f-9a51-2c6d8e7f1a2b --server http://127.0.0.1:7777 --events=false`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.server != "" && cmd.Flags().Changed("db") {
				return fmt.Errorf("give --server or --db, not both")
			}
			var (
				r   *shownRun
				err error
			)
			if o.server != "" {
				r, err = serverRun(cmd.Context(), o, args[0], events)
			} else {
				r, err = storeRun(cmd.Context(), o, args[0], events)
			}
			if err != nil {
				return err
			}
			return printRun(cmd.OutOrStdout(), r, events)
		},
	}
	f := cmd.Flags()
	addServerFlags(cmd, &o.server, &o.securityKey, "", "read the run from the kern server at this URL instead of a database")
	f.StringVar(&o.db, "db", defaultDB, "database to read the run from: sqlite://path or postgres://...")
	f.BoolVar(&events, "events", true, "print the run's events")
	return cmd
}

func storeRun(ctx context.Context, o runsOptions, id string, events bool) (*shownRun, error) {
	s, err := openStore(ctx, o.db)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	rec, err := s.GetRun(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("run %s in %s: %w", id, redact(o.db), err)
	}
	r := &shownRun{out: rec.Output, kind: rec.Kind, comp: rec.ComponentID, replica: rec.Replica}
	r.out.RunID, r.out.Status, r.out.SessionID, r.out.UserID, r.out.Input = rec.ID, rec.Status, rec.SessionID, rec.UserID, rec.Input
	if r.out.CreatedAt == 0 {
		r.out.CreatedAt = rec.CreatedAt.Unix()
	}
	for from := 0; events; {
		evs, err := s.Events(ctx, id, from, 512)
		if err != nil {
			return nil, fmt.Errorf("events of run %s: %w", id, err)
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			var ev run.Event
			if err := json.Unmarshal(e.Data, &ev); err != nil {
				return nil, fmt.Errorf("event %d of run %s: %w", e.Index, id, err)
			}
			r.events = append(r.events, &ev)
			from = e.Index + 1
		}
	}
	return r, nil
}

func serverRun(ctx context.Context, o runsOptions, id string, events bool) (*shownRun, error) {
	c, err := newClient(o.server, o.securityKey)
	if err != nil {
		return nil, err
	}
	got, err := c.GetRun(ctx, id)
	if err != nil {
		return nil, err
	}
	r := &shownRun{out: got.Output, kind: run.KindWorkflow, comp: got.WorkflowID, replica: got.Replica}
	comp := c.Workflow(got.WorkflowID)
	switch {
	case got.WorkflowID != "":
	case got.TeamID != "":
		r.kind, r.comp, comp = run.KindTeam, got.TeamID, c.Team(got.TeamID)
	default:
		r.kind, r.comp, comp = run.KindAgent, got.AgentID, c.Agent(got.AgentID)
	}
	if !events {
		return r, nil
	}
	if !got.Status.Terminal() {
		r.note = "the run is " + string(got.Status) + ": kern attach " + id + " follows it"
		return r, nil
	}
	for ev, err := range comp.Resume(ctx, id, -1) {
		if err != nil {
			return nil, err
		}
		r.events = append(r.events, ev)
	}
	return r, nil
}

func printRun(w io.Writer, r *shownRun, events bool) error {
	out := &r.out
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	status := string(out.Status)
	if why := out.Reason + out.Error; why != "" {
		status += " (" + why + ")"
	}
	m := out.Metrics
	metrics := fmt.Sprintf("%d tokens in, %d out, %d total; %s", m.InputTokens, m.OutputTokens, m.TotalTokens, m.Duration.Round(time.Millisecond))
	if m.TimeToFirstToken > 0 {
		metrics += fmt.Sprintf("; first token after %s", m.TimeToFirstToken.Round(time.Millisecond))
	}
	for _, kv := range [][2]string{
		{"run", out.RunID}, {"of", componentName(r.kind, r.comp)}, {"status", status},
		{"session", out.SessionID}, {"user", out.UserID}, {"replica", r.replica},
		{"created", time.Unix(out.CreatedAt, 0).Local().Format(time.DateTime)},
		{"input", compact(out.Input, 200)}, {"metrics", metrics},
	} {
		if kv[1] != "" {
			fmt.Fprintf(tw, "%s\t%s\n", kv[0], kv[1])
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\ncontent:\n%s\n", out.Content)
	if len(out.StepResults) > 0 {
		fmt.Fprintln(w, "\nsteps:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		printSteps(tw, out.StepResults, "  ")
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if !events {
		return nil
	}
	if r.note != "" {
		_, err := fmt.Fprintf(w, "\nevents: not shown: %s\n", r.note)
		return err
	}
	fmt.Fprintf(w, "\nevents (%d):\n", len(r.events))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, ev := range r.events {
		detail := ev.Content + ev.Reason + ev.Error
		if ev.Tool != nil {
			detail = ev.Tool.ToolName + " " + string(ev.Tool.ToolArgs) + " " + ev.Tool.Result
		}
		step := ""
		if ev.Origin != nil {
			step = ev.StepName
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", ev.EventIndex, ev.Event, step, compact(detail, 80))
	}
	return tw.Flush()
}

func printSteps(w io.Writer, steps []run.StepResult, indent string) {
	for _, s := range steps {
		fmt.Fprintf(w, "%s%s\t%s\t%s\t%s\n", indent, s.StepName, s.Status, s.Metrics.Duration.Round(time.Millisecond),
			compact(strings.TrimSpace(s.Content+" "+s.Error), 80))
		printSteps(w, s.Steps, indent+"  ")
	}
}
