package mcp_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/kern-dev/kern/config"
	"github.com/kern-dev/kern/run"
)

// An agent declared in kern.yaml gets the tools its include names, from a stdio
// server the file declares.
func TestConfigAgentUsesServer(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`models:
  m: {provider: scripted, text: hi}
mcp_servers:
  go: {command: %q, args: ["-test.run=^$"], env: {%s: stdio}}
agents:
  a: {model: m, tools: [{name: "mcp:go", include: [echo]}]}
`, exe, serverEnv)
	cfg, err := config.Parse("kern.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.Close()
	tools, err := cfg.Agents[0].Toolsets[0].Tools(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := names(tools); len(got) != 1 || got[0] != "echo" {
		t.Fatalf("tools = %v, want [echo]", got)
	}
	out, err := cfg.Agents[0].Run(t.Context(), "hello")
	if err != nil || out.Status != run.StatusCompleted {
		t.Fatalf("run = %v, %v", out, err)
	}
}
