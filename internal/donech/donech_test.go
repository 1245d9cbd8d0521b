package donech

import "testing"

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// A channel asked for before Close is closed by it; one asked for after is closed.
func TestLazy(t *testing.T) {
	var before, after Lazy
	c := before.Chan()
	if isClosed(c) || before.Closed() {
		t.Fatal("open Lazy's channel is closed")
	}
	before.Close()
	if !isClosed(c) || !before.Closed() {
		t.Fatal("channel asked for before Close is not closed by it")
	}
	after.Close()
	if !isClosed(after.Chan()) {
		t.Fatal("channel asked for after Close is open")
	}
}
