package sqlite

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// The tests below re-execute the test binary as a child process; these variables
// tell the child what to do.
const (
	childEnv    = "KERN_SQLITE_TEST_CHILD" // "crash", "open" or "cancel"
	childDBEnv  = "KERN_SQLITE_TEST_DB"
	childRunEnv = "KERN_SQLITE_TEST_RUN" // the run a "cancel" child cancels
)

// childReason is the reason of a "cancel" child's cancel.
const childReason = "cancelled by another process"

// childEvents is how many events a crash child appends per run.
const childEvents = 10

// runChild is the child's main: it never returns.
func runChild() {
	path := os.Getenv(childDBEnv)
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	switch os.Getenv(childEnv) {
	case "open":
		fmt.Println("ok")
	case "crash":
		crashChild(ctx, s)
	case "cancel":
		if err := s.CancelRun(ctx, os.Getenv(childRunEnv), childReason); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("ok")
	}
	s.Close()
	os.Exit(0)
}

// crashChild writes runs from four goroutines until it is killed (or 30 s pass),
// and prints "committed <run id>" once a run is created, has its events and is
// completed.
func crashChild(ctx context.Context, s *Store) {
	var mu sync.Mutex // serialises writes to stdout
	deadline := time.Now().Add(30 * time.Second)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				if err := childRun(ctx, s, id); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintln(os.Stdout, "committed", id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func childRun(ctx context.Context, s *Store, id string) error {
	r := &store.Run{ID: id, Kind: run.KindWorkflow, ComponentID: "crash", Status: run.StatusRunning, Input: "in"}
	if err := s.CreateRun(ctx, r); err != nil {
		return err
	}
	evs := make([]store.Event, childEvents)
	for j := range evs {
		evs[j] = store.Event{RunID: id, Index: j, Type: run.EventRunContent,
			Data: []byte(fmt.Sprintf(`{"event":"RunContent","content":"chunk %d of %s"}`, j, id)), CreatedAt: time.Now()}
	}
	if err := s.AppendEvents(ctx, evs); err != nil {
		return err
	}
	r.Status, r.Output = run.StatusCompleted, run.Output{RunID: id, Status: run.StatusCompleted, Content: "done " + id}
	return s.UpdateRun(ctx, r)
}

func childCmd(t *testing.T, mode, path string) *exec.Cmd {
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childDBEnv+"="+path)
	cmd.Stderr = os.Stderr
	return cmd
}

// TestCrash kills a writing process with SIGKILL and checks that everything it
// reported committed is in the file.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := childCmd(t, "crash", path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var committed []string
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		id, ok := strings.CutPrefix(sc.Text(), "committed ")
		if !ok {
			t.Fatalf("child: %s", sc.Text())
		}
		committed = append(committed, id)
		if len(committed) == 400 && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child ended before it was killed: %v", err)
	}
	if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || st.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", cmd.ProcessState)
	}

	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer s.Close()
	for _, id := range committed {
		r, err := s.GetRun(t.Context(), id)
		if err != nil {
			t.Fatalf("run %s reported committed: %v", id, err)
		}
		if r.Status != run.StatusCompleted || r.Output.Content != "done "+id {
			t.Errorf("run %s: status %s, content %q", id, r.Status, r.Output.Content)
		}
		evs, err := s.Events(t.Context(), id, 0, 0)
		if err != nil || len(evs) != childEvents {
			t.Errorf("run %s: %d events (%v), want %d", id, len(evs), err, childEvents)
		}
	}
	all, err := s.ListRuns(t.Context(), store.RunQuery{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("child reported %d runs committed before SIGKILL; the file holds %d", len(committed), len(all))
}

// TestOpenConcurrentProcesses opens one new file from two processes at once: the
// migration runs once, and both succeed.
func TestOpenConcurrentProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	for round := range 3 {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("procs%d.db", round))
		var cmds []*exec.Cmd
		var outs []*strings.Builder
		for range 2 {
			cmd := childCmd(t, "open", path)
			b := new(strings.Builder)
			cmd.Stdout = b
			cmds, outs = append(cmds, cmd), append(outs, b)
		}
		for _, c := range cmds {
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range cmds {
			if err := c.Wait(); err != nil || strings.TrimSpace(outs[i].String()) != "ok" {
				t.Fatalf("round %d, process %d: %v: %s", round, i, err, outs[i])
			}
		}
		checkSchema(t, path)
	}
}
