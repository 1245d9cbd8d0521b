// Command kern-load measures a kern AgentOS server under load: how many streaming
// runs it holds at once, the memory each costs, the SSE events it delivers per
// second, and the latency of a cancel over HTTP (request sent → WorkflowCancelled
// received on the run's stream), with few streams open and under load.
//
// By default it starts an agentos server in its own process on a loopback port, with
// a scripted workflow that streams a word every --chunk-delay; --server targets a
// running `kern serve` instead. It only ever talks to loopback addresses.
//
//	go run ./cmd/kern-load --streams 5000 --cancels 200
//	go run ./cmd/kern-load --serve 127.0.0.1:7799        # a server alone, for --server-pid
//	go run ./cmd/kern-load --server http://127.0.0.1:7799 --server-pid <pid> --streams 5000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	cfg := config{Log: os.Stderr}
	serve := flag.String("serve", "", "only serve the load workflow in-process on this loopback `addr`, until interrupted or --timeout")
	flag.StringVar(&cfg.Server, "server", "", "target the kern server at this loopback `URL` instead of starting one")
	flag.StringVar(&cfg.Workflow, "workflow", loadWorkflowID, "the workflow id to run on --server")
	flag.StringVar(&cfg.Key, "key", os.Getenv("KERN_SECURITY_KEY"), "the server's security key (default $KERN_SECURITY_KEY)")
	flag.IntVar(&cfg.ServerPID, "server-pid", 0, "the `pid` of --server, to report its RSS per stream")
	flag.StringVar(&cfg.Store, "store", "memory", "the in-process server's store: memory or sqlite")
	flag.IntVar(&cfg.Streams, "streams", 1000, "concurrent streaming runs to hold")
	flag.IntVar(&cfg.Cancels, "cancels", 100, "cancels to measure idle, and again under load")
	flag.IntVar(&cfg.Warmup, "warmup", 10, "idle cancels made first, not measured")
	flag.IntVar(&cfg.Openers, "openers", 64, "streams opened at once during the ramp")
	flag.DurationVar(&cfg.Ramp, "ramp", 5*time.Second, "the shortest time to open the streams in")
	flag.DurationVar(&cfg.Hold, "hold", 10*time.Second, "how long the streams are held while events are counted")
	flag.DurationVar(&cfg.ChunkDelay, "chunk-delay", time.Second, "the in-process workflow's pause between streamed words")
	flag.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the hold (client and in-process server) to `file`")
	flag.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "bounds the whole test")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *serve != "" {
		if err := serveOnly(ctx, *serve, cfg); err != nil {
			fmt.Fprintln(os.Stderr, "kern-load:", err)
			os.Exit(1)
		}
		return
	}
	s, err := run(ctx, cfg)
	if s != nil {
		fmt.Print(s)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kern-load:", err)
		os.Exit(1)
	}
}

// serveOnly serves the load workflow on addr until ctx is done or cfg.Timeout.
func serveOnly(ctx context.Context, addr string, cfg config) error {
	if err := loopback("http://" + addr); err != nil {
		return err
	}
	cur, max, err := raiseFDLimit()
	if err != nil {
		return err
	}
	ls, err := startServerOn(addr, cfg.Store, cfg.ChunkDelay)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "kern-load: serving workflow %q on %s (pid %d, fd limit %d/%d) for %v\n",
		loadWorkflowID, ls.url, os.Getpid(), cur, max, cfg.Timeout)
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	<-ctx.Done()
	return ls.Close()
}
