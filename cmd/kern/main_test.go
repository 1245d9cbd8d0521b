package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", to age a database's schema
)

// hang bounds every wait of these tests: generous, a hang detector only.
const hang = 2 * time.Minute

// kernBin is the kern binary TestMain builds.
var kernBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kern-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	kernBin = filepath.Join(dir, "kern")
	build := exec.Command("go", "build", "-o", kernBin, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build kern:", err)
		return 1
	}
	return m.Run()
}

// kern returns a command running the binary on the scripted model, with no kern
// settings inherited from the environment.
func kern(args ...string) *exec.Cmd {
	cmd := exec.Command(kernBin, args...)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "OPENAI_API_KEY", envSecurityKey, envServer:
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "OPENAI_API_KEY=")
	return cmd
}

// result is how a finished command ended.
type result struct {
	code           int
	stdout, stderr string
}

// runKern runs kern to its end.
func runKern(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	cmd := exec.CommandContext(ctx, kernBin, args...)
	cmd.Env = kern().Env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("kern %s: hung for %s", strings.Join(args, " "), hang)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("kern %s: %v", strings.Join(args, " "), err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// output collects what a child writes to a pipe, and lets a test wait for a text.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed at the next write; replaced then
	done    chan struct{} // closed at EOF
}

func watch(r io.Reader) *output {
	o := &output{changed: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(o.done)
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			o.mu.Lock()
			o.buf.Write(b[:n])
			close(o.changed)
			o.changed = make(chan struct{})
			o.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return o
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output matches re and returns the match's first group (or
// the whole match).
func (o *output) waitFor(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	timer := time.NewTimer(hang)
	defer timer.Stop()
	for {
		o.mu.Lock()
		m := re.FindStringSubmatch(o.buf.String())
		changed := o.changed
		o.mu.Unlock()
		if m != nil {
			return m[len(m)-1]
		}
		select {
		case <-changed:
		case <-o.done:
			if m := re.FindStringSubmatch(o.String()); m != nil {
				return m[len(m)-1]
			}
			t.Fatalf("output ended without %q:\n%s", re, o)
		case <-timer.C:
			t.Fatalf("no %q after %s:\n%s", re, hang, o)
		}
	}
}

// child is a kern process whose stdout and stderr a test watches.
type child struct {
	cmd            *exec.Cmd
	stdout, stderr *output
}

func start(t *testing.T, args ...string) *child {
	t.Helper()
	cmd := kern(args...)
	so, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	se, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdout: watch(so), stderr: watch(se)}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			c.wait(t)
		}
	})
	return c
}

// wait waits for the child to exit and returns its exit code.
func (c *child) wait(t *testing.T) int {
	t.Helper()
	timer := time.NewTimer(hang)
	defer timer.Stop()
	for _, o := range []*output{c.stdout, c.stderr} {
		select {
		case <-o.done:
		case <-timer.C:
			c.cmd.Process.Kill()
			<-o.done
			t.Errorf("kern %s: hung for %s", strings.Join(c.cmd.Args[1:], " "), hang)
		}
	}
	err := c.cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return c.cmd.ProcessState.ExitCode()
}

var listening = regexp.MustCompile(`msg="kern serving" addr=(\S+)`)

// serve starts kern serve on a free loopback port and returns it with its URL.
func startServe(t *testing.T, db string, args ...string) (*child, string) {
	t.Helper()
	c := start(t, append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db}, args...)...)
	return c, "http://" + c.stderr.waitFor(t, listening)
}

func sqliteDB(t *testing.T) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "kern.db")
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := runKern(t, "version")
	if r.code != 0 || !regexp.MustCompile(`^kern \S+ go\S+ \S+/\S+\n$`).MatchString(r.stdout) {
		t.Fatalf("kern version: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		example string
	}{
		{[]string{"--help"}, "kern run article-creation-workflow"},
		{[]string{"serve", "--help"}, "kern serve --addr :7777 --db postgres://"},
		{[]string{"run", "--help"}, "kern run article-creation-workflow \"The state of Go in 2026\" --server"},
		{[]string{"cancel", "--help"}, "kern cancel 0f8e5c1a-3b7d-4e0f-9a51-2c6d8e7f1a2b --server"},
		{[]string{"runs", "--help"}, "kern runs --status CANCELLED --limit 5"},
		{[]string{"version", "--help"}, "kern version"},
		{[]string{"approvals", "--help"}, "kern approvals --agent mailer"},
		{[]string{"approve", "--help"}, `kern approve 0f8e5c1a-... --field address="1 Lovelace Row"`},
		{[]string{"reject", "--help"}, `kern reject 0f8e5c1a-... --note "not to this address"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			r := runKern(t, tt.args...)
			if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, tt.example) {
				t.Fatalf("exit %d, want the example %q in:\n%s%s", r.code, tt.example, r.stdout, r.stderr)
			}
		})
	}
}

// oneLineError checks that a failed command said why in one line on stderr.
func oneLineError(t *testing.T, r result, want string) {
	t.Helper()
	if r.code == 0 || !strings.HasPrefix(r.stderr, "kern: ") || strings.Count(r.stderr, "\n") != 1 ||
		!strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "goroutine") {
		t.Fatalf("exit %d, stderr %q: want one line \"kern: ...%s...\"", r.code, r.stderr, want)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run"}, "accepts 2 arg(s)"},
		{[]string{"serve", "--config", "no-such-kern.yaml"}, "no-such-kern.yaml"},
		{[]string{"serve", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"serve", "--cors-origins", "app.example", "--addr", "127.0.0.1:0", "--db", sqliteDB(t)}, `CORS origin "app.example"`},
		{[]string{"nosuch"}, "unknown command"},
		{[]string{"run", "nosuch-workflow", "hi", "--db", sqliteDB(t)}, `unknown workflow "nosuch-workflow"`},
		{[]string{"cancel", "x", "--server", "ftp://example.com"}, "is not an http:// or https:// URL"},
		{[]string{"cancel", "x", "--server", "http://127.0.0.1:1"}, "connection refused"},
		{[]string{"runs", "--status", "DONE", "--db", sqliteDB(t)}, `--status "DONE"`},
		{[]string{"runs", "--server", "http://127.0.0.1:1", "--db", sqliteDB(t)}, "not both"},
		{[]string{"run", "w", "hi", "--server", "http://127.0.0.1:1", "--db", sqliteDB(t)}, "not both"},
		{[]string{"serve", "--log-format", "xml", "--db", sqliteDB(t)}, `--log-format: "xml"`},
		{[]string{"serve", "--log-level", "loud", "--db", sqliteDB(t)}, `--log-level: "loud"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			oneLineError(t, runKern(t, tt.args...), tt.want)
		})
	}
}

func TestServeBadDB(t *testing.T) {
	t.Parallel()
	tooNew := filepath.Join(t.TempDir(), "new.db")
	if r := runKern(t, "runs", "--db", tooNew); r.code != 0 { // creates and migrates it
		t.Fatalf("kern runs: %+v", r)
	}
	db, err := sql.Open("sqlite", tooNew)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`INSERT INTO kern_schema (version, name, applied_at) VALUES (999, 'future', 0)`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		db, want string
	}{
		{"mysql://localhost/kern", `unsupported scheme "mysql"`},
		{"sqlite://" + filepath.Join(t.TempDir(), "missing", "kern.db"), "missing"},
		{"sqlite://" + t.TempDir(), "database sqlite://"},
		{"postgres://kern:secret@127.0.0.1:1/kern?connect_timeout=5", "cannot reach PostgreSQL"},
		{"sqlite://" + tooNew, "written by a newer kern"},
	}
	for _, tt := range tests {
		t.Run(tt.db, func(t *testing.T) {
			t.Parallel()
			r := runKern(t, "serve", "--addr", "127.0.0.1:0", "--db", tt.db)
			oneLineError(t, r, tt.want)
			if strings.Contains(r.stderr, "secret") {
				t.Errorf("the password shows: %q", r.stderr)
			}
		})
	}
}

var runStarted = regexp.MustCompile(`run (\S+) started`)

func TestServeRunRunsCancel(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	srv, url := startServe(t, db, "--scripted-pace", "1ms")
	if !strings.Contains(srv.stderr.String(), "model=\"scripted") {
		t.Errorf("the start-up log does not say the model is scripted:\n%s", srv.stderr)
	}

	r := runKern(t, "run", "article-creation-workflow", "Write a story.", "--server", url)
	if r.code != 0 || !strings.Contains(r.stdout, "step research (#1) started") ||
		!strings.Contains(r.stdout, "Once upon a time") || !strings.Contains(r.stdout, "COMPLETED in") {
		t.Fatalf("kern run --server: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	id := runStarted.FindStringSubmatch(r.stdout)[1]

	r = runKern(t, "runs", "--server", url)
	if r.code != 0 || !regexp.MustCompile(id+`\s+article-creation-workflow\s+COMPLETED`).MatchString(r.stdout) {
		t.Fatalf("kern runs --server: exit %d, want run %s COMPLETED:\n%s%s", r.code, id, r.stdout, r.stderr)
	}
	// A mistyped id: the intent is kept, but the person hears that no run has it.
	r = runKern(t, "cancel", "no-such-run", "--server", url)
	if r.code != exitUnknownRun || r.stdout != "run no-such-run: PENDING\n" ||
		r.stderr != "kern: no run with id no-such-run is known; the intent is kept for 24 h\n" {
		t.Fatalf("kern cancel of an unknown run: exit %d, stdout %q, stderr %q; want exit %d and the intent kept",
			r.code, r.stdout, r.stderr, exitUnknownRun)
	}
	r = runKern(t, "cancel", id, "--server", url)
	if r.code != 0 || r.stdout != "run "+id+": COMPLETED\n" {
		t.Fatalf("kern cancel of a completed run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	srv.cmd.Process.Signal(syscall.SIGTERM)
	if code := srv.wait(t); code != 0 {
		t.Fatalf("kern serve exited %d on SIGTERM:\n%s", code, srv.stderr)
	}
	r = runKern(t, "runs", "--db", db, "--status", "completed")
	if r.code != 0 || !regexp.MustCompile(id+`\s+article-creation-workflow\s+COMPLETED\s+\S+ \S+\s+\S+`).MatchString(r.stdout) {
		t.Fatalf("kern runs --db: exit %d, want run %s COMPLETED with its replica:\n%s%s", r.code, id, r.stdout, r.stderr)
	}
}

// TestCancelRunningRemoteRun cancels a run streaming to a kern run --server with
// kern cancel from another process: kern cancel prints CANCELLED and exits 0, and
// kern run shows the cancel and exits 1. kern cancel's help documents its exit
// code for an unknown run.
func TestCancelRunningRemoteRun(t *testing.T) {
	t.Parallel()
	srv, url := startServe(t, sqliteDB(t))
	c := start(t, "run", "article-creation-workflow", "Write a story.", "--server", url)
	id := c.stdout.waitFor(t, runStarted)
	c.stdout.waitFor(t, regexp.MustCompile(`Key facts`))
	r := runKern(t, "cancel", id, "--server", url)
	if r.code != 0 || r.stdout != "run "+id+": CANCELLED\n" || r.stderr != "" {
		t.Fatalf("kern cancel of a running run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if code := c.wait(t); code != 1 {
		t.Fatalf("kern run exited %d, want 1 (cancelled from elsewhere):\n%s%s", code, c.stdout, c.stderr)
	}
	if !regexp.MustCompile(`CANCELLED after \S+: run `+id+` \(cancelled by request\)\n$`).MatchString(c.stdout.String()) ||
		!strings.Contains(c.stderr.String(), "ended CANCELLED") {
		t.Errorf("kern run does not show the cancellation:\n%s%s", c.stdout, c.stderr)
	}
	r = runKern(t, "cancel", id, "--server", url)
	if r.code != 0 || r.stdout != "run "+id+": CANCELLED\n" {
		t.Errorf("kern cancel of a cancelled run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runKern(t, "cancel", "--help"); !strings.Contains(r.stdout, "exits 3") {
		t.Errorf("kern cancel --help does not document exit code 3:\n%s", r.stdout)
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if code := srv.wait(t); code != 0 {
		t.Fatalf("kern serve exited %d on SIGTERM:\n%s", code, srv.stderr)
	}
}

func TestRunLocalInterrupt(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	c := start(t, "run", "article-creation-workflow", "Write a story.", "--db", db)
	id := c.stdout.waitFor(t, runStarted)
	c.stdout.waitFor(t, regexp.MustCompile(`Key facts`)) // the first streamed text
	c.cmd.Process.Signal(os.Interrupt)
	if code := c.wait(t); code != 130 {
		t.Fatalf("exit %d after SIGINT, want 130:\n%s%s", code, c.stdout, c.stderr)
	}
	out := c.stdout.String()
	if !regexp.MustCompile(`CANCELLED after \S+: run ` + id + ` \(cancelled by request\)\n$`).MatchString(out) {
		t.Fatalf("the output does not end with the cancellation:\n%s", out)
	}
	if strings.Contains(out, "Once upon a time") {
		t.Errorf("the writing step ran after the cancel:\n%s", out)
	}
	r := runKern(t, "runs", "--db", db)
	if r.code != 0 || !regexp.MustCompile(id+`\s+article-creation-workflow\s+CANCELLED`).MatchString(r.stdout) {
		t.Fatalf("kern runs: exit %d, want run %s CANCELLED:\n%s%s", r.code, id, r.stdout, r.stderr)
	}
}

func TestServeSIGTERMMidRun(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	srv, url := startServe(t, db, "--shutdown-grace", "0")
	c := start(t, "run", "article-creation-workflow", "Write a story.", "--server", url)
	id := c.stdout.waitFor(t, runStarted)
	c.stdout.waitFor(t, regexp.MustCompile(`Key facts`))

	srv.cmd.Process.Signal(syscall.SIGTERM)
	if code := srv.wait(t); code != 0 {
		t.Fatalf("kern serve exited %d on SIGTERM:\n%s", code, srv.stderr)
	}
	if code := c.wait(t); code != 1 {
		t.Fatalf("kern run exited %d, want 1 (cancelled by the server):\n%s%s", code, c.stdout, c.stderr)
	}
	if !strings.Contains(c.stdout.String(), "CANCELLED after") || !strings.Contains(c.stderr.String(), "ended CANCELLED") {
		t.Errorf("kern run does not show the cancellation:\n%s%s", c.stdout, c.stderr)
	}
	r := runKern(t, "runs", "--db", db)
	if r.code != 0 || !regexp.MustCompile(id+`\s+article-creation-workflow\s+CANCELLED`).MatchString(r.stdout) {
		t.Fatalf("kern runs --db: exit %d, want run %s CANCELLED:\n%s%s", r.code, id, r.stdout, r.stderr)
	}
}

func TestRunRemoteInterrupt(t *testing.T) {
	t.Parallel()
	srv, url := startServe(t, sqliteDB(t))
	c := start(t, "run", "article-creation-workflow", "Write a story.", "--server", url)
	id := c.stdout.waitFor(t, runStarted)
	c.stdout.waitFor(t, regexp.MustCompile(`Key facts`))
	c.cmd.Process.Signal(os.Interrupt)
	if code := c.wait(t); code != 130 {
		t.Fatalf("exit %d after SIGINT, want 130:\n%s%s", code, c.stdout, c.stderr)
	}
	if out := c.stdout.String(); !regexp.MustCompile(`CANCELLED after \S+: run ` + id + ` \(cancelled by request\)\n$`).MatchString(out) {
		t.Fatalf("the output does not end with the cancellation:\n%s", out)
	}
	if !strings.Contains(c.stderr.String(), "run "+id+": CANCELLED") {
		t.Errorf("the cancel's answer is not shown:\n%s", c.stderr)
	}
	srv.cmd.Process.Signal(os.Interrupt)
	if code := srv.wait(t); code != 0 {
		t.Fatalf("kern serve exited %d on SIGINT:\n%s", code, srv.stderr)
	}
}

// TestServeConfig serves the workflows a kern.yaml declares (config's test file, on
// scripted models) and runs one; a kern.yaml with a mistake stops serve at start-up,
// naming the line.
func TestServeConfig(t *testing.T) {
	t.Parallel()
	srv, url := startServe(t, sqliteDB(t), "--config", "../../config/testdata/kern.yaml")
	if !strings.Contains(srv.stderr.String(), "workflows=article") {
		t.Errorf("the start-up log does not list the declared workflows:\n%s", srv.stderr)
	}
	r := runKern(t, "run", "article", "Dragons and code", "--server", url)
	if r.code != 0 || !strings.Contains(r.stdout, "COMPLETED in") {
		t.Fatalf("kern run --server of a declared workflow: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if code := srv.wait(t); code != 0 {
		t.Fatalf("kern serve exited %d on SIGTERM:\n%s", code, srv.stderr)
	}

	bad := filepath.Join(t.TempDir(), "kern.yaml")
	os.WriteFile(bad, []byte("models:\n  m: {provider: scripted, text: hi}\nagents:\n  a: {model: nosuch}\n"), 0o644)
	r = runKern(t, "serve", "--config", bad, "--db", sqliteDB(t))
	if r.code == 0 || !strings.Contains(r.stderr, "kern.yaml:4:") || !strings.Contains(r.stderr, "nosuch") {
		t.Fatalf("kern serve with a bad kern.yaml: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestRunLocalConfig runs a workflow of a kern.yaml in this process.
func TestRunLocalConfig(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	r := runKern(t, "run", "article", "Dragons and code", "--config", "../../config/testdata/kern.yaml", "--db", db)
	if r.code != 0 || !strings.Contains(r.stdout, "COMPLETED in") || !strings.Contains(r.stderr, "as declared in") {
		t.Fatalf("kern run --config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runKern(t, "run", "nosuch", "hi", "--config", "../../config/testdata/kern.yaml", "--db", db)
	if r.code == 0 || !strings.Contains(r.stderr, `unknown workflow "nosuch"`) {
		t.Fatalf("kern run of an undeclared workflow: exit %d, stderr %q", r.code, r.stderr)
	}
}
