package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/config"
	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/run"
)

const pauseYAML = "testdata/pause.yaml" // reader: a Hacker News call that requires confirmation

// hackerNews is a stand-in for the Hacker News API: one top story, and a count
// of the requests that read it.
func hackerNews(t *testing.T) *atomic.Int32 {
	var reads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/topstories.json":
			reads.Add(1)
			fmt.Fprint(w, "[42]")
		case "/item/42.json":
			fmt.Fprint(w, `{"id": 42, "type": "story", "title": "Durable pauses", "by": "ada", "score": 7, "time": 1764650000}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	t.Setenv(config.HackerNewsURLEnv, srv.URL)
	return &reads
}

// pausedTool is a paused run's tool execution as the server answers it.
type pausedTool struct {
	ToolCallID           string `json:"tool_call_id"`
	ToolName             string `json:"tool_name"`
	RequiresConfirmation bool   `json:"requires_confirmation"`
}

// pauseReader starts a run of the reader on r and returns its id and the call it
// waits for, once it answered PAUSED.
func pauseReader(t *testing.T, r *replica) (string, pausedTool) {
	t.Helper()
	var out struct {
		RunID  string       `json:"run_id"`
		Status run.Status   `json:"status"`
		Tools  []pausedTool `json:"tools"`
	}
	code := r.call(t, "POST", "/agents/reader/runs", form("message", "top story?", "stream", "false"), &out)
	if code != http.StatusOK || out.Status != run.StatusPaused || len(out.Tools) != 1 || !out.Tools[0].RequiresConfirmation {
		t.Fatalf("run on %s: %d %+v, want PAUSED on a call that requires confirmation", r.name, code, out)
	}
	return out.RunID, out.Tools[0]
}

// continueReader continues a paused run through r as Agno's client does (form
// field tools, stream=true) and returns the SSE body.
func continueReader(t *testing.T, r *replica, id string, tl pausedTool, confirmed bool) string {
	t.Helper()
	tools, _ := json.Marshal([]map[string]any{{"tool_call_id": tl.ToolCallID, "tool_name": tl.ToolName,
		"tool_args": map[string]any{"num_stories": 1}, "requires_confirmation": true, "confirmed": confirmed,
		"confirmation_note": nil, "result": nil, "created_at": time.Now().Unix()}})
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", r.url+"/agents/reader/runs/"+id+"/continue",
		strings.NewReader(form("tools", string(tools), "stream", "true").Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("continue on %s: %d %v: %s", r.name, resp.StatusCode, err, b)
	}
	return string(b)
}

// TestPausedRunSurvivesKill: `kern serve` pauses an agent run on a call that
// requires confirmation, and is killed with SIGKILL; another `kern serve` on the
// same database (SQLite file, PostgreSQL schema) continues it through Agno's
// route: confirmed, the tool runs there and its result is in the stream, and the
// run completes; rejected, the tool never runs. A second continue is a 409.
func TestPausedRunSurvivesKill(t *testing.T) {
	reads := hackerNews(t)
	dbs := map[string]string{"sqlite": sqliteDB(t)}
	if pgtest.Ping(context.Background()) == nil || pgtest.InCI() {
		dbs["postgres"], _ = replicaDB(t)
	} else {
		t.Log("!!! PostgreSQL case skipped: no server")
	}
	for name, db := range dbs {
		t.Run(name, func(t *testing.T) {
			a := startReplica(t, db, "A", pauseYAML, testLease)
			confirmID, confirmTool := pauseReader(t, a)
			rejectID, rejectTool := pauseReader(t, a)
			a.kill(t)
			before := reads.Load()

			b := startReplica(t, db, "B", pauseYAML, testLease)
			body := continueReader(t, b, confirmID, confirmTool, true)
			for _, want := range []string{"event: RunContinued", "event: ToolCallCompleted", "Durable pauses", "event: RunCompleted", `"content":"Looking. Done."`} {
				if !strings.Contains(body, want) {
					t.Errorf("confirmed continue's stream lacks %q:\n%s", want, body)
				}
			}
			if reads.Load() != before+1 {
				t.Errorf("the tool read the stand-in %d times after the confirmation, want once", reads.Load()-before)
			}
			body = continueReader(t, b, rejectID, rejectTool, false)
			if !strings.Contains(body, "event: ToolCallError") || !strings.Contains(body, "rejected by the user") || !strings.Contains(body, "event: RunCompleted") {
				t.Errorf("rejected continue's stream:\n%s", body)
			}
			if reads.Load() != before+1 {
				t.Error("a rejected call ran")
			}
			for _, id := range []string{confirmID, rejectID} {
				if ri := b.getRun(t, id); ri.Status != run.StatusCompleted || ri.Replica != "B" {
					t.Errorf("run %s: %+v, want COMPLETED on B", id, ri)
				}
				if code := b.call(t, "POST", "/agents/reader/runs/"+id+"/continue", form("tools", "[]", "stream", "false"), nil); code != http.StatusConflict {
					t.Errorf("second continue of %s: %d, want 409", id, code)
				}
			}
			stop(t, b)
		})
	}
}

// TestApprovalsCLI: `kern approvals` lists the runs paused on a server, `kern
// reject --note` and `kern approve` resolve them, and the runs go on there.
func TestApprovalsCLI(t *testing.T) {
	reads := hackerNews(t)
	a := startReplica(t, sqliteDB(t), "A", pauseYAML, testLease)
	approveID, _ := pauseReader(t, a)
	rejectID, _ := pauseReader(t, a)
	var team struct {
		RunID  string     `json:"run_id"`
		Status run.Status `json:"status"`
	}
	if code := a.call(t, "POST", "/teams/desk/runs", form("message", "top story?", "stream", "false"), &team); code != http.StatusOK || team.Status != run.StatusPaused {
		t.Fatalf("team run: %d %+v, want PAUSED", code, team)
	}
	r := runKern(t, "approvals", "--server", a.url)
	if !regexp.MustCompile(team.RunID + `\s+team:desk\s`).MatchString(r.stdout) {
		t.Errorf("kern approvals does not name the team:\n%s", r.stdout)
	}
	if r := runKern(t, "approvals", "--team", "desk", "--server", a.url); r.code != 0 || !strings.Contains(r.stdout, team.RunID) || strings.Contains(r.stdout, approveID) {
		t.Errorf("kern approvals --team desk: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runKern(t, "reject", "--help"); !regexp.MustCompile(`Examples:\n\s+kern reject `).MatchString(r.stdout) {
		t.Errorf("kern reject --help does not start its examples with kern reject:\n%s", r.stdout)
	}
	if r.code != 0 || !strings.Contains(r.stdout, approveID) || !strings.Contains(r.stdout, rejectID) ||
		!strings.Contains(r.stdout, "get_top_hackernews_stories") || !strings.Contains(r.stdout, "confirmation") {
		t.Fatalf("kern approvals: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// kern attach to a paused run shows it up to its pause and exits 4, as kern run.
	r = runKern(t, "attach", approveID, "--server", a.url)
	if r.code != exitPaused || !strings.Contains(r.stdout, "PAUSED") || !strings.Contains(r.stderr, "kern approve "+approveID) {
		t.Fatalf("kern attach of a paused run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runKern(t, "attach", "--help"); !strings.Contains(r.stdout, "4 the run is") {
		t.Errorf("kern attach --help does not document exit 4:\n%s", r.stdout)
	}
	if r := runKern(t, "reject", rejectID, "--note", "not now", "--server", a.url); r.code != 0 || !strings.Contains(r.stdout, "rejected") {
		t.Fatalf("kern reject: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runKern(t, "approve", approveID, "--server", a.url); r.code != 0 || !strings.Contains(r.stdout, "approved") {
		t.Fatalf("kern approve: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runKern(t, "reject", team.RunID, "--server", a.url); r.code != 0 {
		t.Fatalf("kern reject of the team's approval: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, id := range []string{approveID, rejectID, team.RunID} {
		a.awaitRun(t, id, "completed", func(ri runInfo) bool { return ri.Status == run.StatusCompleted })
	}
	if reads.Load() != 1 {
		t.Errorf("the tool read the stand-in %d times, want once (the approved call)", reads.Load())
	}
	if r := runKern(t, "approve", approveID, "--server", a.url); r.code == 0 || !strings.Contains(r.stderr, "409") && !strings.Contains(r.stderr, "waits for no decision") {
		t.Fatalf("kern approve of a resolved approval: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runKern(t, "approvals", "--server", a.url); r.code != 0 || !strings.Contains(r.stdout, "no pending approvals") {
		t.Fatalf("kern approvals after: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	stop(t, a)
}

// runKernInput runs kern to its end with stdin holding input.
func runKernInput(t *testing.T, input string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	cmd := exec.CommandContext(ctx, kernBin, args...)
	cmd.Env = kern().Env
	cmd.Stdin = strings.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("kern %s: %v", strings.Join(args, " "), err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

var pausedRun = regexp.MustCompile(`run (\S+) is paused`)

// TestRunPrompts: kern run asks on the terminal what a paused workflow waits for
// (y/n, then the step's values) and the run goes on, locally and on a server;
// with --no-input, or no input, the run is left paused, exit 4, saying how to
// continue it, and kern approve continues it.
func TestRunPrompts(t *testing.T) {
	db := sqliteDB(t)
	r := runKernInput(t, "y\nflight\n", "run", "reviewed", "write", "--config", pauseYAML, "--db", db)
	if r.code != 0 || !strings.Contains(r.stderr, "Publish the draft? [y/n]") || !strings.Contains(r.stderr, "topic (what the tweet is about): ") ||
		!strings.Contains(r.stdout, "COMPLETED") || strings.Count(r.stdout, "waits for a person") != 4 {
		t.Fatalf("kern run answered y, flight: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runKern(t, "run", "reviewed", "write", "--config", pauseYAML, "--db", db, "--no-input")
	m := pausedRun.FindStringSubmatch(r.stderr)
	if r.code != exitPaused || m == nil || !strings.Contains(r.stderr, "kern approve "+m[1]) {
		t.Fatalf("kern run --no-input: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	a := startReplica(t, db, "A", pauseYAML, testLease)
	if r := runKern(t, "approve", m[1], "--server", a.url); r.code != 0 {
		t.Fatalf("kern approve: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	a.awaitRun(t, m[1], "paused before the tweet", func(ri runInfo) bool { return ri.Status == run.StatusPaused && len(ri.StepResults) == 2 })
	if r := runKern(t, "approve", m[1], "--field", "topic=dragons", "--server", a.url); r.code != 0 {
		t.Fatalf("kern approve --field: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	a.awaitRun(t, m[1], "completed", func(ri runInfo) bool { return ri.Status == run.StatusCompleted })

	r = runKernInput(t, "maybe\nn\nstars\n", "run", "reviewed", "write", "--server", a.url)
	if r.code != 0 || !strings.Contains(r.stderr, "please answer y or n") || !strings.Contains(r.stdout, "COMPLETED") {
		t.Fatalf("kern run --server answered n: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runKern(t, "run", "reviewed", "write", "--server", a.url)
	if r.code != exitPaused || !pausedRun.MatchString(r.stderr) {
		t.Fatalf("kern run --server without input: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	stop(t, a)
}
