package mcp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/tools/mcp"
)

// everythingDir is where .ci/run installs the reference MCP server
// @modelcontextprotocol/server-everything (npm ci, from the committed lock file).
const everythingDir = "testdata/everything"

// everything returns a Client of the reference server run over stdio, and the pid
// of its process. Without Node or the installed server the test is skipped loudly,
// and fails under CI=true.
func everything(t *testing.T) (*mcp.Client, int) {
	t.Helper()
	script, _ := filepath.Abs(filepath.Join(everythingDir, "node_modules/@modelcontextprotocol/server-everything/dist/index.js"))
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(script)
	}
	if err != nil {
		if pgtest.InCI() {
			t.Fatalf("the reference MCP server is required in CI: %v (.ci/run installs it)", err)
		}
		t.Skipf("!!! REFERENCE MCP SERVER TESTS SKIPPED: %v; run `npm ci --prefix tools/mcp/%s` to enable them", err, everythingDir)
	}
	pr, pw := io.Pipe()
	pids := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		if sc.Scan() {
			pid, _ := strconv.Atoi(sc.Text())
			pids <- pid
		}
		for sc.Scan() { // the server's own log
		}
	}()
	// The shell prints its pid, then becomes the server.
	c := mcp.New(mcp.Server{Name: "everything", Command: "/bin/sh",
		Args: []string{"-c", `echo $$ >&2; exec "$0" "$1" stdio`, node, script}, Stderr: pw})
	t.Cleanup(func() {
		c.Close()
		pw.Close()
		<-done
	})
	if _, err := c.Tools(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c, <-pids
}

func TestEverythingListAndCall(t *testing.T) {
	c, _ := everything(t)
	tools, err := c.Tools(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tools: %v", names(tools))
	for _, name := range []string{"echo", "get-sum", "trigger-long-running-operation"} {
		find(t, tools, name)
	}
	got, err := find(t, tools, "echo").Call(t.Context(), json.RawMessage(`{"message":"kern"}`))
	if err != nil || got != "Echo: kern" {
		t.Errorf("echo = %q, %v", got, err)
	}
	got, err = find(t, tools, "get-sum").Call(t.Context(), json.RawMessage(`{"a":2,"b":3}`))
	if err != nil || got != "The sum of 2 and 3 is 5." {
		t.Errorf("get-sum = %q, %v", got, err)
	}
}

// A cancelled long-running call returns at once; the server goes on answering.
func TestEverythingCancelLongRunning(t *testing.T) {
	c, _ := everything(t)
	tools, err := c.Tools(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := find(t, tools, "trigger-long-running-operation").Call(ctx, json.RawMessage(`{"duration":600,"steps":600}`))
		errc <- err
	}()
	cause := errors.New("run cancelled")
	start := time.Now()
	cancel(cause)
	if err := <-errc; !errors.Is(err, cause) {
		t.Fatalf("call = %v, want the cancel's cause", err)
	}
	t.Logf("cancel -> call returned: %v", time.Since(start))
	got, err := find(t, tools, "echo").Call(t.Context(), json.RawMessage(`{"message":"still here"}`))
	if err != nil || got != "Echo: still here" {
		t.Errorf("echo after the cancel = %q, %v", got, err)
	}
}

// The server killed during a call: the call is an error, and the next call starts
// the server again.
func TestEverythingKilledMidCall(t *testing.T) {
	c, pid := everything(t)
	tools, err := c.Tools(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := find(t, tools, "trigger-long-running-operation").Call(t.Context(), json.RawMessage(`{"duration":600,"steps":600}`))
		errc <- err
	}()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil {
		t.Fatal("call to a killed server: no error")
	}
	got, err := find(t, tools, "echo").Call(t.Context(), json.RawMessage(`{"message":"back"}`))
	if err != nil || got != "Echo: back" {
		t.Errorf("echo after the kill = %q, %v", got, err)
	}
}
