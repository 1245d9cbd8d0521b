package run

import (
	"context"
	"strings"
	"sync/atomic"
	"unicode"
)

// Scope is where a nested run executes: the registry its cancel goes through, the log
// of the top-level run that numbers its events, and where its events come from
// (workflow_run_id, the step it runs in, the session).
type Scope struct {
	Registry *Registry
	Log      *Log
	Origin   Origin
}

type scopeKey struct{}

// ContextWithScope returns ctx carrying sc, the scope of the run that makes a call
// under ctx (an agent's tool call), so that what the call starts (an agent given as
// a tool) runs as a nested run of that one: its events in sc's log, its cancel
// through sc's registry. sc's Origin.ParentRunID is the calling run's ID.
func ContextWithScope(ctx context.Context, sc *Scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, sc)
}

// ScopeFromContext returns the scope ctx carries (see ContextWithScope).
func ScopeFromContext(ctx context.Context) (*Scope, bool) {
	sc, ok := ctx.Value(scopeKey{}).(*Scope)
	return sc, ok && sc != nil
}

// Slug turns a name into an ID: lower case, letters and digits, words joined by "-".
// "Research Agent" becomes "research-agent".
func Slug(name string) string {
	if isSlug(name) {
		return name
	}
	var b strings.Builder
	b.Grow(len(name))
	dash := false
	for _, r := range name {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(unicode.ToLower(r))
		default:
			dash = true
		}
	}
	return b.String()
}

// isSlug reports whether Slug would return s unchanged, which is the common case for
// step names and saves an allocation per step.
func isSlug(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1 && s[i-1] != '-':
		default:
			return false
		}
	}
	return true
}

// Gate passes a run's events on to a log until the run is cancelled, and from then on
// only its terminal event. A nested run emits through a gate of its own, so that
// cancelling it alone keeps what it produces afterwards out of the shared log.
type Gate struct {
	Log     *Log
	stopped atomic.Bool
}

// Stop closes the gate to all but terminal events.
func (g *Gate) Stop() { g.stopped.Store(true) }

// Emit emits ev to the log unless the gate or the log refuses it; see Log.Emit.
func (g *Gate) Emit(ev *Event) bool {
	if g.stopped.Load() && !ev.Event.Terminal() {
		return false
	}
	return g.Log.Emit(ev)
}
