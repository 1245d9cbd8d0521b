package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kern-dev/kern/client"
	"github.com/kern-dev/kern/internal/procs"
)

// config is what a load test does.
type config struct {
	Server       string // an existing server's URL; empty starts one in this process
	CancelServer string // where cancels are sent (another replica of Server); empty: Server
	NoWait       bool   // cancel with wait=false
	Workflow     string // the workflow to run on Server; empty: load (core with Runs)
	Key          string // the server's security key
	ServerPID    int    // the pid of Server, to read its RSS
	Store        string // the in-process server's store: memory or sqlite
	MaxRuns      int    // the in-process server's admission control (0: no limit)
	MaxStreams   int
	Streams      int           // concurrent streaming runs to hold
	Cancels      int           // cancels measured idle, and again under load
	CancelEvery  time.Duration // under load, a cancel begins no sooner than this after the last began (0: at once)
	Warmup       int           // idle cancels made first and not measured
	Openers      int           // streams being opened at once during the ramp
	Ramp         time.Duration // how long opening the streams should take at least
	Hold         time.Duration // how long the streams are held while events are counted
	ChunkDelay   time.Duration // the in-process workflow's pause between words
	Timeout      time.Duration // bounds the whole test
	CPUProfile   string        // a file to write a CPU profile of the hold to
	DebugAddr    string        // with --serve: where to serve pprof and memory metrics
	MemRate      int           // with --serve: runtime.MemProfileRate, if not 0
	Floor        bool          // measure the bare SSE floor first, and kern in a process of its own
	Log          io.Writer     // progress
	CancelLog    io.Writer     // a line per cancel of kern, not the floor's (see loadClient.cancelLog)

	// Runs, when > 0, measures completed runs per second instead (see runThroughput):
	// Runs runs through the first of Servers, then Runs spread over all of them,
	// Concurrency in flight per server.
	Runs        int
	Servers     []string
	Concurrency int
	Background  bool // queue the runs (background=true) and follow each to its end
}

// latency is the distribution of cancel latencies of one phase.
type latency struct {
	N, Failed     int
	P50, P99, Max time.Duration
	FirstErr      string
}

func summarize(ds []time.Duration, failed int, firstErr error) latency {
	l := latency{N: len(ds), Failed: failed}
	if firstErr != nil {
		l.FirstErr = firstErr.Error()
	}
	if len(ds) == 0 {
		return l
	}
	slices.Sort(ds)
	pct := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	l.P50, l.P99, l.Max = pct(0.50), pct(0.99), ds[len(ds)-1]
	return l
}

// summary is a load test's result.
type summary struct {
	Target             string
	CancelTarget       string // where cancels went, when not Target
	InProcess          bool
	Child              bool // the server is kern-load --serve, started by this run (--floor)
	Store              string
	FDLimit, FDMax     uint64
	Requested          int
	Opened, Failed     int
	Refused            int // of Failed: answered 503 with Retry-After (admission control)
	Held               int // streams still open at the end of the hold
	RampTime           time.Duration
	FirstOpenErr       string
	GoroutinesPerRun   float64 // in-process: client and server
	HeapPerRun         float64 // in-process HeapInuse delta per run, bytes
	StackPerRun        float64 // in-process StackInuse delta per run
	SysPerRun          float64 // in-process Sys delta per run
	RSSPerRun          float64 // this process's RSS delta per run
	ServerRSSPerRun    float64 // the target server's RSS delta per run (--server-pid)
	ServerRSSEarly     float64 // ServerRSSPerRun, read earlyHold into the hold (0 if the hold is shorter)
	ServerRSSHeld      float64 // ServerRSSPerRun, read at the end of the hold
	EventsPerSec       float64
	CPU, ServerCPU     float64 // cores used during the hold: this process, the target server
	HeapPerEvent       float64 // in-process HeapInuse growth during the hold per event delivered
	OfferedPerSec      float64 // what the in-process workflow emits: streams / chunk delay
	Hold               time.Duration
	IdleCancel, Cancel latency
	// IdleAnswer and Answer are the time from sending a cancel to its answer: after
	// the run's end (wait=true) or once the intent is kept (wait=false, NoWait).
	IdleAnswer, Answer latency
	NoWait             bool
	CancelEvery        time.Duration // the load's cancels begun one per CancelEvery (0: back to back)
	// Floor is the same test against the bare SSE floor, in the same run (--floor).
	Floor *summary
}

// serverCPUPerEvent is the target server's CPU time per delivered event, in µs.
func (s *summary) serverCPUPerEvent() float64 {
	if s.EventsPerSec <= 0 {
		return 0
	}
	return s.ServerCPU / s.EventsPerSec * 1e6
}

func kib(b float64) string { return strconv.FormatFloat(b/1024, 'f', 1, 64) + " KiB" }

// short is the distribution alone.
func (l latency) short() string {
	return fmt.Sprintf("p50 %v  p99 %v  max %v", l.P50.Round(time.Microsecond), l.P99.Round(time.Microsecond), l.Max.Round(time.Microsecond))
}

func (l latency) String() string {
	s := fmt.Sprintf("p50 %v  p99 %v  max %v  (n=%d, failed %d)", l.P50.Round(time.Microsecond),
		l.P99.Round(time.Microsecond), l.Max.Round(time.Microsecond), l.N, l.Failed)
	if l.FirstErr != "" {
		s += "  first error: " + l.FirstErr
	}
	return s
}

// String is the readable summary.
func (s *summary) String() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	where := "in-process server, store " + s.Store
	switch {
	case s.Child:
		where = "kern-load --serve in a process of its own, store " + s.Store
	case !s.InProcess:
		where = "external server"
	}
	p("kern-load: %s (%s), GOMAXPROCS %d, fd limit %d (hard %d)", s.Target, where, runtime.GOMAXPROCS(0), s.FDLimit, s.FDMax)
	if s.CancelTarget != "" {
		p("cancels sent to:            %s (streams on %s)", s.CancelTarget, s.Target)
	}
	p("streams requested:          %d", s.Requested)
	p("streams opened:             %d in %v (failed %d, of which refused with 503 and Retry-After %d)", s.Opened, s.RampTime.Round(time.Millisecond), s.Failed, s.Refused)
	if s.FirstOpenErr != "" {
		p("first open error:           %s", s.FirstOpenErr)
	}
	p("concurrent streams held:    %d", s.Held)
	if s.InProcess {
		p("goroutines per stream:      %.1f (client and server)", s.GoroutinesPerRun)
		p("memory per stream:          heap %s + stacks %s = %s; Sys %s (client and server)",
			kib(s.HeapPerRun), kib(s.StackPerRun), kib(s.HeapPerRun+s.StackPerRun), kib(s.SysPerRun))
	}
	if s.InProcess {
		p("heap growth per event:      %.0f B (events the runs keep while they run)", s.HeapPerEvent)
	}
	p("RSS per stream:             %s (this process)", kib(s.RSSPerRun))
	if s.ServerRSSPerRun != 0 {
		early := ""
		if s.ServerRSSEarly != 0 {
			early = fmt.Sprintf(" %s %v into the hold,", kib(s.ServerRSSEarly), earlyHold)
		}
		p("server RSS per stream:      %s after the ramp,%s %s after the hold", kib(s.ServerRSSPerRun), early, kib(s.ServerRSSHeld))
	}
	offered := ""
	if s.OfferedPerSec > 0 {
		offered = fmt.Sprintf(" (offered %.0f/s)", s.OfferedPerSec)
	}
	p("SSE events per second:      %.0f over %v%s", s.EventsPerSec, s.Hold, offered)
	switch {
	case s.ServerCPU > 0:
		p("CPU during the hold:        %.2f cores server, %.2f cores this client", s.ServerCPU, s.CPU)
	case !s.InProcess:
		p("CPU during the hold:        %.2f cores (this client)", s.CPU)
	default:
		p("CPU during the hold:        %.2f cores (client and server)", s.CPU)
	}
	p("cancel latency idle:        %v", s.IdleCancel)
	spaced := ""
	if s.CancelEvery > 0 {
		spaced = fmt.Sprintf("  (begun one every %v)", s.CancelEvery)
	}
	p("cancel latency under load:  %v%s", s.Cancel, spaced)
	wait := "wait=true: after the run's end"
	if s.NoWait {
		wait = "wait=false: once the intent is kept"
	}
	p("cancel answered idle:       %v", s.IdleAnswer.short())
	p("cancel answered under load: %v  (%s)", s.Answer.short(), wait)
	if f := s.Floor; f != nil {
		p("floor (bare net/http SSE server, same client, same run):")
		p("  SSE events per second:    %.0f, %.2f cores server", f.EventsPerSec, f.ServerCPU)
		p("  cancel latency under load: %v", f.Cancel.short())
		ratio := func(a, b float64) string {
			if b <= 0 {
				return "n/a"
			}
			return strconv.FormatFloat(a/b, 'f', 1, 64) + "×"
		}
		p("server CPU per event:       %.1f µs, floor %.1f µs: %s", s.serverCPUPerEvent(), f.serverCPUPerEvent(),
			ratio(s.serverCPUPerEvent(), f.serverCPUPerEvent()))
		p("server RSS per stream:      %s, floor %s: %s", kib(s.ServerRSSPerRun), kib(f.ServerRSSPerRun),
			ratio(s.ServerRSSPerRun, f.ServerRSSPerRun))
		if s.ServerRSSEarly != 0 {
			p("  %v into the hold:         %s, floor %s: %s", earlyHold, kib(s.ServerRSSEarly), kib(f.ServerRSSEarly),
				ratio(s.ServerRSSEarly, f.ServerRSSEarly))
		}
		p("  after the hold:           %s, floor %s: %s", kib(s.ServerRSSHeld), kib(f.ServerRSSHeld),
			ratio(s.ServerRSSHeld, f.ServerRSSHeld))
	}
	return b.String()
}

// earlyHold is when in the hold the server's RSS is read a second time: right
// after the ramp its heap has not yet grown to its collector's goal, so the
// reading that shows what a stream costs once the runs go on is this one, and the
// one at the end of the hold shows whether that grows with the runs' length.
const earlyHold = 5 * time.Second

// raiseFDLimit raises the soft limit on open files to the hard limit.
func raiseFDLimit() (cur, max uint64, err error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0, err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return l.Cur, l.Max, err
		}
	}
	return l.Cur, l.Max, nil
}

// rss returns the resident set size of a process (0 for this one) in bytes.
func rss(pid int) float64 {
	path := "/proc/self/status"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseFloat(f[1], 64)
			return n * 1024
		}
	}
	return 0
}

// startProfile starts a CPU profile to path; stop stops it and closes the file.
func startProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// cpuTime returns the user and system CPU time of a process (0 for this one) in
// seconds.
func cpuTime(pid int) float64 {
	path := "/proc/self/stat"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	// Fields after the command name, which ends with ')': utime and stime are the
	// 12th and 13th, in clock ticks (100 per second on Linux).
	_, rest, _ := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// loopback reports whether a URL's host is this machine.
func loopback(u string) error {
	pu, err := url.Parse(u)
	if err != nil {
		return err
	}
	host := pu.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s is not a loopback address: kern-load only targets this machine", u)
}

type memPoint struct {
	ms         runtime.MemStats
	goroutines int
	rss        float64
	serverRSS  float64
}

func measureMem(serverPID int) memPoint {
	runtime.GC()
	var p memPoint
	runtime.ReadMemStats(&p.ms)
	p.goroutines = runtime.NumGoroutine()
	p.rss = rss(0)
	if serverPID > 0 {
		p.serverRSS = rss(serverPID)
	}
	return p
}

// runWithFloor performs the load test cfg asks for; with cfg.Floor it measures
// the floor first, then kern, each server in a process of its own, so that their
// CPU and memory are read apart from the client's.
func runWithFloor(ctx context.Context, cfg config) (*summary, error) {
	if !cfg.Floor {
		return run(ctx, cfg)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	delay := strconv.FormatInt(cfg.ChunkDelay.Nanoseconds(), 10) + "ns"
	timeout := cfg.Timeout.String()
	floor, err := startChild(ctx, "--serve-floor", "127.0.0.1:0", "--chunk-delay", delay, "--timeout", timeout)
	if err != nil {
		return nil, fmt.Errorf("start the floor: %w", err)
	}
	fcfg := cfg
	fcfg.Floor, fcfg.Server, fcfg.ServerPID, fcfg.CancelServer, fcfg.Workflow = false, floor.url, floor.pid(), "", loadWorkflowID
	fcfg.CancelLog = nil
	fcfg.Log = prefixed(cfg.Log, "floor: ")
	fs, ferr := run(ctx, fcfg)
	if err := floor.stop(); err != nil && ferr == nil {
		ferr = fmt.Errorf("the floor's process: %w", err)
	}
	if ferr != nil {
		return fs, fmt.Errorf("floor: %w", ferr)
	}
	kcfg := cfg
	kcfg.Floor = false
	if kcfg.Server == "" {
		k, err := startChild(ctx, "--serve", "127.0.0.1:0", "--store", cfg.Store, "--chunk-delay", delay, "--timeout", timeout,
			"--max-runs", strconv.Itoa(cfg.MaxRuns), "--max-streams", strconv.Itoa(cfg.MaxStreams))
		if err != nil {
			return nil, fmt.Errorf("start kern: %w", err)
		}
		defer k.stop()
		kcfg.Server, kcfg.ServerPID = k.url, k.pid()
	}
	s, err := run(ctx, kcfg)
	if s != nil {
		s.Floor = fs
		s.Child = cfg.Server == ""
	}
	return s, err
}

// prefixed returns a writer that writes to w with prefix before each write (nil
// for a nil w).
func prefixed(w io.Writer, prefix string) io.Writer {
	if w == nil {
		return nil
	}
	return prefixWriter{w, prefix}
}

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

// run performs a load test: idle cancels, a ramp to cfg.Streams streams, a hold
// counting events, cancels under load, then everything is closed.
func run(ctx context.Context, cfg config) (*summary, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	s := &summary{Requested: cfg.Streams, Hold: cfg.Hold, Store: cfg.Store}
	var err error
	if s.FDLimit, s.FDMax, err = raiseFDLimit(); err != nil {
		logf("cannot raise the fd limit: %v", err)
	}
	target, wf := cfg.Server, cfg.Workflow
	if wf == "" {
		wf = loadWorkflowID
	}
	if cfg.CancelServer != "" {
		if target == "" {
			return nil, errors.New("--cancel-server needs --server: the in-process server shares its runs with no other")
		}
		if err := loopback(cfg.CancelServer); err != nil {
			return nil, err
		}
		s.CancelTarget = cfg.CancelServer
	}
	if target == "" {
		if cfg.Store == "sqlite" {
			procs.SetForBlockingIO() // as kern serve does
		}
		ls, err := startServerOn("127.0.0.1:0", cfg.Store, cfg.ChunkDelay, admission{cfg.MaxRuns, cfg.MaxStreams})
		if err != nil {
			return nil, err
		}
		defer func() {
			if err := ls.Close(); err != nil {
				logf("server shutdown: %v", err)
			}
		}()
		target, wf, s.InProcess = ls.url, loadWorkflowID, true
		if cfg.ChunkDelay > 0 {
			s.OfferedPerSec = float64(cfg.Streams) / cfg.ChunkDelay.Seconds()
		}
	} else if err := loopback(target); err != nil {
		return nil, err
	}
	s.Target = target
	need := uint64(cfg.Streams + cfg.Cancels + 64)
	if s.InProcess {
		need *= 2
	}
	if s.FDLimit < need {
		// Past it, accept fails (EMFILE) and net/http retries it after up to a
		// second: streams open at a few dozen a second, and some fail.
		hint := ""
		if s.InProcess {
			hint = " (client and server in this process: run the server in its own, with --floor or --serve and --server)"
		}
		logf("warning: fd limit %d < ~%d needed for %d streams%s", s.FDLimit, need, cfg.Streams, hint)
	}
	c, err := newLoadClient(target, cfg.CancelServer, wf, cfg.Key, cfg.Streams+cfg.Cancels+16)
	if err != nil {
		return nil, err
	}
	c.noWait, s.NoWait = cfg.NoWait, cfg.NoWait
	s.CancelEvery = cfg.CancelEvery
	c.cancelLog = cfg.CancelLog
	defer c.close()
	streamCtx, closeStreams := context.WithCancel(ctx)
	var readers sync.WaitGroup
	defer func() { closeStreams(); readers.Wait() }()

	logf("idle: %d warm-up and %d measured cancels, one stream at a time", cfg.Warmup, cfg.Cancels)
	c.phase = "warmup"
	idleCancels(streamCtx, c, cfg.Warmup, &readers)
	c.phase = "idle"
	s.IdleCancel, s.IdleAnswer = idleCancels(streamCtx, c, cfg.Cancels, &readers)

	before := measureMem(cfg.ServerPID)
	logf("ramp: opening %d streams (%d at a time, over %v at least)", cfg.Streams, cfg.Openers, cfg.Ramp)
	streams, failed, refused, firstErr, took := ramp(streamCtx, c, cfg, &readers)
	s.Opened, s.Failed, s.Refused, s.RampTime = len(streams), failed, refused, took
	if firstErr != nil {
		s.FirstOpenErr = firstErr.Error()
	}
	logf("ramp: %d open, %d failed, in %v", len(streams), failed, took.Round(time.Millisecond))
	if len(streams) == 0 {
		return s, fmt.Errorf("no stream opened: %v", firstErr)
	}
	after := measureMem(cfg.ServerPID)
	n := float64(len(streams))
	s.GoroutinesPerRun = float64(after.goroutines-before.goroutines) / n
	s.HeapPerRun = float64(int64(after.ms.HeapInuse)-int64(before.ms.HeapInuse)) / n
	s.StackPerRun = float64(int64(after.ms.StackInuse)-int64(before.ms.StackInuse)) / n
	s.SysPerRun = float64(int64(after.ms.Sys)-int64(before.ms.Sys)) / n
	s.RSSPerRun = (after.rss - before.rss) / n
	serverRSSPerRun := func(rss float64) float64 { return (rss - before.serverRSS) / n }
	if cfg.ServerPID > 0 {
		s.ServerRSSPerRun = serverRSSPerRun(after.serverRSS)
	}

	logf("hold: %v", cfg.Hold)
	if cfg.CPUProfile != "" {
		stop, err := startProfile(cfg.CPUProfile)
		if err != nil {
			return s, err
		}
		defer stop()
	}
	e0, t0, cpu0, scpu0 := c.events.Load(), time.Now(), cpuTime(0), cpuTime(cfg.ServerPID)
	var early <-chan time.Time // nil: no reading during the hold
	if cfg.ServerPID > 0 && cfg.Hold > earlyHold {
		t := time.NewTimer(earlyHold)
		defer t.Stop()
		early = t.C
	}
	end := time.NewTimer(cfg.Hold)
	defer end.Stop()
hold:
	for {
		select {
		case <-early:
			s.ServerRSSEarly = serverRSSPerRun(rss(cfg.ServerPID))
		case <-end.C:
			break hold
		case <-ctx.Done():
			break hold
		}
	}
	held := time.Since(t0).Seconds()
	if cfg.ServerPID > 0 && ctx.Err() == nil { // not of a hold cut short
		s.ServerRSSHeld = serverRSSPerRun(rss(cfg.ServerPID))
	}
	if cfg.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	s.EventsPerSec = float64(c.events.Load()-e0) / held
	s.CPU = (cpuTime(0) - cpu0) / held
	if cfg.ServerPID > 0 {
		s.ServerCPU = (cpuTime(cfg.ServerPID) - scpu0) / held
	}
	for _, st := range streams {
		select {
		case <-st.done:
		default:
			s.Held++
		}
	}
	if evs := c.events.Load() - e0; s.InProcess && evs > 0 {
		held := measureMem(0)
		s.HeapPerEvent = float64(int64(held.ms.HeapInuse)-int64(after.ms.HeapInuse)) / float64(evs)
	}

	logf("load: %d cancels among %d open streams", cfg.Cancels, len(streams))
	c.phase = "load"
	s.Cancel, s.Answer = loadCancels(ctx, c, streams, cfg.Cancels, cfg.CancelEvery)
	if ctx.Err() != nil {
		return s, fmt.Errorf("load test cut at its timeout (%v)", cfg.Timeout)
	}
	return s, nil
}

// cancels collects the latencies of a phase's cancels and of their answers.
type cancels struct {
	latencies, answers []time.Duration
	failed             int
	firstErr           error
}

func (cs *cancels) add(latency, answer time.Duration, err error) {
	if err != nil {
		cs.failed++
		cs.firstErr = cmpErr(cs.firstErr, err)
		return
	}
	cs.latencies = append(cs.latencies, latency)
	cs.answers = append(cs.answers, answer)
}

// made returns how many cancels were made, failed ones included.
func (cs *cancels) made() int { return len(cs.latencies) + cs.failed }

func (cs *cancels) summarize() (latency, answer latency) {
	return summarize(cs.latencies, cs.failed, cs.firstErr), summarize(cs.answers, cs.failed, nil)
}

// idleCancels measures n cancels with no other stream open.
func idleCancels(ctx context.Context, c *loadClient, n int, readers *sync.WaitGroup) (latency, answer latency) {
	var cs cancels
	for i := 0; i < n && ctx.Err() == nil; i++ {
		cs.add(func() (time.Duration, time.Duration, error) {
			st, err := c.open(ctx, "idle "+strconv.Itoa(i), readers)
			if err != nil {
				return 0, 0, err
			}
			defer st.close()
			return c.cancelLatency(ctx, st, 10*time.Second)
		}())
	}
	return cs.summarize()
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// ramp opens cfg.Streams streams, cfg.Openers at a time, no faster than one every
// cfg.Ramp/cfg.Streams.
// Of the streams that failed to open, refused counts those the server refused with
// 503 and Retry-After (its admission control).
func ramp(ctx context.Context, c *loadClient, cfg config, readers *sync.WaitGroup) (open []*stream, failed, refused int, firstErr error, took time.Duration) {
	start := time.Now()
	jobs := make(chan int)
	var mu sync.Mutex // guards open, failed, firstErr
	var openers sync.WaitGroup
	for range max(1, cfg.Openers) {
		openers.Add(1)
		go func() {
			defer openers.Done()
			for i := range jobs {
				st, err := c.open(ctx, "load "+strconv.Itoa(i), readers)
				mu.Lock()
				var ce *client.Error
				if err != nil {
					failed++
					if errors.As(err, &ce) && ce.StatusCode == http.StatusServiceUnavailable && ce.RetryAfter > 0 {
						refused++
					}
					firstErr = cmpErr(firstErr, err)
				} else {
					open = append(open, st)
				}
				mu.Unlock()
			}
		}()
	}
	step := cfg.Ramp / time.Duration(max(1, cfg.Streams))
	for i := 0; i < cfg.Streams && ctx.Err() == nil; i++ {
		if step > 0 {
			if wait := time.Until(start.Add(time.Duration(i) * step)); wait > 0 {
				time.Sleep(wait)
			}
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
	}
	close(jobs)
	openers.Wait()
	return open, failed, refused, firstErr, time.Since(start)
}

// loadCancels measures n cancels, one after the other, of streams still open,
// each begun every (or at once, if every is 0) after the last began: spaced, they
// sample more of the load than the fraction of a second they take back to back.
func loadCancels(ctx context.Context, c *loadClient, streams []*stream, n int, every time.Duration) (latency, answer latency) {
	var cs cancels
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for _, st := range streams {
		if cs.made() >= n || ctx.Err() != nil {
			break
		}
		select {
		case <-st.done:
			continue
		default:
		}
		if tick != nil && cs.made() > 0 {
			select {
			case <-tick:
			case <-ctx.Done():
				continue // the loop ends
			}
		}
		cs.add(c.cancelLatency(ctx, st, 10*time.Second))
	}
	if cs.made() < n && cs.firstErr == nil {
		cs.firstErr = errors.New("fewer open streams than cancels")
	}
	return cs.summarize()
}
