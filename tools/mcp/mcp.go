// Package mcp gives agents the tools of Model Context Protocol servers: a command
// kern starts and stops (stdio) or a URL (streamable HTTP).
//
// A Client is one server's connection, made on first use and made again after it
// drops. It is a tool.Toolset: an agent given it (agent.Agent's Toolsets) asks for
// its tools before each model request, so a server's notifications/tools/list_changed
// reaches the model at its next request. A call carries the run's context: when the
// run is cancelled the call stops waiting at once and the server is sent
// notifications/cancelled with the request's id; a server that dies mid-call makes
// the call a tool error the model reads, never a hang.
//
// The official Go SDK (github.com/modelcontextprotocol/go-sdk) speaks the protocol;
// it is used in sdk.go only, behind the small session interface below, so that a
// change of the SDK stays in one file.
package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/kern-dev/kern/tool"
)

// ErrClosed is the error of a Client used after Close.
var ErrClosed = errors.New("mcp: client closed")

// Server says how to reach an MCP server: Command (stdio) or URL (streamable HTTP),
// exactly one of them.
type Server struct {
	// Name names the server in errors (its key in kern.yaml).
	Name string
	// Command is the program kern starts, with Args; its standard input and output
	// carry the protocol. Env is added to kern's own environment for it, and its
	// standard error goes to Stderr (nil discards it). Close ends the process.
	Command string
	Args    []string
	Env     map[string]string
	Stderr  io.Writer
	// URL is the endpoint of a streamable HTTP server; Headers are sent with every
	// request (an Authorization header, for instance). HTTPClient is the client
	// used (nil: http.DefaultClient).
	URL        string
	Headers    map[string]string
	HTTPClient *http.Client
}

// Validate reports what makes s unusable: neither or both of Command and URL.
func (s Server) Validate() error {
	switch {
	case s.Command == "" && s.URL == "":
		return fmt.Errorf("mcp server %q: neither a command nor a url", s.Name)
	case s.Command != "" && s.URL != "":
		return fmt.Errorf("mcp server %q: both a command and a url; give one", s.Name)
	}
	return nil
}

// toolInfo is what a server says of one of its tools.
type toolInfo struct {
	name        string
	description string
	schema      json.RawMessage
}

// session is one live connection to a server: what Client needs of the SDK.
type session interface {
	// listTools returns the server's tools, every page of them.
	listTools(ctx context.Context) ([]toolInfo, error)
	// callTool calls a tool; isError reports a result the server marked as an
	// error. A cancelled ctx returns at once and tells the server.
	callTool(ctx context.Context, name string, args json.RawMessage) (text string, isError bool, err error)
	// done is closed once the connection has ended.
	done() <-chan struct{}
	// close ends the connection (and a stdio server's process) and waits for it.
	close() error
}

// dialer connects to a server; listChanged is called when the server says its tools
// changed.
type dialer func(ctx context.Context, s Server, listChanged func()) (session, error)

// Client is the connection to one MCP server and the tools it offers. It is safe
// for concurrent use; its zero value is not usable: see New.
type Client struct {
	srv  Server
	dial dialer

	// lock is held (a token in the channel) while the connection is made or the
	// tools are listed, so that callers who wait can give up when their ctx ends.
	lock chan struct{}

	mu     sync.Mutex // guards the fields below
	sess   session    // nil before the first use and after the connection dropped
	tools  []tool.Tool
	stale  bool // the server's tools changed since they were listed
	closed bool
	// changed, when set (by tests), is called after the server said its tools
	// changed.
	changed func()

	// dropping counts the sessions dropped and closing: their close waits for
	// their calls in flight, which no caller waits for (Close does).
	dropping sync.WaitGroup
}

// New returns a Client of the server s. It connects on first use.
func New(s Server) *Client {
	return &Client{srv: s, dial: dialSDK, lock: make(chan struct{}, 1)}
}

// Name returns the server's name.
func (c *Client) Name() string { return c.srv.Name }

// Tools returns the server's tools, listing them again when the server said they
// changed, and connecting when no connection is live. A tool whose name model
// providers refuse (MCP allows dots, slashes and 128 characters; OpenAI and
// Anthropic ^[a-zA-Z0-9_-]{1,64}$) is offered with the others replaced by _ and
// cut to 64, a suffix _2, _3... telling apart names that end up the same; calls
// use the server's own name.
func (c *Client) Tools(ctx context.Context) ([]tool.Tool, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if tools := c.tools; tools != nil && !c.stale && c.live() {
		c.mu.Unlock()
		return tools, nil
	}
	c.mu.Unlock()
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	defer c.release()
	sess, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if tools := c.tools; tools != nil && !c.stale && c.sess == sess {
		c.mu.Unlock()
		return tools, nil // another caller listed them while this one waited
	}
	c.stale = false // a change from now on is listed at the next call
	c.mu.Unlock()
	infos, err := sess.listTools(ctx)
	if err != nil {
		c.drop(sess, err)
		return nil, fmt.Errorf("mcp server %q: list tools: %w", c.srv.Name, err)
	}
	tools := make([]tool.Tool, len(infos))
	taken := make(map[string]bool, len(infos))
	for i, ti := range infos {
		tools[i] = &mcpTool{c: c, info: ti, name: modelName(ti.name, taken)}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	c.tools = tools
	return tools, nil
}

// live reports whether the connection is up; c.mu is held.
func (c *Client) live() bool {
	if c.sess == nil {
		return false
	}
	select {
	case <-c.sess.done():
		return false
	default:
		return true
	}
}

// session returns the live connection, making one if there is none; c.lock is held.
func (c *Client) session(ctx context.Context) (session, error) {
	c.mu.Lock()
	if c.live() {
		sess := c.sess
		c.mu.Unlock()
		return sess, nil
	}
	old := c.sess
	c.sess = nil
	c.mu.Unlock()
	if old != nil {
		old.close() // it ended already: this reaps a stdio server's process
	}
	if err := c.srv.Validate(); err != nil {
		return nil, err
	}
	sess, err := c.dial(ctx, c.srv, c.listChanged)
	if err != nil {
		return nil, fmt.Errorf("mcp server %q: connect: %w", c.srv.Name, err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		sess.close()
		return nil, ErrClosed
	}
	c.sess = sess
	c.mu.Unlock()
	return sess, nil
}

// current returns the live connection for a call, connecting again when the last one
// dropped.
func (c *Client) current(ctx context.Context) (session, error) {
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return nil, ErrClosed
	case c.live():
		sess := c.sess
		c.mu.Unlock()
		return sess, nil
	}
	c.mu.Unlock()
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	defer c.release()
	return c.session(ctx)
}

// acquire takes the lock held while the connection is made or the tools are
// listed, or gives up when ctx ends.
func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// release lets go of the lock acquire took.
func (c *Client) release() { <-c.lock }

// drop forgets sess after err, unless err says the server answered (a JSON-RPC
// error) or the caller gave up: the next use connects again.
func (c *Client) drop(sess session, err error) {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || isServerError(err) {
		return
	}
	c.mu.Lock()
	if c.sess != sess {
		c.mu.Unlock()
		return
	}
	c.sess = nil
	c.mu.Unlock()
	c.dropping.Go(func() { sess.close() })
}

// listChanged marks the tools to be listed again.
func (c *Client) listChanged() {
	c.mu.Lock()
	c.stale = true
	changed := c.changed
	c.mu.Unlock()
	if changed != nil {
		changed()
	}
}

// Include returns a Toolset of the server's tools named in names only (by the
// server's name or the name models know them by, see Tools). A name the server does
// not offer is not an error (the server may add it later).
func (c *Client) Include(names ...string) tool.Toolset {
	return &subset{c: c, names: slices.Clone(names)}
}

// Close ends the connection (and a stdio server's process). The Client is unusable
// after it.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	sess := c.sess
	c.sess, c.tools = nil, nil
	c.mu.Unlock()
	var err error
	if sess != nil {
		err = sess.close()
	}
	c.dropping.Wait()
	return err
}

// subset is a Client's tools filtered by name.
type subset struct {
	c     *Client
	names []string
}

func (s *subset) Tools(ctx context.Context) ([]tool.Tool, error) {
	all, err := s.c.Tools(ctx)
	if err != nil {
		return nil, err
	}
	var tools []tool.Tool
	for _, t := range all {
		if mt := t.(*mcpTool); slices.Contains(s.names, mt.info.name) || slices.Contains(s.names, mt.name) {
			tools = append(tools, t)
		}
	}
	return tools, nil
}

// mcpTool is one tool of a server.
type mcpTool struct {
	c    *Client
	info toolInfo
	name string // the name the model knows it by (see modelName)
}

func (t *mcpTool) Definition() tool.Definition {
	return tool.Definition{Name: t.name, Description: t.info.description, Parameters: t.info.schema}
}

// maxName is the longest tool name the model providers accept.
const maxName = 64

// modelName returns the name a server's tool is offered to models by: its own when
// model providers accept it (^[a-zA-Z0-9_-]{1,64}$), else with every other
// character replaced by _ and cut to 64; a name another tool of the server took
// already gets a suffix _2, _3... MCP allows names (dots, slashes, 128 characters)
// that OpenAI and Anthropic refuse.
func modelName(name string, taken map[string]bool) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		b = []byte("tool")
	}
	base := string(b[:min(len(b), maxName)])
	out := base
	for n := 2; taken[out]; n++ {
		suffix := fmt.Sprintf("_%d", n)
		out = base[:min(len(base), maxName-len(suffix))] + suffix
	}
	taken[out] = true
	return out
}

// Call calls the tool on the server. A result the server marks as an error is
// returned as an error holding its text.
func (t *mcpTool) Call(ctx context.Context, args json.RawMessage) (string, error) {
	if len(args) > 0 && !json.Valid(args) {
		// The model's mistake, told to it; sent, it would fail in the SDK as if
		// the connection had (and the session would be dropped under other calls).
		return "", fmt.Errorf("mcp server %q: tool %q: the arguments are not valid JSON", t.c.srv.Name, t.info.name)
	}
	sess, err := t.c.current(ctx)
	if err != nil {
		return "", err
	}
	text, isError, err := sess.callTool(ctx, t.info.name, args)
	if err != nil {
		if ctx.Err() != nil {
			return "", context.Cause(ctx)
		}
		t.c.drop(sess, err)
		return "", fmt.Errorf("mcp server %q: tool %q: %w", t.c.srv.Name, t.info.name, err)
	}
	if isError {
		return "", &ToolError{Server: t.c.srv.Name, Tool: t.info.name, Text: text}
	}
	return text, nil
}

// ToolError is a tool result the server marked as an error.
type ToolError struct {
	Server, Tool string
	Text         string // the result's text, what the model reads
}

func (e *ToolError) Error() string {
	if strings.TrimSpace(e.Text) == "" {
		return fmt.Sprintf("mcp server %q: tool %q failed", e.Server, e.Tool)
	}
	return e.Text
}
