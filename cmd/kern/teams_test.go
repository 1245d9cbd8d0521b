package main

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestServeTeamsAndMCP: kern serve --config serves the file's teams under /teams
// and in /config, runs a workflow whose step is a team, and is an MCP server at
// /mcp with a tool per workflow, agent and team.
func TestServeTeamsAndMCP(t *testing.T) {
	t.Parallel()
	_, url := startServe(t, sqliteDB(t), "--config", "testdata/teams.yaml")
	post := func(path string) map[string]any {
		t.Helper()
		resp, err := http.Post(url+path, "application/x-www-form-urlencoded", strings.NewReader("message=hi&stream=false"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d, %v", path, resp.StatusCode, err)
		}
		return v
	}
	team := post("/teams/desk/runs")
	if team["team_id"] != "desk" || team["status"] != "COMPLETED" {
		t.Errorf("team run = %v", team)
	}
	// kern attach and kern runs show --events read a team's run through /teams.
	teamRun, _ := team["run_id"].(string)
	if r := runKern(t, "attach", teamRun, "--server", url); r.code != 0 || !strings.Contains(r.stdout, "COMPLETED") {
		t.Errorf("kern attach of a team run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runKern(t, "runs", "show", teamRun, "--server", url); r.code != 0 || !strings.Contains(r.stdout, "team:desk") ||
		!strings.Contains(r.stdout, "TeamRunStarted") {
		t.Errorf("kern runs show of a team run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if out := post("/workflows/paper/runs"); out["status"] != "COMPLETED" || out["content"] != "Done." {
		t.Errorf("workflow with a team step = %v", out)
	}
	// kern runs --server reads the server's GET /runs: the team's run too, filtered
	// and limited by the server.
	if r := runKern(t, "runs", "--server", url); r.code != 0 || !regexp.MustCompile(`\steam:desk\s+COMPLETED\s`).MatchString(r.stdout) ||
		!regexp.MustCompile(`\spaper\s+COMPLETED\s`).MatchString(r.stdout) {
		t.Errorf("kern runs --server: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runKern(t, "runs", "--server", url, "--status", "completed", "--limit", "1"); r.code != 0 || strings.Count(r.stdout, "COMPLETED") != 1 {
		t.Errorf("kern runs --server --limit 1: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runKern(t, "runs", "--server", url, "--status", "cancelled"); r.code != 0 || r.stdout != "no runs\n" {
		t.Errorf("kern runs --server --status cancelled: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil).
		Connect(t.Context(), &sdk.StreamableClientTransport{Endpoint: url + "/mcp", HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	for _, want := range []string{"workflow_paper", "agent_writer", "team_desk", "get_run", "list_runs", "cancel_run"} {
		if !slices.Contains(names, want) {
			t.Errorf("MCP tools %v lack %s", names, want)
		}
	}
	call, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "team_desk", Arguments: map[string]any{"message": "hi"}})
	if err != nil || call.IsError || !strings.Contains(call.Content[0].(*sdk.TextContent).Text, `"team_id":"desk"`) {
		t.Errorf("team_desk over MCP = %v, %v", call, err)
	}
}
