package config

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kern-dev/kern/workflow"
)

// vars are the values an expression reads.
type vars struct {
	input    string
	previous string
	state    *workflow.State
}

// typ is the static type of an expression.
type typ int

const (
	tString typ = iota
	tInt
	tBool
)

func (t typ) String() string {
	return [...]string{"a string", "an integer", "a boolean"}[t]
}

// node is a type-checked expression compiled into a function of its type; exactly
// the function of its type is set.
type node struct {
	t typ
	s func(*vars) string
	i func(*vars) int
	b func(*vars) bool
}

// expr is a parsed boolean expression.
type expr struct {
	src  string
	eval func(*vars) bool
}

// exprError is a syntax or type error at byte offset pos of an expression.
type exprError struct {
	pos int
	msg string
}

func (e *exprError) Error() string { return fmt.Sprintf("at offset %d: %s", e.pos, e.msg) }

// maxDepth bounds the nesting of an expression, so that parsing cannot exhaust the
// stack.
const maxDepth = 64

// maxLen bounds the length of an expression.
const maxLen = 4096

// parseExpr parses src as a boolean expression over the variables in allowed
// ("input", "previous", "state" for state.<key>).
func parseExpr(src string, allowed ...string) (*expr, error) {
	if len(src) > maxLen {
		return nil, &exprError{0, fmt.Sprintf("expression is longer than %d bytes", maxLen)}
	}
	p := &parser{src: src, allowed: allowed}
	p.next()
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.err != nil {
		return nil, p.err
	}
	if p.tok.kind != tkEOF {
		return nil, p.errorf("unexpected %s", p.tok)
	}
	if n.t != tBool {
		return nil, &exprError{0, fmt.Sprintf("expression is %s, want a boolean (a comparison, contains(...), &&, ||, !)", n.t)}
	}
	return &expr{src: src, eval: n.b}, nil
}

// tokens

type tokKind int

const (
	tkEOF tokKind = iota
	tkIdent
	tkString
	tkInt
	tkOp // punctuation and operators
)

type token struct {
	kind tokKind
	pos  int
	text string // the identifier, operator, or the decoded string literal
	n    int
}

func (t token) String() string {
	switch t.kind {
	case tkEOF:
		return "end of expression"
	case tkString:
		return strconv.Quote(t.text)
	case tkInt:
		return strconv.Itoa(t.n)
	}
	return fmt.Sprintf("%q", t.text)
}

type parser struct {
	src     string
	off     int
	tok     token
	err     *exprError // a lexical error, reported when its token is used
	depth   int
	allowed []string
}

func (p *parser) errorf(format string, args ...any) *exprError {
	return &exprError{p.tok.pos, fmt.Sprintf(format, args...)}
}

// next reads the next token into p.tok.
func (p *parser) next() {
	for p.off < len(p.src) && strings.IndexByte(" \t\r\n", p.src[p.off]) >= 0 {
		p.off++
	}
	start := p.off
	if p.off == len(p.src) {
		p.tok = token{kind: tkEOF, pos: start}
		return
	}
	c := p.src[p.off]
	switch {
	case isLetter(c):
		for p.off < len(p.src) && (isLetter(p.src[p.off]) || isDigit(p.src[p.off])) {
			p.off++
		}
		p.tok = token{kind: tkIdent, pos: start, text: p.src[start:p.off]}
	case isDigit(c):
		for p.off < len(p.src) && isDigit(p.src[p.off]) {
			p.off++
		}
		n, err := strconv.Atoi(p.src[start:p.off])
		if err != nil {
			p.lexError(start, "integer %s is out of range", p.src[start:p.off])
			return
		}
		p.tok = token{kind: tkInt, pos: start, n: n}
	case c == '"' || c == '\'':
		p.str(c)
	default:
		for _, op := range []string{"&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "(", ")", ",", "."} {
			if strings.HasPrefix(p.src[p.off:], op) {
				p.off += len(op)
				p.tok = token{kind: tkOp, pos: start, text: op}
				return
			}
		}
		r, _ := utf8.DecodeRuneInString(p.src[p.off:])
		p.lexError(start, "unexpected character %q", r)
	}
}

// str reads a string literal quoted with q; \\, \n, \t and the quote itself can be
// escaped with a backslash.
func (p *parser) str(q byte) {
	start := p.off
	p.off++
	var b strings.Builder
	for p.off < len(p.src) {
		c := p.src[p.off]
		switch {
		case c == q:
			p.off++
			p.tok = token{kind: tkString, pos: start, text: b.String()}
			return
		case c == '\\' && p.off+1 < len(p.src):
			switch e := p.src[p.off+1]; e {
			case '\\', '"', '\'':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				p.lexError(p.off, "unknown escape \\%c", e)
				return
			}
			p.off += 2
		default:
			b.WriteByte(c)
			p.off++
		}
	}
	p.lexError(start, "unterminated string")
}

func (p *parser) lexError(pos int, format string, args ...any) {
	p.off = len(p.src)
	p.err = &exprError{pos, fmt.Sprintf(format, args...)}
	p.tok = token{kind: tkEOF, pos: pos}
}

func isLetter(c byte) bool { return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

func (p *parser) isOp(op string) bool { return p.err == nil && p.tok.kind == tkOp && p.tok.text == op }

// grammar:
//
//	or      = and { "||" and }
//	and     = cmp { "&&" cmp }
//	cmp     = unary [ ("==" | "!=" | "<" | "<=" | ">" | ">=") unary ]
//	unary   = "!" unary | primary
//	primary = string | integer | "true" | "false" | "input" | "previous"
//	        | "state" "." key | func "(" [ or { "," or } ] ")" | "(" or ")"

func (p *parser) or() (*node, error) {
	return p.logical("||", p.and, func(a, b func(*vars) bool) func(*vars) bool {
		return func(v *vars) bool { return a(v) || b(v) }
	})
}

func (p *parser) and() (*node, error) {
	return p.logical("&&", p.cmp, func(a, b func(*vars) bool) func(*vars) bool {
		return func(v *vars) bool { return a(v) && b(v) }
	})
}

func (p *parser) logical(op string, operand func() (*node, error), join func(a, b func(*vars) bool) func(*vars) bool) (*node, error) {
	x, err := operand()
	if err != nil {
		return nil, err
	}
	for p.isOp(op) {
		pos := p.tok.pos
		p.next()
		y, err := operand()
		if err != nil {
			return nil, err
		}
		if x.t != tBool || y.t != tBool {
			return nil, &exprError{pos, fmt.Sprintf("%s needs booleans, not %s and %s", op, x.t, y.t)}
		}
		x = &node{t: tBool, b: join(x.b, y.b)}
	}
	return x, nil
}

func (p *parser) cmp() (*node, error) {
	x, err := p.unary()
	if err != nil {
		return nil, err
	}
	if p.err != nil || p.tok.kind != tkOp {
		return x, nil
	}
	op, pos := p.tok.text, p.tok.pos
	switch op {
	case "==", "!=", "<", "<=", ">", ">=":
	default:
		return x, nil
	}
	p.next()
	y, err := p.unary()
	if err != nil {
		return nil, err
	}
	if x.t != y.t {
		return nil, &exprError{pos, fmt.Sprintf("%s compares %s with %s", op, x.t, y.t)}
	}
	if op != "==" && op != "!=" && x.t != tInt {
		return nil, &exprError{pos, fmt.Sprintf("%s needs integers (such as len(previous)), not %s", op, x.t)}
	}
	n := compare(op, x, y)
	if p.isOp("==") || p.isOp("!=") || p.isOp("<") || p.isOp("<=") || p.isOp(">") || p.isOp(">=") {
		return nil, p.errorf("comparisons do not chain: use && between them")
	}
	return n, nil
}

func compare(op string, x, y *node) *node {
	switch {
	case x.t == tString && op == "==":
		return &node{t: tBool, b: func(v *vars) bool { return x.s(v) == y.s(v) }}
	case x.t == tString:
		return &node{t: tBool, b: func(v *vars) bool { return x.s(v) != y.s(v) }}
	case x.t == tBool && op == "==":
		return &node{t: tBool, b: func(v *vars) bool { return x.b(v) == y.b(v) }}
	case x.t == tBool:
		return &node{t: tBool, b: func(v *vars) bool { return x.b(v) != y.b(v) }}
	}
	a, b := x.i, y.i
	var f func(v *vars) bool
	switch op {
	case "==":
		f = func(v *vars) bool { return a(v) == b(v) }
	case "!=":
		f = func(v *vars) bool { return a(v) != b(v) }
	case "<":
		f = func(v *vars) bool { return a(v) < b(v) }
	case "<=":
		f = func(v *vars) bool { return a(v) <= b(v) }
	case ">":
		f = func(v *vars) bool { return a(v) > b(v) }
	default:
		f = func(v *vars) bool { return a(v) >= b(v) }
	}
	return &node{t: tBool, b: f}
}

func (p *parser) unary() (*node, error) {
	if !p.isOp("!") {
		return p.primary()
	}
	pos := p.tok.pos
	p.next()
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	x, err := p.unary()
	if err != nil {
		return nil, err
	}
	if x.t != tBool {
		return nil, &exprError{pos, fmt.Sprintf("! needs a boolean, not %s", x.t)}
	}
	return &node{t: tBool, b: func(v *vars) bool { return !x.b(v) }}, nil
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errorf("expression nested too deeply")
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

func (p *parser) primary() (*node, error) {
	if p.err != nil {
		return nil, p.err
	}
	t := p.tok
	switch t.kind {
	case tkEOF:
		return nil, p.errorf("expression ends too soon")
	case tkString:
		p.next()
		return &node{t: tString, s: func(*vars) string { return t.text }}, nil
	case tkInt:
		p.next()
		return &node{t: tInt, i: func(*vars) int { return t.n }}, nil
	case tkIdent:
		p.next()
		return p.ident(t)
	}
	if t.text != "(" {
		return nil, p.errorf("unexpected %s", t)
	}
	p.next()
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	x, err := p.or()
	if err != nil {
		return nil, err
	}
	if !p.isOp(")") {
		return nil, p.expected("\")\"")
	}
	p.next()
	return x, nil
}

func (p *parser) expected(what string) error {
	if p.err != nil {
		return p.err
	}
	return p.errorf("want %s, not %s", what, p.tok)
}

// ident parses what follows the identifier t: a variable, a literal or a call.
func (p *parser) ident(t token) (*node, error) {
	if p.isOp("(") {
		return p.call(t)
	}
	switch t.text {
	case "true", "false":
		b := t.text == "true"
		return &node{t: tBool, b: func(*vars) bool { return b }}, nil
	case "input", "previous", "state":
		if !p.allows(t.text) {
			return nil, &exprError{t.pos, fmt.Sprintf("%s is not available here (use %s)", t.text, strings.Join(p.allowed, ", "))}
		}
	default:
		return nil, &exprError{t.pos, fmt.Sprintf("unknown name %q (variables: input, previous, state.<key>; functions: contains, len, lower)", t.text)}
	}
	switch t.text {
	case "input":
		return &node{t: tString, s: func(v *vars) string { return v.input }}, nil
	case "previous":
		return &node{t: tString, s: func(v *vars) string { return v.previous }}, nil
	}
	if !p.isOp(".") {
		return nil, p.expected("\".\" and a key after state")
	}
	p.next()
	if p.err != nil || p.tok.kind != tkIdent {
		return nil, p.expected("a key after state.")
	}
	key := p.tok.text
	p.next()
	return &node{t: tString, s: func(v *vars) string { return stateString(v.state, key) }}, nil
}

func (p *parser) allows(name string) bool {
	for _, a := range p.allowed {
		if a == name {
			return true
		}
	}
	return false
}

// stateString returns the state's value under key as a string: "" when it is
// missing, else the value formatted with fmt.Sprint.
func stateString(s *workflow.State, key string) string {
	if s == nil {
		return ""
	}
	v, ok := s.Get(key)
	if !ok || v == nil {
		return ""
	}
	if str, ok := v.(string); ok {
		return str
	}
	return fmt.Sprint(v)
}

// call parses the arguments of the function named by t and type-checks the call.
func (p *parser) call(t token) (*node, error) {
	p.next() // (
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	var args []*node
	for !p.isOp(")") {
		if len(args) > 0 {
			if !p.isOp(",") {
				return nil, p.expected("\",\" or \")\"")
			}
			p.next()
		}
		a, err := p.or()
		if err != nil {
			return nil, err
		}
		args = append(args, a)
	}
	p.next() // )
	want := map[string]int{"contains": 2, "len": 1, "lower": 1}
	n, ok := want[t.text]
	if !ok {
		return nil, &exprError{t.pos, fmt.Sprintf("unknown function %q (functions: contains, len, lower)", t.text)}
	}
	if len(args) != n {
		return nil, &exprError{t.pos, fmt.Sprintf("%s takes %d argument(s), not %d", t.text, n, len(args))}
	}
	for _, a := range args {
		if a.t != tString {
			return nil, &exprError{t.pos, fmt.Sprintf("%s takes strings, not %s", t.text, a.t)}
		}
	}
	switch t.text {
	case "contains":
		a, b := args[0].s, args[1].s
		return &node{t: tBool, b: func(v *vars) bool { return strings.Contains(a(v), b(v)) }}, nil
	case "len":
		a := args[0].s
		return &node{t: tInt, i: func(v *vars) int { return utf8.RuneCountInString(a(v)) }}, nil
	}
	a := args[0].s
	return &node{t: tString, s: func(v *vars) string { return strings.ToLower(a(v)) }}, nil
}
