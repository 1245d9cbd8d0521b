package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/agentos"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/workflow"
)

// The ids of the workflows the in-process server serves.
const (
	loadWorkflowID = "load"
	coreWorkflowID = "core"
)

// loadWorkflow streams one word every delay, for far longer than a load test lasts,
// so that its runs stay open until cancelled.
func loadWorkflow(delay time.Duration) *workflow.Workflow {
	writer := &agent.Agent{Name: "Load writer", Model: &scripted.Model{
		Turns: []scripted.Turn{{Text: strings.Repeat("word ", 1_000_000)}},
		Delay: delay,
	}}
	return &workflow.Workflow{Name: "Load", Description: "streams a word every chunk delay, until cancelled",
		Steps: []workflow.Step{workflow.AgentStep("write", writer, "write for ever")}}
}

// coreWorkflow is the core workload of kern's runs-per-second figures: two steps of
// 20 chunks each, streamed without pause.
func coreWorkflow() *workflow.Workflow {
	steps := make([]workflow.Step, 2)
	for i, name := range []string{"first", "second"} {
		a := &agent.Agent{Name: "Core " + name, Model: scripted.New(strings.Repeat("word ", 20))}
		steps[i] = workflow.AgentStep(name, a, "write 20 words")
	}
	return &workflow.Workflow{Name: "Core", Description: "two steps of 20 chunks, without pause", Steps: steps}
}

// localServer is an agentos server on a loopback port, in this process.
type localServer struct {
	url    string
	stop   context.CancelFunc
	served chan error
	store  store.Store
	dir    string
}

// startServer starts an agentos server on 127.0.0.1 with the load and core workflows
// and the given store: "memory" (none) or "sqlite" (a file in a temporary directory).
func startServer(storeKind string, delay time.Duration) (*localServer, error) {
	return startServerOn("127.0.0.1:0", storeKind, delay, admission{})
}

// admission is the server's admission control: at most maxRuns runs and
// maxStreams open streams at once (0: no limit), beyond which it answers 503.
type admission struct{ maxRuns, maxStreams int }

// startServerOn is startServer on a given address.
func startServerOn(addr, storeKind string, delay time.Duration, adm admission) (*localServer, error) {
	ls := &localServer{served: make(chan error, 1)}
	cfg := agentos.Config{
		Workflows:     []*workflow.Workflow{loadWorkflow(delay), coreWorkflow()},
		ShutdownGrace: time.Second,
		MaxRuns:       adm.maxRuns,
		MaxStreams:    adm.maxStreams,
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	}
	switch storeKind {
	case "memory":
	case "sqlite":
		dir, err := os.MkdirTemp("", "kern-load-")
		if err != nil {
			return nil, err
		}
		ls.dir = dir
		st, err := sqlite.Open(context.Background(), filepath.Join(dir, "kern.db"))
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("open sqlite store: %w", err)
		}
		ls.store, cfg.Store = st, st
	default:
		return nil, fmt.Errorf("unknown store %q: want memory or sqlite", storeKind)
	}
	srv, err := agentos.New(cfg)
	if err != nil {
		ls.close()
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		ls.close()
		return nil, err
	}
	ls.url = "http://" + ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	ls.stop = stop
	go func() { ls.served <- srv.ServeListener(ctx, ln) }()
	return ls, nil
}

// Close shuts the server down, cancelling its runs, and removes its store.
func (ls *localServer) Close() error {
	ls.stop()
	err := <-ls.served
	return errors.Join(err, ls.close())
}

func (ls *localServer) close() error {
	var err error
	if ls.store != nil {
		err = ls.store.Close()
	}
	if ls.dir != "" {
		os.RemoveAll(ls.dir)
	}
	return err
}
