package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/store"
)

// hang bounds every wait on a listener: far longer than a delivery takes, it only
// turns a lost cancel into a failure instead of a hung test.
const hang = 30 * time.Second

type delivery struct{ id, reason string }

// listen runs s.Listen until the test ends, and returns what it delivers.
func listen(t *testing.T, s *Store) <-chan delivery {
	t.Helper()
	got := make(chan delivery, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Listen(ctx, store.Notifications{Cancel: func(id, reason string) { got <- delivery{id, reason} }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Listen: %v", err)
		}
	})
	return got
}

// next waits for the next delivery.
func next(t *testing.T, got <-chan delivery) delivery {
	t.Helper()
	select {
	case d := <-got:
		return d
	case <-time.After(hang):
		t.Fatalf("no cancel delivered within %v", hang)
		return delivery{}
	}
}

// await waits for the delivery of id, skipping others (re-reads repeat cancels).
func await(t *testing.T, got <-chan delivery, id string) delivery {
	t.Helper()
	for {
		if d := next(t, got); d.id == id {
			return d
		}
	}
}

func cancelRun(t *testing.T, s *Store, id, reason string) {
	t.Helper()
	if err := s.CancelRun(t.Context(), id, reason); err != nil {
		t.Fatalf("CancelRun(%s): %v", id, err)
	}
}

// TestCancelReread: intents stored before the listener connects are delivered
// first, except those of ended runs; later cancels are notified.
func TestCancelReread(t *testing.T) {
	t.Parallel()
	s := openTest(t, WithRereadInterval(-1)) // no periodic re-read between the two
	cancelRun(t, s, "before", "requested")
	cancelRun(t, s, "before", "again") // idempotent: the first reason stays
	if err := s.CreateRun(t.Context(), &store.Run{ID: "ended", Status: "COMPLETED"}); err != nil {
		t.Fatal(err)
	}
	cancelRun(t, s, "ended", "too late")
	if reason, ok, err := s.PendingCancel(t.Context(), "before"); err != nil || !ok || reason != "requested" {
		t.Fatalf("PendingCancel(before) = %q, %v, %v; want requested", reason, ok, err)
	}
	if _, ok, err := s.PendingCancel(t.Context(), "unknown"); err != nil || ok {
		t.Fatalf("PendingCancel(unknown) = %v, %v; want none", ok, err)
	}

	got := listen(t, s)
	if d := next(t, got); d != (delivery{"before", "requested"}) {
		t.Fatalf("first delivery = %+v, want the re-read intent", d)
	}
	cancelRun(t, s, "after", "requested")
	if d := next(t, got); d != (delivery{"after", "requested"}) {
		t.Fatalf("next delivery = %+v, want the notified cancel (not the ended run's)", d)
	}
}

// TestCancelAcrossStores: a cancel stored through one pool reaches a listener of
// another on the same schema, and no listener of another schema.
func TestCancelAcrossStores(t *testing.T) {
	t.Parallel()
	a := openTest(t)
	b, err := Open(t.Context(), pgtest.URL(), WithSchema(a.Schema()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	other := openTest(t)

	gotA, gotOther := listen(t, a), listen(t, other)
	cancelRun(t, b, "warm", "")
	await(t, gotA, "warm") // A listens
	cancelRun(t, other, "warm", "")
	await(t, gotOther, "warm")

	cancelRun(t, b, "run-1", "requested")
	if d := await(t, gotA, "run-1"); d.reason != "requested" {
		t.Errorf("reason = %q", d.reason)
	}
	// Notifications arrive in commit order: had the other schema's listener heard
	// run-1, it would deliver it before this.
	// (It may deliver "warm" twice: notified, and re-read on connecting.)
	cancelRun(t, other, "mine", "")
	for d := next(t, gotOther); d.id != "mine"; d = next(t, gotOther) {
		if d.id != "warm" {
			t.Fatalf("other schema's listener delivered %+v, want only its own cancels", d)
		}
	}
}

// TestCancelListenerReconnects: a cancel stored while the listener's connection is
// down is delivered once it reconnects.
func TestCancelListenerReconnects(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	down, release := make(chan struct{}, 1), make(chan struct{})
	s.beforeRelisten = func() {
		down <- struct{}{}
		<-release
	}
	got := listen(t, s)
	cancelRun(t, s, "warm", "")
	await(t, got, "warm")

	var killed int
	err := s.pool.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1`, listenerName(s.Schema())).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminate the listener's backend: %d killed, %v", killed, err)
	}
	select {
	case <-down:
	case <-time.After(hang):
		t.Fatal("the listener did not notice its connection was cut")
	}
	cancelRun(t, s, "while-down", "requested")
	close(release)
	if d := await(t, got, "while-down"); d.reason != "requested" {
		t.Errorf("reason = %q", d.reason)
	}
	// And it listens again.
	cancelRun(t, s, "after", "")
	await(t, got, "after")
}

// TestCancelBounds: a long reason is cut, keeping valid UTF-8, and still delivered;
// a long id is refused.
func TestCancelBounds(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	got := listen(t, s)
	cancelRun(t, s, "warm", "")
	await(t, got, "warm")

	long := strings.Repeat("é", 100_000) + "\x00"
	id := strings.Repeat("x", MaxCancelRunID)
	cancelRun(t, s, id, long)
	d := await(t, got, id)
	if len(d.reason) > MaxCancelReason || !utf8.ValidString(d.reason) || !strings.HasPrefix(long, d.reason) || d.reason == "" {
		t.Errorf("delivered reason: %d bytes, valid %v", len(d.reason), utf8.ValidString(d.reason))
	}
	if reason, ok, err := s.PendingCancel(t.Context(), id); err != nil || !ok || reason != d.reason {
		t.Errorf("PendingCancel = %d bytes, %v, %v; want the delivered reason", len(reason), ok, err)
	}
	err := s.CancelRun(t.Context(), id+"x", "")
	if !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("CancelRun with a %d-byte id = %v, want ErrTooLarge", len(id)+1, err)
	}
}

func TestCancelPayload(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ id, reason string }{
		{"run-1", "requested"}, {"", ""}, {"a:b", "1:2"}, {"12", ""}, {"r 1", " x"},
		{strings.Repeat("i", MaxCancelRunID), strings.Repeat("r", MaxCancelReason)},
	} {
		p := cancelPayload(c.id, c.reason)
		if len(p) >= 8000 {
			t.Errorf("payload of %d bytes", len(p))
		}
		var got []delivery
		deliver(&store.Notifications{Cancel: func(id, reason string) { got = append(got, delivery{id, reason}) }}, p)
		if len(got) != 1 || got[0] != (delivery{c.id, c.reason}) {
			t.Errorf("deliver(%q) = %+v", p, got)
		}
	}
	if ch := notifyChannel(strings.Repeat("s", 63)); len(ch) > 63 {
		t.Errorf("channel %q longer than an identifier", ch)
	}
}

// TestListenClosed: Listen refuses a closed store.
func TestListenClosed(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	s.Close()
	err := s.Listen(t.Context(), store.Notifications{Cancel: func(string, string) {}})
	if !errors.Is(err, store.ErrClosed) {
		t.Errorf("Listen on a closed store = %v, want ErrClosed", err)
	}
}
