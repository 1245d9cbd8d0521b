package mcp_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"github.com/kern-dev/kern/tools/mcp"
)

// serverEnv makes the test binary an MCP server on its standard input and output
// (see TestMain): a real process, started and stopped by the client under test.
const serverEnv = "KERN_MCP_TEST_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(serverEnv) == "stdio" {
		// Lines on standard error tell the test what the server saw.
		s := newTestServer(func(line string) { fmt.Fprintln(os.Stderr, line) }, nil)
		if err := s.Run(context.Background(), &sdk.StdioTransport{}); err != nil {
			fmt.Fprintln(os.Stderr, "server:", err)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

type echoArgs struct {
	Text string `json:"text" jsonschema:"the text to echo"`
}

type addArgs struct {
	Name string `json:"name" jsonschema:"the new tool's name"`
}

// newTestServer returns the MCP server the tests talk to; observe hears what it
// sees ("started slow <pid>", "cancelled slow"). Closing quit ends the calls of slow
// that no cancel ended (the SDK's HTTP server does not cancel a call whose client
// went away, and its session's Close waits for the call).
func newTestServer(observe func(string), quit <-chan struct{}) *sdk.Server {
	s := sdk.NewServer(&sdk.Implementation{Name: "kern-test", Version: "1"}, nil)
	sdk.AddTool(s, &sdk.Tool{Name: "echo", Description: "Echoes its text."},
		func(ctx context.Context, req *sdk.CallToolRequest, in echoArgs) (*sdk.CallToolResult, any, error) {
			text := "echo: " + in.Text
			if tp, ok := req.Params.Meta["traceparent"].(string); ok {
				text += " [traceparent " + tp + "]" // a traced caller's
			}
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: text}}}, nil, nil
		})
	sdk.AddTool(s, &sdk.Tool{Name: "fail", Description: "Always fails."},
		func(ctx context.Context, _ *sdk.CallToolRequest, _ struct{}) (*sdk.CallToolResult, any, error) {
			return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: "it failed"}}}, nil, nil
		})
	sdk.AddTool(s, &sdk.Tool{Name: "slow", Description: "Runs until cancelled."},
		func(ctx context.Context, _ *sdk.CallToolRequest, _ struct{}) (*sdk.CallToolResult, any, error) {
			observe(fmt.Sprintf("started slow %d", os.Getpid()))
			select {
			case <-ctx.Done():
				observe("cancelled slow")
				return nil, nil, ctx.Err()
			case <-quit:
				return nil, nil, errors.New("server quits")
			}
		})
	sdk.AddTool(s, &sdk.Tool{Name: "add_tool", Description: "Adds a tool that echoes."},
		func(ctx context.Context, _ *sdk.CallToolRequest, in addArgs) (*sdk.CallToolResult, any, error) {
			sdk.AddTool(s, &sdk.Tool{Name: in.Name, Description: "Added."},
				func(context.Context, *sdk.CallToolRequest, echoArgs) (*sdk.CallToolResult, any, error) {
					return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: in.Name}}}, nil, nil
				})
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "added " + in.Name}}}, nil, nil
		})
	return s
}

// observer collects the lines a server reports, in order.
type observer struct {
	lines chan string
}

func newObserver() *observer { return &observer{lines: make(chan string, 64)} }

func (o *observer) observe(line string) { o.lines <- line }

// next waits for the next line with the prefix, skipping others.
func (o *observer) next(t testing.TB, prefix string) string {
	t.Helper()
	for line := range o.lines {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	t.Fatalf("the server ended before %q", prefix)
	return ""
}

// stdioServer returns a Client of the test binary run as a stdio server, and what
// the server reports on its standard error.
func stdioServer(t testing.TB) (*mcp.Client, *observer) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o := newObserver()
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			o.observe(sc.Text())
		}
		close(o.lines)
	}()
	c := mcp.New(mcp.Server{Name: "go", Command: exe, Args: []string{"-test.run=^$"},
		Env: map[string]string{serverEnv: "stdio"}, Stderr: pw})
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Logf("close: %v", err)
		}
		pw.Close()
		<-done
	})
	return c, o
}

// httpServer returns a Client of an in-process streamable HTTP server that wants
// the header Authorization: Bearer secret, and the test server itself.
func httpServer(t testing.TB) (*mcp.Client, *observer, *httptest.Server) {
	t.Helper()
	o := newObserver()
	quit := make(chan struct{})
	s := newTestServer(o.observe, quit)
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s }, nil)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	hc := &http.Client{Transport: &http.Transport{}}
	c := mcp.New(mcp.Server{Name: "http", URL: ts.URL, Headers: map[string]string{"Authorization": "Bearer secret"}, HTTPClient: hc})
	t.Cleanup(func() {
		close(quit)
		c.Close()
		ts.CloseClientConnections()
		ts.Close()
		hc.CloseIdleConnections()
	})
	return c, o, ts
}
