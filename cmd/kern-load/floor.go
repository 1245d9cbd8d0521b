package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	kernrun "github.com/kern-dev/kern/run"
)

// The floor is the least a Go SSE server can do for the load kern-load offers: a
// bare net/http handler that writes and flushes one event of about 250 bytes per
// tick, with a cancel that ends a stream. Measured in the same run as kern, with
// the same client, it turns kern's CPU per event and memory per stream into ratios
// that mean the same on a quiet machine and a busy one.

// floorServer serves the floor's routes: streaming runs of any workflow, and
// cancels of them (wait=false answers at once; otherwise once the stream ended).
type floorServer struct {
	delay time.Duration

	mu   sync.Mutex
	runs map[string]*floorRun
	next int
}

// floorRun is one open stream of the floor: cancel ends it, done is closed when
// it has written its last event.
type floorRun struct {
	cancel chan struct{}
	once   sync.Once
	done   chan struct{}
}

func newFloorServer(delay time.Duration) *floorServer {
	return &floorServer{delay: delay, runs: make(map[string]*floorRun)}
}

func (f *floorServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /workflows/{workflow_id}/runs", f.stream)
	mux.HandleFunc("POST /workflows/{workflow_id}/runs/{run_id}/cancel", f.cancelRun)
	mux.HandleFunc("POST /runs/{run_id}/cancel", f.cancelRun)
	return mux
}

// stream answers a run request with a stream of a word every delay, until the run
// is cancelled or the client goes.
func (f *floorServer) stream(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("message") == "" {
		http.Error(w, `{"detail":"message is required"}`, http.StatusUnprocessableEntity)
		return
	}
	rc := http.NewResponseController(w)
	f.mu.Lock()
	f.next++
	id := "floor-" + strconv.Itoa(f.next)
	fr := &floorRun{cancel: make(chan struct{}), done: make(chan struct{})}
	f.runs[id] = fr
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.runs, id)
		f.mu.Unlock()
		close(fr.done)
	}()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	var buf []byte
	index, workflowID := 0, r.PathValue("workflow_id")
	write := func(name kernrun.EventType, content string) error {
		buf = floorEvent(buf[:0], name, id, workflowID, index, content)
		index++
		if _, err := w.Write(buf); err != nil {
			return err
		}
		return rc.Flush()
	}
	if write(kernrun.EventWorkflowStarted, "") != nil {
		return
	}
	t := time.NewTicker(f.delay)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if write(kernrun.EventRunContent, "word ") != nil {
				return
			}
		case <-fr.cancel:
			_ = write(kernrun.EventWorkflowCancelled, "")
			return
		case <-r.Context().Done():
			return
		}
	}
}

// floorEvent appends an SSE event framed as kern frames its events, with about
// 250 bytes of JSON data, as a nested agent's content chunk has.
func floorEvent(b []byte, name kernrun.EventType, runID, workflowID string, index int, content string) []byte {
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\nid: "...)
	b = strconv.AppendInt(b, int64(index), 10)
	b = append(b, `
data: {"event":"`...)
	b = append(b, name...)
	b = append(b, `","run_id":"`...)
	b = append(b, runID...)
	b = append(b, `","created_at":`...)
	b = strconv.AppendInt(b, time.Now().Unix(), 10)
	b = append(b, `,"event_index":`...)
	b = strconv.AppendInt(b, int64(index), 10)
	b = append(b, `,"workflow_id":"`...)
	b = append(b, workflowID...)
	b = append(b, `","session_id":"00000000-0000-7000-8000-000000000000","step_name":"write","step_index":0,"agent_id":"load-writer","content":"`...)
	b = append(b, content...)
	b = append(b, "\"}\n\n"...)
	return b
}

// cancelRun ends a floor run and answers as kern's cancel route does.
func (f *floorServer) cancelRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("run_id")
	f.mu.Lock()
	fr := f.runs[id]
	f.mu.Unlock()
	status := kernrun.StatusPending
	if fr != nil {
		fr.once.Do(func() { close(fr.cancel) })
		if r.URL.Query().Get("wait") != "false" {
			select {
			case <-fr.done:
			case <-r.Context().Done():
				return
			}
		}
		status = kernrun.StatusCancelled
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"run_id": id, "status": status, "known": fr != nil})
}

// serveFloor serves the floor on addr until ctx is done or timeout, printing its
// URL as the first line of out.
func serveFloor(ctx context.Context, addr string, delay, timeout time.Duration, out io.Writer) error {
	if err := loopback("http://" + addr); err != nil {
		return err
	}
	if _, _, err := raiseFDLimit(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newFloorServer(delay).handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(out, "http://"+ln.Addr().String())
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shut, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	if err := srv.Shutdown(shut); err != nil {
		srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// child is a server kern-load started as a process of its own, so that its CPU
// and memory are read apart from the client's.
type child struct {
	url string
	cmd *exec.Cmd
}

// startChild starts this program with args, which make it serve and print its URL
// as its first line of output, and returns once that line was read.
func startChild(ctx context.Context, args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	br := bufio.NewReader(out)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "http://") {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("%s %s did not print its URL: %q %v", self, strings.Join(args, " "), line, err)
	}
	go io.Copy(io.Discard, br) // the rest, so that the child never blocks on a full pipe
	return &child{url: strings.TrimSpace(line), cmd: cmd}, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop interrupts the child and waits for it.
func (c *child) stop() error {
	c.cmd.Process.Signal(os.Interrupt)
	err := c.cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) && !exit.Exited() {
		return nil // ended by the signal
	}
	return err
}
