package main

import (
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestAttachAndRunsShow follows a run streaming to kern run from a second
// process with kern attach, detaches it (the run goes on), cancels the run with
// kern attach --cancel, and prints it with kern runs show, from the server and
// from the database.
func TestAttachAndRunsShow(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	srv, url := startServe(t, db)
	c := start(t, "run", "article-creation-workflow", "Write a story.", "--server", url)
	id := c.stdout.waitFor(t, runStarted)
	c.stdout.waitFor(t, regexp.MustCompile(`Key facts`))

	// Attached, it replays the run from its start, then follows it; Ctrl-C
	// detaches and the run goes on.
	a := start(t, "attach", id, "--server", url)
	a.stdout.waitFor(t, regexp.MustCompile(`step research \(#1\) started[\s\S]*Key facts`))
	a.cmd.Process.Signal(os.Interrupt)
	if code := a.wait(t); code != 0 || !strings.Contains(a.stderr.String(), "detached from run "+id) {
		t.Fatalf("kern attach exited %d after Ctrl-C, want 0 and detached:\n%s%s", code, a.stdout, a.stderr)
	}
	if strings.Contains(c.stdout.String(), "CANCELLED") {
		t.Fatalf("detaching cancelled the run:\n%s", c.stdout)
	}

	r := runKern(t, "attach", id, "--server", url, "--cancel")
	if r.code != 0 || !strings.Contains(r.stderr, "run "+id+": CANCELLED") ||
		!regexp.MustCompile(`CANCELLED after \S+: run `+id+` \(cancelled by request\)\n$`).MatchString(r.stdout) {
		t.Fatalf("kern attach --cancel: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if code := c.wait(t); code != 1 {
		t.Fatalf("kern run exited %d, want 1 (cancelled from elsewhere):\n%s%s", code, c.stdout, c.stderr)
	}

	show := regexp.MustCompile(`(?s)run\s+` + id + `\n.*status\s+CANCELLED \(cancelled by request\)\n.*content:\n.*Key facts.*` +
		`steps:\n\s+research\s+CANCELLED.*events \(\d+\):\n\s+0\s+WorkflowStarted`)
	r = runKern(t, "runs", "show", id, "--server", url)
	if r.code != 0 || !show.MatchString(r.stdout) {
		t.Fatalf("kern runs show --server: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if code := srv.wait(t); code != 0 {
		t.Fatalf("kern serve exited %d on SIGTERM:\n%s", code, srv.stderr)
	}
	r = runKern(t, "runs", "show", id, "--db", db)
	if r.code != 0 || !show.MatchString(r.stdout) {
		t.Fatalf("kern runs show --db: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runKern(t, "runs", "show", "no-such-run", "--db", db); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("kern runs show of an unknown run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"attach", "--help"}, {"runs", "show", "--help"}} {
		if r := runKern(t, args...); r.code != 0 || !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("kern %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stdout)
		}
	}
}
