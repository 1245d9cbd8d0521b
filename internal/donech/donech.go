// Package donech provides a done channel made only when first asked for: most
// runs end with nobody waiting on theirs, and then cost no channel.
package donech

// closed is the channel of every Lazy closed before it was asked for.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Lazy is a done channel made when first asked for. Its zero value is open. It
// has no lock of its own: its owner's lock guards it.
type Lazy struct {
	ch   chan struct{}
	done bool
}

// Chan returns the channel, closed once Close was called.
func (l *Lazy) Chan() <-chan struct{} {
	if l.ch == nil {
		if l.done {
			return closed
		}
		l.ch = make(chan struct{})
	}
	return l.ch
}

// Close closes the channel, if it was made, and every one asked for later.
func (l *Lazy) Close() {
	l.done = true
	if l.ch != nil {
		close(l.ch)
	}
}

// Closed reports whether Close was called.
func (l *Lazy) Closed() bool { return l.done }
