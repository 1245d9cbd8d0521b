package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// client sends a load test's requests: one Transport, no limit on connections per
// host, enough idle connections for every stream.
type client struct {
	http       *http.Client
	base       string // where runs are started
	cancelBase string // where cancels are sent: base, or another replica
	wf         string
	key        string
	noWait     bool         // cancel with wait=false: answered once the intent is kept
	events     atomic.Int64 // SSE events received on every stream
}

// newClient returns a client starting runs of workflowID on base and sending cancels
// to cancelBase (base when empty).
func newClient(base, cancelBase, workflowID, key string, conns int) *client {
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
	return &client{http: &http.Client{Transport: tr}, base: strings.TrimSuffix(base, "/"),
		cancelBase: strings.TrimSuffix(cancelBase, "/"), wf: workflowID, key: key}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// request makes a request to base+path.
func (c *client) request(ctx context.Context, method, base, path, body string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	return req, nil
}

// stream is one streaming run, read by its own goroutine.
type stream struct {
	runID     string
	body      io.ReadCloser
	r         *bufio.Reader
	cancelled chan time.Time // when WorkflowCancelled arrived
	done      chan struct{}  // closed when the stream ended
	stop      context.CancelFunc
}

// post posts form to path on the server and returns the event stream it answers.
func (c *client) post(ctx context.Context, path string, form url.Values) (*stream, error) {
	ctx, stop := context.WithCancel(ctx)
	req, err := c.request(ctx, "POST", c.base, path, form.Encode())
	if err != nil {
		stop()
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		stop()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		stop()
		return nil, fmt.Errorf("POST %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	return &stream{body: resp.Body, r: bufio.NewReaderSize(resp.Body, 1<<10), stop: stop,
		cancelled: make(chan time.Time, 1), done: make(chan struct{})}, nil
}

// open starts a streaming run and reads up to its first event, which names the run.
func (c *client) open(ctx context.Context, message string) (*stream, error) {
	s, err := c.post(ctx, "/workflows/"+c.wf+"/runs", url.Values{"message": {message}, "stream": {"true"}})
	if err != nil {
		return nil, err
	}
	name, data, err := s.next()
	if err != nil {
		s.close()
		return nil, fmt.Errorf("first event: %w", err)
	}
	c.events.Add(1)
	var ev struct {
		RunID string `json:"run_id"`
	}
	if err := json.Unmarshal(data, &ev); err != nil || ev.RunID == "" || name != "WorkflowStarted" {
		s.close()
		return nil, fmt.Errorf("first event %s %q: no run id", name, data)
	}
	s.runID = ev.RunID
	return s, nil
}

// next reads one event: its name and its data line.
func (s *stream) next() (name string, data []byte, err error) {
	for {
		line, err := s.r.ReadSlice('\n')
		if err != nil {
			return "", nil, err
		}
		switch {
		case bytes.HasPrefix(line, []byte("event: ")):
			name = string(bytes.TrimSpace(line[len("event: "):]))
		case bytes.HasPrefix(line, []byte("data: ")):
			data = bytes.TrimSpace(line[len("data: "):])
		case len(line) == 1 && name != "":
			return name, data, nil
		}
	}
}

// read counts the stream's events until the workflow's terminal event or an error.
func (s *stream) read(c *client, wg *sync.WaitGroup) {
	defer wg.Done()
	defer close(s.done)
	defer s.close()
	for {
		name, _, err := s.next()
		if err != nil {
			return
		}
		c.events.Add(1)
		switch name {
		case "WorkflowCancelled":
			s.cancelled <- time.Now()
			return
		case "WorkflowCompleted", "WorkflowError":
			return
		}
	}
}

func (s *stream) close() {
	s.stop()
	s.body.Close()
}

// queue starts a background run and returns its id.
func (c *client) queue(ctx context.Context, message string) (string, error) {
	form := url.Values{"message": {message}, "background": {"true"}, "stream": {"false"}}.Encode()
	req, err := c.request(ctx, "POST", c.base, "/workflows/"+c.wf+"/runs", form)
	if err != nil {
		return "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	var ans struct {
		RunID string `json:"run_id"`
	}
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(b, &ans) != nil || ans.RunID == "" {
		return "", fmt.Errorf("queue run: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return ans.RunID, nil
}

// follow streams a run's events from the first on: stored ones, then live ones.
func (c *client) follow(ctx context.Context, runID string) (*stream, error) {
	s, err := c.post(ctx, "/workflows/"+c.wf+"/runs/"+runID+"/resume", url.Values{"last_event_index": {"-1"}})
	if err != nil {
		return nil, err
	}
	s.runID = runID
	return s, nil
}

// finish reads s to the workflow's terminal event and returns its name; nested
// runs' ends do not end it.
func (s *stream) finish(c *client) (string, error) {
	defer s.close()
	for {
		name, _, err := s.next()
		if err != nil {
			return "", err
		}
		c.events.Add(1)
		switch name {
		case "WorkflowCompleted", "WorkflowCancelled", "WorkflowError":
			return name, nil
		}
	}
}

// cancel cancels a run over HTTP, through cancelBase, and returns when it was
// answered.
func (c *client) cancel(ctx context.Context, runID string) (time.Time, error) {
	path := "/workflows/" + c.wf + "/runs/" + runID + "/cancel"
	if c.noWait {
		path += "?wait=false"
	}
	req, err := c.request(ctx, "POST", c.cancelBase, path, "")
	if err != nil {
		return time.Time{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return time.Time{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	at := time.Now()
	if resp.StatusCode != http.StatusOK {
		return at, fmt.Errorf("cancel %s: %s: %s", runID, resp.Status, bytes.TrimSpace(b))
	}
	return at, nil
}

// cancelLatency cancels s's run and returns the time from sending the cancel
// request to receiving WorkflowCancelled on s, and to receiving the cancel's answer.
func (c *client) cancelLatency(ctx context.Context, s *stream, timeout time.Duration) (latency, answer time.Duration, err error) {
	type answered struct {
		at  time.Time
		err error
	}
	t0 := time.Now()
	answers := make(chan answered, 1)
	go func() {
		at, err := c.cancel(ctx, s.runID)
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
	return latency, answer, nil
}
