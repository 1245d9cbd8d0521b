package main

import (
	"regexp"
	"testing"
)

// TestRunTrace: kern run --trace prints the run's span tree with durations.
func TestRunTrace(t *testing.T) {
	t.Parallel()
	r := runKern(t, "run", "article-creation-workflow", "dragons", "--trace", "--scripted-pace", "0s", "--db", sqliteDB(t))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, line := range []string{
		`(?m)^trace [0-9a-f]{32}$`,
		`(?m)^invoke_workflow Article Creation Workflow +[0-9.]+ ms$`,
		`(?m)^  step research +[0-9.]+ ms$`,
		`(?m)^    invoke_agent Research Agent +[0-9.]+ ms$`,
		`(?m)^      chat scripted +[0-9.]+ ms$`,
		`(?m)^  step writing +[0-9.]+ ms$`,
	} {
		if !regexp.MustCompile(line).MatchString(r.stdout) {
			t.Errorf("no line matching %s in:\n%s", line, r.stdout)
		}
	}
}
