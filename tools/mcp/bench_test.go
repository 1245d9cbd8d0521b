package mcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/tools/mcp"
)

// BenchmarkCall compares a call of an MCP server's tool, over stdio and streamable
// HTTP, with a call of the same tool as a tool.Func in the process.
func BenchmarkCall(b *testing.B) {
	args := json.RawMessage(`{"text":"hi"}`)
	direct := tool.Func("echo", "Echoes its text.", func(_ context.Context, in echoArgs) (string, error) {
		return "echo: " + in.Text, nil
	})
	b.Run("func", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := direct.Call(b.Context(), args); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, tr := range []string{"stdio", "http"} {
		b.Run(tr, func(b *testing.B) {
			var cl *mcp.Client
			if tr == "stdio" {
				cl, _ = stdioServer(b)
			} else {
				cl, _, _ = httpServer(b)
			}
			tools, err := cl.Tools(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			echo := find(b, tools, "echo")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := echo.Call(b.Context(), args); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestMeasureCalls reports the p50/p99 of MCP calls and of the cancel of a call in
// flight (cancel → the call returned, cancel → the server saw it), when
// KERN_MEASURE=1.
func TestMeasureCalls(t *testing.T) {
	if os.Getenv("KERN_MEASURE") == "" {
		t.Skip("set KERN_MEASURE=1 to measure")
	}
	const n = 200
	transports(t, func(t *testing.T, c *mcp.Client, o *observer) {
		tools, err := c.Tools(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		echo, slow := find(t, tools, "echo"), find(t, tools, "slow")
		var call, returned, seen []time.Duration
		for range n {
			start := time.Now()
			if _, err := echo.Call(t.Context(), json.RawMessage(`{"text":"x"}`)); err != nil {
				t.Fatal(err)
			}
			call = append(call, time.Since(start))
		}
		for range n / 4 {
			ctx, cancel := context.WithCancel(t.Context())
			errc := make(chan error, 1)
			go func() { _, err := slow.Call(ctx, nil); errc <- err }()
			o.next(t, "started slow")
			start := time.Now()
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			returned = append(returned, time.Since(start))
			o.next(t, "cancelled slow")
			seen = append(seen, time.Since(start))
		}
		t.Logf("call p50 %v p99 %v; cancel->returned p50 %v p99 %v; cancel->server saw it p50 %v p99 %v",
			pct(call, 50), pct(call, 99), pct(returned, 50), pct(returned, 99), pct(seen, 50), pct(seen, 99))
	})
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}
