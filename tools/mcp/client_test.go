package mcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/tools/mcp"
)

// transports runs a test against the stdio server and the HTTP server.
func transports(t *testing.T, test func(t *testing.T, c *mcp.Client, o *observer)) {
	t.Run("stdio", func(t *testing.T) {
		c, o := stdioServer(t)
		test(t, c, o)
	})
	t.Run("http", func(t *testing.T) {
		c, o, _ := httpServer(t)
		test(t, c, o)
	})
}

func find(t testing.TB, tools []tool.Tool, name string) tool.Tool {
	t.Helper()
	for _, tl := range tools {
		if tl.Definition().Name == name {
			return tl
		}
	}
	t.Fatalf("no tool %q", name)
	return nil
}

func names(tools []tool.Tool) []string {
	var ns []string
	for _, tl := range tools {
		ns = append(ns, tl.Definition().Name)
	}
	slices.Sort(ns)
	return ns
}

func TestToolsListedAndCalled(t *testing.T) {
	transports(t, func(t *testing.T, c *mcp.Client, _ *observer) {
		ctx := t.Context()
		tools, err := c.Tools(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := names(tools), []string{"add_tool", "echo", "fail", "slow"}; !slices.Equal(got, want) {
			t.Fatalf("tools = %v, want %v", got, want)
		}
		echo := find(t, tools, "echo")
		if err := tool.Validate(echo); err != nil {
			t.Fatal(err)
		}
		var schema struct {
			Type       string                     `json:"type"`
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		}
		if err := json.Unmarshal(echo.Definition().Parameters, &schema); err != nil {
			t.Fatal(err)
		}
		if schema.Type != "object" || schema.Properties["text"] == nil || !slices.Contains(schema.Required, "text") {
			t.Errorf("echo's schema = %s", echo.Definition().Parameters)
		}
		if d := echo.Definition().Description; d != "Echoes its text." {
			t.Errorf("description = %q", d)
		}
		got, err := echo.Call(ctx, json.RawMessage(`{"text":"hi"}`))
		if err != nil || got != "echo: hi" {
			t.Errorf("echo = %q, %v", got, err)
		}
		_, err = find(t, tools, "fail").Call(ctx, nil)
		var te *mcp.ToolError
		if !errors.As(err, &te) || te.Text != "it failed" {
			t.Errorf("fail = %v, want a ToolError \"it failed\"", err)
		}
		// Invalid arguments are the server's answer, a tool error; the connection stays.
		if _, err := echo.Call(ctx, json.RawMessage(`{"text":3}`)); err == nil {
			t.Error("echo with a number: no error")
		}
		if got, err := echo.Call(ctx, json.RawMessage(`{"text":"again"}`)); err != nil || got != "echo: again" {
			t.Errorf("echo after an error = %q, %v", got, err)
		}
		// A traced caller's span goes with the call, in _meta.
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0xab}, SpanID: trace.SpanID{0xcd}, TraceFlags: trace.FlagsSampled})
		want := "echo: traced [traceparent 00-ab000000000000000000000000000000-cd00000000000000-01]"
		if got, err := echo.Call(trace.ContextWithSpanContext(ctx, sc), json.RawMessage(`{"text":"traced"}`)); err != nil || got != want {
			t.Errorf("echo, traced = %q, %v; want %q", got, err, want)
		}
		sub, err := c.Include("echo", "missing").Tools(ctx)
		if err != nil || !slices.Equal(names(sub), []string{"echo"}) {
			t.Errorf("Include(echo, missing) = %v, %v", names(sub), err)
		}
	})
}

// A cancel of the caller's context ends the call at once and reaches the server as
// notifications/cancelled, which cancels the handler's context there.
func TestCancelReachesServer(t *testing.T) {
	transports(t, func(t *testing.T, c *mcp.Client, o *observer) {
		tools, err := c.Tools(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancelCause(t.Context())
		errc := make(chan error, 1)
		go func() {
			_, err := find(t, tools, "slow").Call(ctx, nil)
			errc <- err
		}()
		o.next(t, "started slow")
		cause := errors.New("run cancelled")
		cancel(cause)
		if err := <-errc; !errors.Is(err, cause) {
			t.Errorf("call = %v, want the cancel's cause", err)
		}
		o.next(t, "cancelled slow")
		// The connection is still good.
		if got, err := find(t, tools, "echo").Call(t.Context(), json.RawMessage(`{"text":"x"}`)); err != nil || got != "echo: x" {
			t.Errorf("echo after the cancel = %q, %v", got, err)
		}
	})
}

// A stdio server killed during a call makes the call an error, and the next use
// starts the server again.
func TestStdioServerKilledMidCall(t *testing.T) {
	c, o := stdioServer(t)
	tools, err := c.Tools(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := find(t, tools, "slow").Call(t.Context(), nil)
		errc <- err
	}()
	pid, err := strconv.Atoi(strings.TrimPrefix(o.next(t, "started slow"), "started slow "))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil || t.Context().Err() != nil {
		t.Fatalf("call to a killed server = %v, want an error", err)
	}
	// The old tool value reconnects too: a new process answers.
	got, err := find(t, tools, "echo").Call(t.Context(), json.RawMessage(`{"text":"back"}`))
	if err != nil || got != "echo: back" {
		t.Fatalf("echo after the kill = %q, %v", got, err)
	}
	if _, err := c.Tools(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// An HTTP server whose connections drop during a call makes the call an error, not
// a hang, and the next call connects again.
func TestHTTPConnectionDroppedMidCall(t *testing.T) {
	c, o, ts := httpServer(t)
	tools, err := c.Tools(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := find(t, tools, "slow").Call(t.Context(), nil)
		errc <- err
	}()
	o.next(t, "started slow")
	ts.CloseClientConnections()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("call over a dropped connection: no error")
		}
		t.Logf("call: %v", err)
	case <-time.After(30 * time.Second): // a hang is the failure; this only bounds the test
		t.Fatal("call over a dropped connection still waits after 30s")
	}
	got, err := find(t, tools, "echo").Call(t.Context(), json.RawMessage(`{"text":"back"}`))
	if err != nil || got != "echo: back" {
		t.Fatalf("echo after the drop = %q, %v", got, err)
	}
}

// notifications/tools/list_changed makes the next Tools list them again.
func TestListChanged(t *testing.T) {
	transports(t, func(t *testing.T, c *mcp.Client, _ *observer) {
		changed := make(chan struct{}, 1)
		mcp.OnListChanged(c, func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
		tools, err := c.Tools(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := find(t, tools, "add_tool").Call(t.Context(), json.RawMessage(`{"name":"late"}`)); err != nil {
			t.Fatal(err)
		}
		<-changed
		tools, err = c.Tools(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got, err := find(t, tools, "late").Call(t.Context(), json.RawMessage(`{"text":""}`)); err != nil || got != "late" {
			t.Errorf("late = %q, %v", got, err)
		}
	})
}

func TestServerValidate(t *testing.T) {
	for _, s := range []mcp.Server{{Name: "none"}, {Name: "both", Command: "x", URL: "http://x"}} {
		if err := s.Validate(); err == nil {
			t.Errorf("%s: Validate() = nil", s.Name)
		}
		if _, err := mcp.New(s).Tools(t.Context()); err == nil {
			t.Errorf("%s: Tools() = nil error", s.Name)
		}
	}
	c := mcp.New(mcp.Server{Name: "closed", Command: "/nonexistent"})
	if _, err := c.Tools(t.Context()); err == nil {
		t.Error("a command that does not exist: no error")
	}
	c.Close()
	if _, err := c.Tools(t.Context()); !errors.Is(err, mcp.ErrClosed) {
		t.Errorf("Tools after Close = %v, want ErrClosed", err)
	}
}

// TestBadArgumentsLeaveOtherCalls: a call with arguments that are not JSON fails
// at once, told to the model, without dropping the session under a call in
// flight: the slow call goes on until its own caller stops it.
func TestBadArgumentsLeaveOtherCalls(t *testing.T) {
	transports(t, func(t *testing.T, c *mcp.Client, o *observer) {
		tools, err := c.Tools(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// The bound ends the slow call only should the bad call wait for it.
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		slow := make(chan error, 1)
		go func() {
			_, err := find(t, tools, "slow").Call(ctx, nil)
			slow <- err
		}()
		o.next(t, "started slow")
		if _, err := find(t, tools, "echo").Call(t.Context(), json.RawMessage(`{"text":`)); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
			t.Fatalf("call with bad arguments: %v", err)
		}
		select {
		case err := <-slow:
			t.Fatalf("the slow call ended with the bad call: %v", err)
		default:
		}
		cancel()
		if err := <-slow; !errors.Is(err, context.Canceled) {
			t.Errorf("slow call: %v, want its caller's cancel", err)
		}
		if out, err := find(t, tools, "echo").Call(t.Context(), json.RawMessage(`{"text":"still"}`)); err != nil || !strings.Contains(out, "still") {
			t.Errorf("a call after: %q, %v", out, err)
		}
	})
}
