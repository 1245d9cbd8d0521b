// Command kern-load measures a kern AgentOS server under load: how many streaming
// runs it holds at once, the memory each costs, the SSE events it delivers per
// second, and the latency of a cancel over HTTP (request sent → WorkflowCancelled
// received on the run's stream), with few streams open and under load.
//
// By default it starts an agentos server in its own process on a loopback port, with
// a scripted workflow that streams a word every --chunk-delay; --server targets a
// running `kern serve` instead, and --cancel-server sends the cancels to another
// replica of it. With --runs it measures completed runs per second instead, through
// one server and then spread over the --servers. It only ever talks to loopback
// addresses.
//
//	go run ./cmd/kern-load --streams 5000 --cancels 200
//	go run ./cmd/kern-load --serve 127.0.0.1:7799        # a server alone, for --server-pid
//	go run ./cmd/kern-load --server http://127.0.0.1:7799 --server-pid <pid> --streams 5000
//	go run ./cmd/kern-load --server http://127.0.0.1:7701 --cancel-server http://127.0.0.1:7702
//	go run ./cmd/kern-load --runs 2000 --servers http://127.0.0.1:7701,http://127.0.0.1:7702
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/kern-dev/kern/internal/procs"
)

func main() {
	cfg := config{Log: os.Stderr}
	serve := flag.String("serve", "", "only serve the load workflow in-process on this loopback `addr`, until interrupted or --timeout; prints its URL first")
	serveFloorAddr := flag.String("serve-floor", "", "only serve the bare SSE floor on this loopback `addr`, until interrupted or --timeout; prints its URL first")
	flag.BoolVar(&cfg.Floor, "floor", false, "measure the bare net/http SSE floor first, in a process of its own, then kern (in a process of its own unless --server), and report kern's server CPU per event and RSS per stream as ratios to the floor's")
	flag.StringVar(&cfg.Server, "server", "", "target the kern server at this loopback `URL` instead of starting one")
	flag.StringVar(&cfg.Workflow, "workflow", "", "the workflow id to run on --server (default load; core with --runs)")
	flag.StringVar(&cfg.CancelServer, "cancel-server", "", "send the cancels to this loopback `URL`, another replica of --server's database (default --server)")
	cancelLog := flag.String("cancel-log", "", "write a line per cancel of kern to `file`: its phase (warmup, idle, load), run id, and the Unix nanoseconds of its request, of the WorkflowCancelled read and of its answer, to join with timestamps of the servers'")
	flag.BoolVar(&cfg.NoWait, "no-wait", false, "cancel with wait=false: the answer comes once the intent is kept, not after the run's end")
	flag.StringVar(&cfg.Key, "key", os.Getenv("KERN_SECURITY_KEY"), "the server's security key (default $KERN_SECURITY_KEY)")
	flag.IntVar(&cfg.ServerPID, "server-pid", 0, "the `pid` of --server, to report its RSS per stream")
	flag.StringVar(&cfg.Store, "store", "memory", "the in-process server's store: memory or sqlite")
	flag.IntVar(&cfg.MaxRuns, "max-runs", 0, "the in-process server's admission control: runs it executes at once, beyond which it answers 503 (0: no limit)")
	flag.IntVar(&cfg.MaxStreams, "max-streams", 0, "the in-process server's admission control: streams it serves at once, beyond which it answers 503 (0: no limit)")
	flag.IntVar(&cfg.Streams, "streams", 1000, "concurrent streaming runs to hold")
	flag.IntVar(&cfg.Cancels, "cancels", 100, "cancels to measure idle, and again under load")
	flag.DurationVar(&cfg.CancelEvery, "cancel-every", 0, "under load, begin a cancel every `interval` (a cancel that takes longer delays the next), so that they sample more of the load than back to back (0: one after the other at once)")
	flag.IntVar(&cfg.Warmup, "warmup", 10, "idle cancels made first, not measured (with --runs: runs per server)")
	flag.IntVar(&cfg.Openers, "openers", 64, "streams opened at once during the ramp")
	flag.DurationVar(&cfg.Ramp, "ramp", 5*time.Second, "the shortest time to open the streams in")
	flag.DurationVar(&cfg.Hold, "hold", 10*time.Second, "how long the streams are held while events are counted")
	flag.DurationVar(&cfg.ChunkDelay, "chunk-delay", time.Second, "the in-process workflow's pause between streamed words")
	flag.StringVar(&cfg.DebugAddr, "debug-addr", "", "with --serve: serve net/http/pprof and runtime/metrics (/debug/pprof/, /debug/mem) on this loopback `addr`, for heap profiles and goroutine dumps of the server")
	flag.IntVar(&cfg.MemRate, "memprofile-rate", 0, "with --serve: sample the heap profile every `bytes` allocated (e.g. 512, to see a stream's small allocations; it costs the server ~12% CPU, so the figures measured with it are not the server's; 0: the runtime's default, 512 KiB)")
	flag.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the hold (client and in-process server) to `file`")
	flag.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "bounds the whole test")
	flag.IntVar(&cfg.Runs, "runs", 0, "measure completed runs per second instead: `n` runs through the first of --servers, then n spread over all of them")
	servers := flag.String("servers", "", "with --runs: the replicas' loopback `URLs`, comma-separated (default --server, or an in-process server)")
	flag.IntVar(&cfg.Concurrency, "concurrency", 16, "with --runs: runs in flight per server")
	flag.BoolVar(&cfg.Background, "background", false, "with --runs: queue each run (background=true) and follow it to its end through the same server")
	flag.Parse()
	var err error
	if cfg.Servers, err = parseServers(*servers); err != nil {
		fmt.Fprintln(os.Stderr, "kern-load:", err)
		os.Exit(2)
	}
	if *cancelLog != "" {
		f, err := os.Create(*cancelLog)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kern-load:", err)
			os.Exit(2)
		}
		defer f.Close()
		cfg.CancelLog = f
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *serveFloorAddr != "" {
		if err := serveFloor(ctx, *serveFloorAddr, cfg.ChunkDelay, cfg.Timeout, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "kern-load:", err)
			os.Exit(1)
		}
		return
	}
	if *serve != "" {
		if err := serveOnly(ctx, *serve, cfg); err != nil {
			fmt.Fprintln(os.Stderr, "kern-load:", err)
			os.Exit(1)
		}
		return
	}
	s, err := measure(ctx, cfg)
	if s != nil {
		fmt.Print(s)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kern-load:", err)
		os.Exit(1)
	}
}

// measure runs the test cfg asks for: runs per second with --runs, streams and
// cancels otherwise. Its summary is nil when the test could not start.
func measure(ctx context.Context, cfg config) (fmt.Stringer, error) {
	if cfg.Runs > 0 {
		s, err := runThroughput(ctx, cfg)
		if s == nil {
			return nil, err
		}
		return s, err
	}
	s, err := runWithFloor(ctx, cfg)
	if s == nil {
		return nil, err
	}
	return s, err
}

// serveOnly serves the load workflow on addr until ctx is done or cfg.Timeout,
// printing its URL as the first line of its standard output.
func serveOnly(ctx context.Context, addr string, cfg config) error {
	if err := loopback("http://" + addr); err != nil {
		return err
	}
	cur, max, err := raiseFDLimit()
	if err != nil {
		return err
	}
	if cfg.MemRate != 0 {
		runtime.MemProfileRate = cfg.MemRate
	}
	if cfg.Store == "sqlite" {
		procs.SetForBlockingIO() // as kern serve does
	}
	ls, err := startServerOn(addr, cfg.Store, cfg.ChunkDelay, admission{cfg.MaxRuns, cfg.MaxStreams})
	if err != nil {
		return err
	}
	if cfg.DebugAddr != "" {
		stop, err := serveDebug(cfg.DebugAddr)
		if err != nil {
			ls.Close()
			return err
		}
		defer stop()
	}
	fmt.Println(ls.url)
	gogc := cmp.Or(os.Getenv("GOGC"), "100") // the runtime's default when unset
	fmt.Fprintf(os.Stderr, "kern-load: serving workflows %q and %q on %s (pid %d, GOMAXPROCS %d, GOGC %s, fd limit %d/%d) for %v\n",
		loadWorkflowID, coreWorkflowID, ls.url, os.Getpid(), runtime.GOMAXPROCS(0), gogc, cur, max, cfg.Timeout)
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	<-ctx.Done()
	return ls.Close()
}
