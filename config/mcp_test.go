package config

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMCPServers(t *testing.T) {
	t.Setenv("KERN_TEST_TOKEN", "s3cret")
	src := `models:
  m: {provider: scripted, text: hi}
mcp_servers:
  files: {command: npx, args: [-y, server-filesystem, /tmp], env: {DEBUG: "1"}}
  remote: {url: "https://mcp.example.com/mcp", headers: {Authorization: "Bearer ${KERN_TEST_TOKEN}"}}
agents:
  a: {model: m, tools: [hackernews, "mcp:files", {name: "mcp:remote", include: [search]}]}
`
	cfg, err := Parse("kern.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.Close()
	if len(cfg.MCPServers) != 2 || cfg.MCPServers[0].Name() != "files" || cfg.MCPServers[1].Name() != "remote" {
		t.Fatalf("MCPServers = %v", cfg.MCPServers)
	}
	a := cfg.Agents[0]
	if len(a.Tools) != 2 || len(a.Toolsets) != 2 {
		t.Errorf("agent a: %d tools, %d toolsets; want 2 and 2", len(a.Tools), len(a.Toolsets))
	}
	if a.Toolsets[0] != cfg.MCPServers[0] {
		t.Error("mcp:files is not the files client")
	}
}

func TestParseMCPBad(t *testing.T) {
	agent := "agents:\n  a: {model: m, tools: [\"mcp:s\"]}\n"
	head := "models:\n  m: {provider: scripted, text: hi}\nmcp_servers:\n"
	tests := []struct {
		name string
		yaml string
		line int
		want string
	}{
		{"neither", head + "  s: {args: [x]}\n" + agent, 4, "give a command"},
		{"both", head + "  s: {command: x, url: http://x}\n" + agent, 4, "not both"},
		{"headers on stdio", head + "  s: {command: x, headers: {A: b}}\n" + agent, 4, "headers go with a url"},
		{"env on http", head + "  s: {url: http://x, env: {A: b}}\n" + agent, 4, "args and env go with a command"},
		{"unknown key", head + "  s: {command: x, cwd: /}\n" + agent, 4, `unknown key "cwd"`},
		{"args not a list", head + "  s: {command: x, args: x}\n" + agent, 4, "must be a list of strings"},
		{"unknown server", head + "  s: {command: x}\nagents:\n  a: {model: m, tools: [\"mcp:t\"]}\n", 6, `unknown MCP server "t"`},
		{"name not mcp", head + "  s: {command: x}\nagents:\n  a: {model: m, tools: [{name: s}]}\n", 6, "mcp:<server>"},
		{"include not a list", head + "  s: {command: x}\nagents:\n  a: {model: m, tools: [{name: \"mcp:s\", include: x}]}\n", 6, "must be a list of strings"},
	}
	for _, tt := range tests {
		_, err := Parse("kern.yaml", []byte(tt.yaml))
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Errorf("%s: error %v, want Errors", tt.name, err)
			continue
		}
		if first := es[0]; first.Line != tt.line || !strings.Contains(first.Msg, tt.want) {
			t.Errorf("%s: %v\nwant line %d and %q", tt.name, err, tt.line, tt.want)
		}
	}
}
