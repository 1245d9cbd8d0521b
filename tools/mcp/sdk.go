package mcp

// The one file that knows the SDK: a session over an *sdk.ClientSession.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// terminateAfter is how long Close waits for a stdio server to exit once its input
// is closed, before it is sent SIGTERM (and as long again before SIGKILL).
const terminateAfter = 2 * time.Second

// implementation is what kern tells servers of itself.
var implementation = &sdk.Implementation{Name: "kern", Version: "1"}

// dialSDK connects to s with the SDK.
func dialSDK(ctx context.Context, s Server, listChanged func()) (session, error) {
	var t sdk.Transport
	if s.Command != "" {
		cmd := exec.Command(s.Command, s.Args...)
		if len(s.Env) > 0 {
			cmd.Env = os.Environ()
			for k, v := range s.Env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
		}
		cmd.Stderr = s.Stderr
		t = &sdk.CommandTransport{Command: cmd, TerminateDuration: terminateAfter}
	} else {
		hc := s.HTTPClient
		if hc == nil {
			hc = http.DefaultClient
		}
		if len(s.Headers) > 0 {
			c := *hc
			c.Transport = &headers{base: hc.Transport, h: s.Headers}
			hc = &c
		}
		t = &sdk.StreamableClientTransport{Endpoint: s.URL, HTTPClient: hc, MaxRetries: 2}
	}
	c := sdk.NewClient(implementation, &sdk.ClientOptions{
		ToolListChangedHandler: func(context.Context, *sdk.ToolListChangedRequest) { listChanged() },
	})
	cs, err := c.Connect(ctx, t, nil)
	if err != nil {
		return nil, err
	}
	sess := &sdkSession{cs: cs, ended: make(chan struct{})}
	go func() { // ends with the connection, which close ends and waits for
		cs.Wait()
		close(sess.ended)
	}()
	return sess, nil
}

type sdkSession struct {
	cs    *sdk.ClientSession
	ended chan struct{} // closed once the connection has ended
}

func (s *sdkSession) done() <-chan struct{} { return s.ended }

func (s *sdkSession) close() error {
	err := s.cs.Close()
	<-s.ended
	if errors.Is(err, sdk.ErrConnectionClosed) {
		return nil
	}
	return err
}

func (s *sdkSession) listTools(ctx context.Context) ([]toolInfo, error) {
	var infos []toolInfo
	for t, err := range s.cs.Tools(ctx, nil) {
		if err != nil {
			return nil, err
		}
		schema, err := json.Marshal(t.InputSchema)
		if err != nil {
			return nil, fmt.Errorf("tool %q: input schema: %w", t.Name, err)
		}
		if string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object"}`)
		}
		infos = append(infos, toolInfo{name: t.Name, description: t.Description, schema: schema})
	}
	return infos, nil
}

func (s *sdkSession) callTool(ctx context.Context, name string, args json.RawMessage) (string, bool, error) {
	p := &sdk.CallToolParams{Name: name}
	if len(args) > 0 && string(args) != "null" {
		p.Arguments = args
	}
	if trace.SpanContextFromContext(ctx).IsValid() {
		// The caller's trace goes with the call, in the request's _meta (where
		// MCP's trace-context proposal puts it), for a server that traces too.
		c := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, c)
		p.Meta = make(sdk.Meta, len(c))
		for k, v := range c {
			p.Meta[k] = v
		}
	}
	res, err := s.cs.CallTool(ctx, p)
	if err != nil {
		return "", false, err
	}
	return resultText(res), res.IsError, nil
}

// resultText is the text the model reads of a result: its text contents joined by
// newlines, other contents as their JSON; the structured content when there is no
// other.
func resultText(res *sdk.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*sdk.TextContent); ok {
			parts = append(parts, t.Text)
			continue
		}
		if b, err := json.Marshal(c); err == nil {
			parts = append(parts, string(b))
		}
	}
	if len(parts) == 0 && res.StructuredContent != nil {
		if b, err := json.Marshal(res.StructuredContent); err == nil {
			return string(b)
		}
	}
	return strings.Join(parts, "\n")
}

// isServerError reports whether err is an error the server answered with.
func isServerError(err error) bool {
	var werr *jsonrpc.Error
	return errors.As(err, &werr)
}

// headers adds fixed headers to every request.
type headers struct {
	base http.RoundTripper
	h    map[string]string
}

func (t *headers) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.h {
		r.Header.Set(k, v)
	}
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}
