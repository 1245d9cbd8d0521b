package mcp_test

import (
	"context"
	"fmt"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/tools/mcp"
)

// An agent given the tools of an MCP server that kern starts (stdio), and of one it
// reaches over streamable HTTP, of which it offers two tools only.
func Example() {
	files := mcp.New(mcp.Server{Name: "files", Command: "npx", Args: []string{"-y", "@modelcontextprotocol/server-filesystem", "/srv/docs"}})
	defer files.Close() // stops the server's process
	search := mcp.New(mcp.Server{Name: "search", URL: "https://mcp.example.com/mcp",
		Headers: map[string]string{"Authorization": "Bearer <token>"}})
	defer search.Close()

	librarian := &agent.Agent{Name: "Librarian", Model: scripted.New("..."),
		Toolsets: []tool.Toolset{files, search.Include("search", "fetch")}}
	out, err := librarian.Run(context.Background(), "What do the docs say about dragons?")
	fmt.Println(out, err)
}
