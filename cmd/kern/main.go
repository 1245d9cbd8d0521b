// Command kern serves kern's workflows over an HTTP API compatible with Agno's
// AgentOS, and runs, cancels and lists their runs from the terminal.
//
//	kern serve                      # serve on 127.0.0.1:7777, runs kept in kern.db
//	kern run article-creation-workflow "Write a story about a dragon who learns to code."
//	kern runs                       # the recent runs
//	kern cancel <run_id>            # cancel a run on the server
//
// Exit codes: 0 success (for kern run: the run completed); 1 any error, or a run
// that ended CANCELLED or ERROR other than by this command's Ctrl-C; 3 when kern
// cancel knows no run with the id (the cancel is kept all the same); 130 when
// kern run was interrupted by Ctrl-C (SIGINT) and cancelled its run; 143 the same
// for SIGTERM.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
}

// exitError ends the program with a code other than 1. A nil err means the command
// has already said what happened.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// execute runs the command line args and returns the process's exit code. Errors are
// printed as one line on stderr, never as a panic.
func execute(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(stderr, "kern: internal error: %v\n", p)
			code = 70
		}
	}()
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "kern:", oneLine(ee.err))
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "kern:", oneLine(err))
	return 1
}

// oneLine returns err's message on one line: drivers (pgx) put details on lines of
// their own.
func oneLine(err error) string {
	var b strings.Builder
	for l := range strings.Lines(err.Error()) {
		l = strings.TrimSpace(l)
		switch {
		case l == "":
			continue
		case b.Len() == 0:
		case strings.HasSuffix(b.String(), ":"):
			b.WriteString(" ")
		default:
			b.WriteString("; ")
		}
		b.WriteString(l)
	}
	return b.String()
}
