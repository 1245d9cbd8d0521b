package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/tools/mcp"
)

// mcpPrefix starts the name of an agent's tool that is an MCP server's tools.
const mcpPrefix = "mcp:"

// mcpServers builds the mcp_servers section: each entry a command kern starts
// (command, args, env) or a streamable HTTP endpoint (url, headers). Values of env
// and headers may name environment variables as ${NAME}, so that secrets stay out
// of the file.
func (l *loader) mcpServers(n *yaml.Node) []*mcp.Client {
	l.mcp = make(map[string]*mcp.Client)
	var clients []*mcp.Client
	for _, e := range l.entries(n, "mcp_servers") {
		l.declared["mcp_servers."+e.key] = true
		what := fmt.Sprintf("mcp server %q", e.key)
		f := l.fields(e.val, what, "command", "args", "env", "url", "headers")
		if f == nil {
			continue
		}
		s := mcp.Server{Name: e.key, Stderr: os.Stderr,
			Command: l.optStr(f["command"], what+" command"), Args: l.strList(f["args"], what+" args"),
			Env: l.strMap(f["env"], what+" env"), URL: l.optStr(f["url"], what+" url"),
			Headers: l.strMap(f["headers"], what+" headers")}
		switch {
		case s.Command == "" && s.URL == "":
			l.errorf(e.keyNode, "%s: give a command (stdio) or a url (streamable HTTP)", what)
			continue
		case s.Command != "" && s.URL != "":
			l.errorf(e.keyNode, "%s: give a command or a url, not both", what)
			continue
		case s.URL == "" && (f["headers"] != nil):
			l.errorf(f["headers"], "%s: headers go with a url", what)
		case s.Command == "" && (f["args"] != nil || f["env"] != nil):
			l.errorf(e.keyNode, "%s: args and env go with a command", what)
		}
		c := mcp.New(s)
		l.mcp[e.key] = c
		clients = append(clients, c)
	}
	return clients
}

// strList reads a list of strings; nil if n is nil.
func (l *loader) strList(n *yaml.Node, what string) []string {
	n = resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		l.errorf(n, "%s must be a list of strings, not %s", what, kind(n))
		return nil
	}
	var out []string
	for _, item := range n.Content {
		if s, ok := l.str(resolve(item), what+" item"); ok {
			out = append(out, s)
		}
	}
	return out
}

// strMap reads a mapping of strings, expanding ${NAME} from the environment in its
// values; nil if n is nil.
func (l *loader) strMap(n *yaml.Node, what string) map[string]string {
	if resolve(n) == nil {
		return nil
	}
	es := l.entries(n, what)
	if resolve(n).Kind != yaml.MappingNode {
		return nil
	}
	out := make(map[string]string, len(es))
	for _, e := range es {
		if s, ok := l.str(e.val, what+" "+e.key); ok {
			out[e.key] = os.ExpandEnv(s)
		}
	}
	return out
}

// namesMCP reports whether an agent's tools entry names an MCP server:
// "mcp:<server>", or a mapping whose name is or that has an include list.
func namesMCP(n *yaml.Node) bool {
	if n.Kind == yaml.MappingNode {
		if hasKey(n, "include") {
			return true // only an MCP server's tools are chosen with include
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "name" {
				return strings.HasPrefix(resolve(n.Content[i+1]).Value, mcpPrefix)
			}
		}
		return false
	}
	return strings.HasPrefix(n.Value, mcpPrefix)
}

// mcpTools returns the toolset an agent's tools entry names: "mcp:<server>" (item is
// a string) or {name: "mcp:<server>", include: [tool, ...]} (a mapping).
func (l *loader) mcpTools(item *yaml.Node, what string) tool.Toolset {
	var name string
	var include []string
	var hasInclude bool
	if item.Kind == yaml.MappingNode {
		f := l.fields(item, what+" tool", "name", "include")
		if f == nil || !l.required(item, f, what+" tool", "name") {
			return nil
		}
		var ok bool
		if name, ok = l.str(resolve(f["name"]), what+" tool name"); !ok {
			return nil
		}
		if !strings.HasPrefix(name, mcpPrefix) {
			l.errorf(f["name"], "%s: a tool {name: ...} names an MCP server as mcp:<server>, not %q", what, name)
			return nil
		}
		include, hasInclude = l.strList(f["include"], what+" tool include"), f["include"] != nil
		item = f["name"]
	} else {
		name = item.Value
	}
	server := strings.TrimPrefix(name, mcpPrefix)
	c := l.mcp[server]
	if c == nil {
		if !l.declared["mcp_servers."+server] {
			l.errorf(item, "%s: unknown MCP server %q (declare it under mcp_servers)", what, server)
		}
		return nil
	}
	if hasInclude {
		return c.Include(include...)
	}
	return c
}

// Close ends the connections to the configuration's MCP servers (and stops the
// processes of those kern started). Call it when the agents are no longer used.
func (c *Config) Close() error {
	var errs []error
	for _, s := range c.MCPServers {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
