package config

import (
	"fmt"
	"strings"
)

// Error is one problem in a configuration file, at a line (and column) of it.
type Error struct {
	File   string
	Line   int // 1-based; 0 when the problem has no line
	Column int // 1-based; 0 when unknown
	Msg    string
}

// Error returns "file:line:column: message", leaving out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Errors are the problems found in a configuration file, in the order of their
// lines. errors.As finds each *Error in them.
type Errors []*Error

// Error returns the problems, one a line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems as errors.
func (es Errors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}
