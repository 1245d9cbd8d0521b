//go:build chaos && linux

package chaos

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

var (
	long    = flag.Bool("chaos.long", false, "also run the long variants: every kill point of a run, longer outages")
	pending = flag.Bool("chaos.pending", false, "run the cases marked pending on a fix not merged yet, instead of skipping them")
)

// kernBin is the kern binary TestMain builds.
var kernBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	// The cases spend their time waiting for leases and processes, not computing:
	// run more of them at once than there are cores, unless told otherwise.
	if f := flag.Lookup("test.parallel"); f != nil && f.Value.String() == fmt.Sprint(runtime.GOMAXPROCS(0)) {
		f.Value.Set("8")
	}
	dir, err := os.MkdirTemp("", "kern-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	kernBin = filepath.Join(dir, "kern")
	build := exec.Command("go", "build", "-o", kernBin, "github.com/kern-dev/kern/cmd/kern")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: build kern:", err)
		return 1
	}
	code := m.Run()
	outcomes.print()
	return code
}

// table collects each case's outcome, by fault and store, for the summary TestMain
// prints: the table the closing note of issue 12 asks for.
type table struct {
	mu   sync.Mutex
	rows map[string]map[string]string // fault -> store -> outcome
}

var outcomes = &table{rows: map[string]map[string]string{}}

func (tb *table) set(fault, st, outcome string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.rows[fault] == nil {
		tb.rows[fault] = map[string]string{}
	}
	tb.rows[fault][st] = outcome
}

// record notes t's outcome once it ended: pass, FAIL, or why it was skipped.
func (tb *table) record(t *testing.T, fault, st string) {
	t.Cleanup(func() {
		switch {
		case t.Failed():
			tb.set(fault, st, "FAIL")
		case t.Skipped():
			tb.set(fault, st, "skipped: "+skipReason(t))
		default:
			tb.set(fault, st, "pass")
		}
	})
}

// skipReasons remembers why each skipped case was skipped (testing.T does not say).
var skipReasons sync.Map // *testing.T -> string

func skipReason(t *testing.T) string {
	if r, ok := skipReasons.Load(t); ok {
		return r.(string)
	}
	return "skipped"
}

// skip skips t, remembering why for the table.
func skip(t *testing.T, why string) {
	t.Helper()
	skipReasons.Store(t, why)
	t.Skip(why)
}

func (tb *table) print() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.rows) == 0 {
		return
	}
	faults := make([]string, 0, len(tb.rows))
	w, ws := len("fault"), len("postgres")
	for f, row := range tb.rows {
		faults = append(faults, f)
		w = max(w, utf8.RuneCountInString(f))
		for _, o := range row {
			ws = max(ws, len(o))
		}
	}
	slices.Sort(faults)
	var b strings.Builder
	line := func(f, sq, pg string) {
		pad := w - utf8.RuneCountInString(f) // %-*s pads by bytes; "×" is two
		fmt.Fprintf(&b, "| %s%s | %-*s | %-*s |\n", f, strings.Repeat(" ", pad), ws, sq, ws, pg)
	}
	b.WriteString("\nchaos: fault × store → outcome\n")
	line("fault", "sqlite", "postgres")
	line(strings.Repeat("-", w), strings.Repeat("-", ws), strings.Repeat("-", ws))
	for _, f := range faults {
		cell := func(st string) string {
			if o, ok := tb.rows[f][st]; ok {
				return o
			}
			return "—"
		}
		line(f, cell(onSQLite), cell(onPostgres))
	}
	fmt.Print(b.String())
}
