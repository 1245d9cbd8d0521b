package agentos

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/workflow"
)

// countingListener counts the writes to the connections it accepts: each is a
// write system call on the socket.
type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, writes: &l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// BenchmarkSSEEvents measures the whole per-event path of a streamed run over
// HTTP, from the model's chunk to the bytes on the socket, with no store and with
// SQLite (every event stored before it is sent): per event, the allocations of the
// server and the client together, and the socket writes (system calls) of the
// server. One op is a run of 500 chunks streamed without pause, read to its end.
func BenchmarkSSEEvents(b *testing.B) {
	const chunks = 500
	for _, name := range []string{"memory", "sqlite"} {
		b.Run(name, func(b *testing.B) {
			wf := &workflow.Workflow{Name: "bench", Steps: []workflow.Step{
				workflow.AgentStep("one", &agent.Agent{Name: "A", Model: scripted.New(strings.Repeat("word ", chunks))}, ""),
			}}
			srv, err := New(benchConfig(b, name, wf))
			if err != nil {
				b.Fatal(err)
			}
			ts := httptest.NewUnstartedServer(srv.Handler())
			ln := &countingListener{Listener: ts.Listener}
			ts.Listener = ln
			ts.Start()
			defer ts.Close()
			defer srv.Shutdown(context.Background())
			client := ts.Client()
			defer client.CloseIdleConnections()
			var events int64
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			writes := ln.writes.Load()
			b.ResetTimer()
			for b.Loop() {
				resp, err := client.Post(ts.URL+"/workflows/bench/runs", formType, strings.NewReader("message=go&stream=true"))
				if err != nil {
					b.Fatal(err)
				}
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
				r := bufio.NewReaderSize(resp.Body, 1<<20)
				for {
					line, err := r.ReadSlice('\n')
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					if len(line) > 4 && string(line[:4]) == "id: " {
						events++
					}
				}
				resp.Body.Close()
			}
			b.StopTimer()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(events), "allocs/event")
			b.ReportMetric(float64(ln.writes.Load()-writes)/float64(events), "writes/event")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
		})
	}
}
