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
	http   *http.Client
	base   string
	wf     string
	key    string
	events atomic.Int64 // SSE events received on every stream
}

func newClient(base, workflowID, key string, conns int) *client {
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
	return &client{http: &http.Client{Transport: tr}, base: strings.TrimSuffix(base, "/"), wf: workflowID, key: key}
}

func (c *client) close() { c.http.CloseIdleConnections() }

func (c *client) request(ctx context.Context, method, path, body string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, strings.NewReader(body))
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

// open starts a streaming run and reads up to its first event, which names the run.
func (c *client) open(ctx context.Context, message string) (*stream, error) {
	ctx, stop := context.WithCancel(ctx)
	form := url.Values{"message": {message}, "stream": {"true"}}.Encode()
	req, err := c.request(ctx, "POST", "/workflows/"+c.wf+"/runs", form)
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
		return nil, fmt.Errorf("start run: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	s := &stream{body: resp.Body, r: bufio.NewReaderSize(resp.Body, 1<<10), stop: stop,
		cancelled: make(chan time.Time, 1), done: make(chan struct{})}
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

// cancel cancels a run over HTTP and returns when the request was sent.
func (c *client) cancel(ctx context.Context, runID string) error {
	req, err := c.request(ctx, "POST", "/workflows/"+c.wf+"/runs/"+runID+"/cancel", "")
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cancel %s: %s: %s", runID, resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// cancelLatency cancels s's run and returns the time from sending the cancel
// request to receiving WorkflowCancelled on s.
func (c *client) cancelLatency(ctx context.Context, s *stream, timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- c.cancel(ctx, s.runID) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case at := <-s.cancelled:
		return at.Sub(t0), <-errc
	case err := <-errc:
		if err != nil {
			return 0, err
		}
	case <-t.C:
		return 0, errors.New("no WorkflowCancelled within " + timeout.String())
	}
	select {
	case at := <-s.cancelled:
		return at.Sub(t0), nil
	case <-s.done:
		select {
		case at := <-s.cancelled:
			return at.Sub(t0), nil
		default:
			return 0, errors.New("stream ended without WorkflowCancelled")
		}
	case <-t.C:
		return 0, errors.New("no WorkflowCancelled within " + timeout.String())
	}
}
