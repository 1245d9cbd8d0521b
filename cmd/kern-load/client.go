package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kern-dev/kern/client"
	// Imported by another name: this package has a func run.
	kernrun "github.com/kern-dev/kern/run"
)

// loadClient sends a load test's requests through kern's client: one Transport,
// no limit on connections per host, enough idle connections for every stream.
type loadClient struct {
	http   *http.Client
	wf     client.Component // where runs are started
	cancel client.Component // where cancels are sent: wf, or the same workflow on another replica
	noWait bool             // cancel with wait=false: answered once the intent is kept
	// cancelLog, if set, gets a line per cancel measured (see config.CancelLog),
	// phase naming the cancels being measured.
	cancelLog io.Writer
	phase     string
	events    atomic.Int64 // SSE events received on every stream
}

// newLoadClient returns a client starting runs of workflowID on base and sending
// cancels to cancelBase (base when empty).
func newLoadClient(base, cancelBase, workflowID, key string, conns int) (*loadClient, error) {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxConnsPerHost:     0,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     1 << 10,
		ReadBufferSize:      4 << 10,
	}
	if cancelBase == "" {
		cancelBase = base
	}
	hc := &http.Client{Transport: tr}
	c, err := client.New(base, hc, client.WithSecurityKey(key))
	if err != nil {
		return nil, err
	}
	cc, err := client.New(cancelBase, hc, client.WithSecurityKey(key))
	if err != nil {
		return nil, err
	}
	return &loadClient{http: hc, wf: c.Workflow(workflowID), cancel: cc.Workflow(workflowID)}, nil
}

func (c *loadClient) close() { c.http.CloseIdleConnections() }

// stream is one streaming run, read by its own goroutine.
type stream struct {
	runID     string
	cancelled chan time.Time // when the run's WorkflowCancelled arrived
	done      chan struct{}  // closed when the stream ended
	stop      context.CancelFunc
}

// open starts a streaming run and returns once its first event named the run; a
// goroutine, which readers waits for, reads the rest of the stream.
func (c *loadClient) open(ctx context.Context, message string, readers *sync.WaitGroup) (*stream, error) {
	ctx, stop := context.WithCancel(ctx)
	s := &stream{stop: stop, cancelled: make(chan time.Time, 1), done: make(chan struct{})}
	first := make(chan error, 1)
	readers.Add(1)
	go s.read(c, c.wf.Stream(ctx, client.RunRequest{Message: message}), first, readers)
	if err := <-first; err != nil {
		return nil, fmt.Errorf("first event: %w", err)
	}
	return s, nil
}

// read counts the stream's events until the run's terminal event or an error. It
// reports on first whether the first event named the run.
func (s *stream) read(c *loadClient, events iter.Seq2[*kernrun.Event, error], first chan<- error, readers *sync.WaitGroup) {
	defer readers.Done()
	defer close(s.done)
	defer s.stop()
	started := false
	var err error
	for ev, e := range events {
		if err = e; err != nil {
			break
		}
		c.events.Add(1)
		if !started {
			if ev.Event != kernrun.EventWorkflowStarted || ev.RunID == "" {
				first <- fmt.Errorf("%s of run %q: want WorkflowStarted with a run id", ev.Event, ev.RunID)
				return
			}
			s.runID, started = ev.RunID, true
			first <- nil
			continue
		}
		if ev.Event == kernrun.EventWorkflowCancelled && ev.RunID == s.runID {
			s.cancelled <- time.Now()
		}
	}
	if !started {
		first <- cmpErr(err, errors.New("the stream ended before its first event"))
	}
}

// close closes the stream, which ends its reader.
func (s *stream) close() { s.stop() }

// queue starts a background run and returns its id.
func (c *loadClient) queue(ctx context.Context, message string) (string, error) {
	a, err := c.wf.Start(ctx, client.RunRequest{Message: message})
	if err != nil {
		return "", fmt.Errorf("queue run: %w", err)
	}
	return a.RunID, nil
}

// finish reads a run's events to its terminal event, which nested runs' ends are
// not, and returns the event's name and the run's id.
func (c *loadClient) finish(events iter.Seq2[*kernrun.Event, error]) (end string, runID string, err error) {
	for ev, err := range events {
		if err != nil {
			return "", runID, err
		}
		c.events.Add(1)
		if runID == "" {
			runID = ev.RunID
		}
		if ev.Event.Terminal() && ev.RunID == runID {
			end = string(ev.Event)
		}
	}
	return end, runID, nil
}

// cancelRun cancels a run over HTTP, through the cancel server, and returns when
// it was answered.
func (c *loadClient) cancelRun(ctx context.Context, runID string) (time.Time, error) {
	_, err := c.cancel.Cancel(ctx, runID, !c.noWait)
	at := time.Now()
	if err != nil {
		return at, fmt.Errorf("cancel %s: %w", runID, err)
	}
	return at, nil
}

// cancelLatency cancels s's run and returns the time from sending the cancel
// request to receiving WorkflowCancelled on s, and to receiving the cancel's answer.
func (c *loadClient) cancelLatency(ctx context.Context, s *stream, timeout time.Duration) (latency, answer time.Duration, err error) {
	type answered struct {
		at  time.Time
		err error
	}
	t0 := time.Now()
	answers := make(chan answered, 1)
	go func() {
		at, err := c.cancelRun(ctx, s.runID)
		answers <- answered{at, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	cancelled, done := s.cancelled, s.done
	for cancelled != nil || answers != nil {
		select {
		case at := <-cancelled:
			latency, cancelled, done = at.Sub(t0), nil, nil
		case a := <-answers:
			if a.err != nil {
				return 0, 0, a.err
			}
			answer, answers = a.at.Sub(t0), nil
		case <-done:
			select {
			case at := <-cancelled: // sent before done was closed
				latency, cancelled, done = at.Sub(t0), nil, nil
			default:
				return 0, 0, errors.New("stream ended without WorkflowCancelled")
			}
		case <-t.C:
			return 0, 0, errors.New("no WorkflowCancelled and answer within " + timeout.String())
		}
	}
	if c.cancelLog != nil {
		fmt.Fprintf(c.cancelLog, "%s %s %d %d %d\n", c.phase, s.runID, t0.UnixNano(), t0.Add(latency).UnixNano(), t0.Add(answer).UnixNano())
	}
	return latency, answer, nil
}
