package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kern-dev/kern/client"
)

// phase is one measure of a runs test: runs spread over some servers.
type phase struct {
	Servers      []string
	Runs         int            // runs requested
	Ends         map[string]int // terminal events received: WorkflowCompleted, ...
	PerServer    []int          // runs completed by each of Servers
	Failed       int            // runs that did not start, or whose stream broke
	FirstErr     string
	Took         time.Duration
	RunsPerSec   float64 // completed runs per second
	EventsPerSec float64 // SSE events received per second
	Duration     latency // a run's time from its request to its terminal event
}

// completed is the number of runs that ended WorkflowCompleted.
func (p *phase) completed() int { return p.Ends["WorkflowCompleted"] }

// runsSummary is the result of a runs test.
type runsSummary struct {
	Workflow    string
	InProcess   bool
	Background  bool
	Concurrency int
	Warmup      int
	Phases      []phase
}

// String is the readable summary.
func (s *runsSummary) String() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	where := ""
	if s.InProcess {
		where = " (in-process server, store memory)"
	}
	how := "each streamed to its end"
	if s.Background {
		how = "each queued (background) and followed to its end"
	}
	p("kern-load: runs of workflow %q%s, %d in flight per server, %s; %d warm-up runs per server",
		s.Workflow, where, s.Concurrency, how, s.Warmup)
	for _, ph := range s.Phases {
		var per []string
		for i, srv := range ph.Servers {
			per = append(per, fmt.Sprintf("%s %d", srv, ph.PerServer[i]))
		}
		p("%d server(s): %s", len(ph.Servers), strings.Join(per, ", "))
		p("  completed runs per second: %.1f  (%d of %d completed in %v; failed %d; ends %v)",
			ph.RunsPerSec, ph.completed(), ph.Runs, ph.Took.Round(time.Millisecond), ph.Failed, ph.Ends)
		p("  SSE events per second:     %.0f", ph.EventsPerSec)
		p("  run duration:              %v", ph.Duration)
		if ph.FirstErr != "" {
			p("  first error:               %s", ph.FirstErr)
		}
	}
	if len(s.Phases) == 2 && s.Phases[0].RunsPerSec > 0 {
		p("speed-up over %d servers:    %.2f×", len(s.Phases[1].Servers), s.Phases[1].RunsPerSec/s.Phases[0].RunsPerSec)
	}
	return b.String()
}

// runThroughput measures completed runs per second: cfg.Runs runs of the workflow
// through the first server, then cfg.Runs spread over every server when there are
// several, cfg.Concurrency in flight per server, each streamed to its terminal event
// (with cfg.Background: queued, then followed from its first event).
// The servers are cfg.Servers, else cfg.Server, else a server in this process serving
// the core workflow.
func runThroughput(ctx context.Context, cfg config) (*runsSummary, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	servers := cfg.Servers
	if len(servers) == 0 && cfg.Server != "" {
		servers = []string{cfg.Server}
	}
	s := &runsSummary{Workflow: cfg.Workflow, Background: cfg.Background, Concurrency: max(1, cfg.Concurrency), Warmup: max(0, cfg.Warmup)}
	if s.Workflow == "" {
		s.Workflow = coreWorkflowID
	}
	if len(servers) == 0 {
		ls, err := startServer("memory", cfg.ChunkDelay)
		if err != nil {
			return nil, err
		}
		defer ls.Close()
		servers, s.InProcess, s.Workflow = []string{ls.url}, true, coreWorkflowID
	}
	for _, srv := range servers {
		if err := loopback(srv); err != nil {
			return nil, err
		}
	}
	sets := [][]string{servers[:1]}
	if len(servers) > 1 {
		sets = append(sets, servers)
	}
	for _, set := range sets {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "runs: %d over %s, %d in flight per server\n", cfg.Runs, strings.Join(set, ", "), s.Concurrency)
		}
		ph := measureRuns(ctx, set, s.Workflow, cfg.Key, cfg.Runs, s.Concurrency, s.Warmup, cfg.Background)
		s.Phases = append(s.Phases, ph)
		if ctx.Err() != nil {
			return s, fmt.Errorf("runs test cut at its timeout (%v)", cfg.Timeout)
		}
		if ph.completed() == 0 {
			return s, fmt.Errorf("no run completed: %s", ph.FirstErr)
		}
	}
	return s, nil
}

// measureRuns makes n runs of wf over servers, perServer in flight on each; a run
// goes to the first free worker, so a faster server takes more. warmup runs per
// server come first and are not measured. Background runs are queued through a
// server, which may run them on another.
func measureRuns(ctx context.Context, servers []string, wf, key string, n, perServer, warmup int, background bool) phase {
	ph := phase{Servers: servers, Runs: n, Ends: map[string]int{}, PerServer: make([]int, len(servers))}
	clients := make([]*loadClient, len(servers))
	for i, srv := range servers {
		c, err := newLoadClient(srv, "", wf, key, perServer+4)
		if err != nil {
			ph.FirstErr = err.Error()
			return ph
		}
		defer c.close()
		clients[i] = c
	}
	for i, c := range clients {
		for j := range warmup {
			if _, _, err := runOnce(ctx, c, "warm-up "+strconv.Itoa(j), background); err != nil {
				ph.FirstErr = fmt.Sprintf("warm-up on %s: %v", servers[i], err)
			}
		}
	}
	var (
		mu        sync.Mutex // guards ph and durations
		durations []time.Duration
		firstErr  error
	)
	jobs := make(chan int)
	var workers sync.WaitGroup
	start := time.Now()
	for w := range len(servers) * perServer {
		i := w % len(servers)
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range jobs {
				end, d, err := runOnce(ctx, clients[i], "run "+strconv.Itoa(j), background)
				mu.Lock()
				if err != nil {
					ph.Failed++
					firstErr = cmpErr(firstErr, err)
				} else {
					ph.Ends[end]++
					durations = append(durations, d)
					if end == "WorkflowCompleted" {
						ph.PerServer[i]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	e0 := eventsOf(clients)
	for j := 0; j < n && ctx.Err() == nil; j++ {
		select {
		case jobs <- j:
		case <-ctx.Done():
		}
	}
	close(jobs)
	workers.Wait()
	ph.Took = time.Since(start)
	ph.RunsPerSec = float64(ph.completed()) / ph.Took.Seconds()
	ph.EventsPerSec = float64(eventsOf(clients)-e0) / ph.Took.Seconds()
	if firstErr != nil && ph.FirstErr == "" {
		ph.FirstErr = firstErr.Error()
	}
	ph.Duration = summarize(slices.Clone(durations), ph.Failed, nil)
	return ph
}

func eventsOf(clients []*loadClient) int64 {
	var n int64
	for _, c := range clients {
		n += c.events.Load()
	}
	return n
}

// runOnce starts a streamed run through c and reads it to its terminal event; it
// returns the event's name and the run's time from its request to its end. A
// background run is queued, then followed from its first event.
func runOnce(ctx context.Context, c *loadClient, message string, background bool) (end string, took time.Duration, err error) {
	t0 := time.Now()
	events := c.wf.Stream(ctx, client.RunRequest{Message: message})
	if background {
		id, err := c.queue(ctx, message)
		if err != nil {
			return "", 0, err
		}
		events = c.wf.Resume(ctx, id, -1)
	}
	end, id, err := c.finish(events)
	if err != nil {
		return "", 0, fmt.Errorf("run %s: the stream broke before its end: %w", id, err)
	}
	return end, time.Since(t0), nil
}

// parseServers splits a comma-separated list of URLs.
func parseServers(list string) ([]string, error) {
	var out []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	if list != "" && len(out) == 0 {
		return nil, errors.New("--servers: no URL")
	}
	return out, nil
}
