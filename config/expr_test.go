package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

func TestExprEval(t *testing.T) {
	t.Parallel()
	state := new(workflow.State)
	state.Set("mode", "short")
	state.Set("count", 3)
	v := &vars{input: "Write about CODE", previous: "hello world", state: state}
	tests := []struct {
		src  string
		want bool
	}{
		{`true`, true},
		{`false`, false},
		{`!false`, true},
		{`!!true`, true},
		{`contains(input, "CODE")`, true},
		{`contains(input, "code")`, false},
		{`contains(lower(input), "code")`, true},
		{`contains(previous, '')`, true},
		{`len(previous) == 11`, true},
		{`len(previous) > 100`, false},
		{`len(previous) >= 11 && len(previous) <= 11`, true},
		{`len(previous) < 3 || len(input) != 0`, true},
		{`previous == "hello world"`, true},
		{`previous != 'hello world'`, false},
		{`"a\"b" == 'a"b'`, true},
		{`"a\nb" == "a" && false`, false},
		{`len("héllo") == 5`, true},
		{`state.mode == "short"`, true},
		{`state.count == "3"`, true},
		{`state.missing == ""`, true},
		{`(true || false) && !(len(input) > 1000)`, true},
		{`true || false && false`, true}, // && binds tighter
		{`!true == false`, true},         // ! binds tighter than ==
		{`(1 < 2) == (2 < 1)`, false},    // booleans compare
		{`007 == 7`, true},
		{` contains( input ,"Write" ) `, true},
	}
	for _, tt := range tests {
		x, err := parseExpr(tt.src, "input", "previous", "state")
		if err != nil {
			t.Errorf("parseExpr(%q): %v", tt.src, err)
			continue
		}
		if got := x.eval(v); got != tt.want {
			t.Errorf("%q = %v, want %v", tt.src, got, tt.want)
		}
	}
}

func TestExprNilState(t *testing.T) {
	t.Parallel()
	x, err := parseExpr(`state.k == ""`, "state")
	if err != nil {
		t.Fatal(err)
	}
	if !x.eval(&vars{}) {
		t.Error("state.k with no state is not empty")
	}
}

func TestExprErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		pos  int
		want string
	}{
		{``, 0, "ends too soon"},
		{`input`, 0, "want a boolean"},
		{`len(input)`, 0, "want a boolean"},
		{`contains(input)`, 0, "takes 2 argument"},
		{`len(input, previous) > 1`, 0, "takes 1 argument"},
		{`len(3) > 1`, 0, "takes strings"},
		{`upper(input) == ""`, 0, "unknown function"},
		{`foo == "x"`, 0, "unknown name"},
		{`input == 3`, 6, "compares a string with an integer"},
		{`input < "b"`, 6, "needs integers"},
		{`1 < 2 < 3`, 6, "do not chain"},
		{`true && 1`, 5, "needs booleans"},
		{`!input`, 0, "! needs a boolean"},
		{`(true`, 5, `want ")"`},
		{`true)`, 4, `unexpected ")"`},
		{`"abc`, 0, "unterminated string"},
		{`"a\qb" == ""`, 2, "unknown escape"},
		{`input == "a" @`, 13, "unexpected character"},
		{`99999999999999999999 > 1`, 0, "out of range"},
		{`state == ""`, 6, `want "."`},
		{`state.1 == ""`, 6, "a key after state."},
		{`contains(input "x")`, 15, `want "," or ")"`},
		{`input = "x"`, 6, "unexpected character"},
		{`true &`, 5, "unexpected character"},
		{strings.Repeat("(", 100) + "true" + strings.Repeat(")", 100), 65, "nested too deeply"},
		{strings.Repeat("!", 100) + "true", 65, "nested too deeply"},
	}
	for _, tt := range tests {
		_, err := parseExpr(tt.src, "input", "previous", "state")
		var pe *exprError
		if !errors.As(err, &pe) {
			t.Errorf("parseExpr(%q) = %v, want an *exprError", tt.src, err)
			continue
		}
		if !strings.Contains(pe.msg, tt.want) || pe.pos != tt.pos {
			t.Errorf("parseExpr(%q) = %q at %d, want %q at %d", tt.src, pe.msg, pe.pos, tt.want, tt.pos)
		}
	}
}

func TestExprAllowedVariables(t *testing.T) {
	t.Parallel()
	if _, err := parseExpr(`contains(input, "x")`, "previous"); err == nil || !strings.Contains(err.Error(), "not available here") {
		t.Errorf("input where only previous is allowed: %v", err)
	}
	if _, err := parseExpr(`state.x == ""`, "previous"); err == nil {
		t.Error("state where only previous is allowed: no error")
	}
	if _, err := parseExpr(`contains(previous, "x")`, "previous"); err != nil {
		t.Error(err)
	}
}

func TestIterationOutput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		results []run.StepResult
		want    string
	}{
		{nil, ""},
		{[]run.StepResult{{Content: "a", Status: run.StatusCompleted}, {Content: "b", Status: run.StatusCompleted}}, "b"},
		{[]run.StepResult{{Content: "a", Status: run.StatusCompleted}, {Status: run.StatusCancelled}}, "a"},
		{[]run.StepResult{{Content: "a", Status: run.StatusCompleted}, {Status: run.StatusCompleted}}, ""},
	}
	for _, tt := range tests {
		if got := iterationOutput(tt.results); got != tt.want {
			t.Errorf("iterationOutput(%v) = %q, want %q", tt.results, got, tt.want)
		}
	}
}

func FuzzExpr(f *testing.F) {
	for _, s := range []string{
		`len(previous) > 100`, `contains(input, "code") && !contains(previous, 'x')`,
		`state.mode == "a\"b"`, `(true || false) && 1 <= 2`, `lower(input) != ""`, `"\`, `((`, `!`,
	} {
		f.Add(s, "some input", "previous output")
	}
	f.Fuzz(func(t *testing.T, src, input, previous string) {
		x, err := parseExpr(src, "input", "previous", "state")
		if err != nil {
			var pe *exprError
			if !errors.As(err, &pe) || pe.pos < 0 || pe.pos > len(src) {
				t.Fatalf("parseExpr(%q): bad error %v", src, err)
			}
			return
		}
		state := new(workflow.State)
		state.Set("mode", input)
		x.eval(&vars{input: input, previous: previous, state: state})
	})
}
