package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// note is one call of a store.Notifications function.
type note struct {
	kind   string // cancel, events, ended or reconnected
	id     string
	detail string // the reason, the last index or the status
}

// listenAll runs s.Listen with every function of store.Notifications set until
// the test ends, and returns what they were called with, in order. It fails the
// test if two calls overlap.
func listenAll(t *testing.T, s *Store) <-chan note {
	t.Helper()
	got := make(chan note, 10_000)
	var busy atomic.Int32
	call := func(n note) {
		if busy.Add(1) > 1 {
			t.Errorf("notification functions called at once (%+v)", n)
		}
		got <- n
		busy.Add(-1)
	}
	n := store.Notifications{
		Cancel:      func(id, reason string) { call(note{"cancel", id, reason}) },
		Events:      func(id string, last int) { call(note{"events", id, strconv.Itoa(last)}) },
		Ended:       func(id string, st run.Status) { call(note{"ended", id, string(st)}) },
		Reconnected: func() { call(note{kind: "reconnected"}) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Listen(ctx, n) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Listen: %v", err)
		}
	})
	return got
}

// until waits for a note of that kind and run id, and returns it with the notes
// delivered before it.
func until(t *testing.T, got <-chan note, kind, id string) (note, []note) {
	t.Helper()
	var before []note
	deadline := time.After(hang)
	for {
		select {
		case n := <-got:
			if n.kind == kind && n.id == id {
				return n, before
			}
			before = append(before, n)
		case <-deadline:
			t.Fatalf("no %s of %q within %v; heard %d others", kind, id, hang, len(before))
		}
	}
}

// heardAll waits for a note of that kind for each run of want, and reports those
// whose detail is not the one wanted.
func heardAll(t *testing.T, got <-chan note, kind string, want map[string]string) {
	t.Helper()
	want = maps.Clone(want)
	deadline := time.After(hang)
	for len(want) > 0 {
		select {
		case n := <-got:
			d, ok := want[n.id]
			if n.kind != kind || !ok {
				continue
			}
			if n.detail != d {
				t.Errorf("%s of run %.10q: %s, want %s", kind, n.id, n.detail, d)
			}
			delete(want, n.id)
		case <-deadline:
			t.Fatalf("%d runs' %s not heard within %v", len(want), kind, hang)
		}
	}
}

// warm waits until the listener listens: a cancel is heard once it does, whether
// re-read on connecting or notified. It returns the notes heard before.
func warm(t *testing.T, s *Store, got <-chan note) []note {
	t.Helper()
	cancelRun(t, s, "warm", "")
	_, before := until(t, got, "cancel", "warm")
	return before
}

func appendEvents(t *testing.T, s *Store, evs ...store.Event) {
	t.Helper()
	for i := range evs {
		evs[i].Type, evs[i].Data = run.EventRunContent, []byte(`{"event":"RunContent"}`)
	}
	if err := s.AppendEvents(t.Context(), evs); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
}

// TestNotifyEvents: a batch of events of several runs is heard once per run, with
// the greatest index of the batch, by a listener of another pool.
func TestNotifyEvents(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	other, err := Open(t.Context(), pgtest.URL(), WithSchema(s.Schema()))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	got := listenAll(t, s)
	warm(t, s, got)

	appendEvents(t, other,
		store.Event{RunID: "b", Index: 4}, store.Event{RunID: "a", Index: 0},
		store.Event{RunID: "c", Index: 7}, store.Event{RunID: "b", Index: 3},
		store.Event{RunID: "a", Index: 2}, store.Event{RunID: "a", Index: 1})
	heardAll(t, got, "events", map[string]string{"a": "2", "b": "4", "c": "7"})
	// A later batch of a run already stored is heard with its new last index,
	// and the previous batch's runs are not heard twice.
	appendEvents(t, other, store.Event{RunID: "a", Index: 3})
	n, before := until(t, got, "events", "a")
	if n.detail != "3" {
		t.Errorf("second batch: last %s, want 3", n.detail)
	}
	for _, b := range before {
		if b.kind == "events" {
			t.Errorf("heard %+v again", b)
		}
	}
	// A listener reads the events it is told of.
	evs, err := s.Events(t.Context(), "a", 0, 0)
	if err != nil || len(evs) != 4 {
		t.Errorf("Events(a) = %d events, %v; want 4", len(evs), err)
	}
}

// TestNotifyEventsSplit: a batch touching more runs than one notification holds
// is notified in several, and every run is heard.
func TestNotifyEventsSplit(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	got := listenAll(t, s)
	warm(t, s, got)

	const runs = 40
	var evs []store.Event
	want := make(map[string]string)
	for r := range runs {
		id := fmt.Sprintf("%04d-%s", r, strings.Repeat("x", 995)) // 1000 bytes
		for i := range r%3 + 1 {
			evs = append(evs, store.Event{RunID: id, Index: 10 * i})
		}
		want[id] = strconv.Itoa(10 * (r % 3))
	}
	appendEvents(t, s, evs...)
	heardAll(t, got, "events", want)
}

// TestNotifyEnded: an update to a terminal status is heard as the run's end, with
// its status; one to RUNNING, or of a run never created, is not.
func TestNotifyEnded(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	got := listenAll(t, s)
	warm(t, s, got)

	for _, st := range []run.Status{run.StatusCompleted, run.StatusCancelled, run.StatusError} {
		r := &store.Run{ID: "run-" + string(st), Status: run.StatusPending}
		if err := s.CreateRun(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		r.Status = run.StatusRunning
		if err := s.UpdateRun(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		r.Status, r.Output.Status = st, st
		if err := s.UpdateRun(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		// Notifications come in commit order: the first end heard for the run
		// is the terminal update's.
		if n, _ := until(t, got, "ended", r.ID); n.detail != string(st) {
			t.Errorf("ended %s: status %s, want %s", r.ID, n.detail, st)
		}
		stored, err := s.GetRun(t.Context(), r.ID)
		if err != nil || stored.Status != st {
			t.Errorf("GetRun(%s) = %v, %v; want %s", r.ID, stored, err, st)
		}
	}

	err := s.UpdateRun(t.Context(), &store.Run{ID: "never", Status: run.StatusCompleted})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateRun of a run never created = %v, want ErrNotFound", err)
	}
	last := &store.Run{ID: "last", Status: run.StatusRunning}
	if err := s.CreateRun(t.Context(), last); err != nil {
		t.Fatal(err)
	}
	last.Status = run.StatusCompleted
	if err := s.UpdateRun(t.Context(), last); err != nil {
		t.Fatal(err)
	}
	_, before := until(t, got, "ended", "last")
	for _, n := range before {
		if n.kind == "ended" {
			t.Errorf("heard %+v, want no other end", n)
		}
	}
}

// TestNotifyEndedConcurrently: ends saved at once, as a recorder saves those of
// the runs that ended in one flush, are each stored and heard, a missing run's
// with ErrNotFound and a cancelled call's with its context's error, without
// holding up the others.
func TestNotifyEndedConcurrently(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	got := listenAll(t, s)
	warm(t, s, got)

	const runs = 60
	statuses := []run.Status{run.StatusCompleted, run.StatusCancelled, run.StatusError}
	want := make(map[string]string)
	for i := range runs {
		id := fmt.Sprintf("run-%d", i)
		if err := s.CreateRun(t.Context(), &store.Run{ID: id, Status: run.StatusRunning}); err != nil {
			t.Fatal(err)
		}
		want[id] = string(statuses[i%3])
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	var wg sync.WaitGroup
	for i := range runs {
		id, st := fmt.Sprintf("run-%d", i), statuses[i%3]
		for range 1 + i%2 { // some ended twice at once
			wg.Go(func() {
				r := &store.Run{ID: id, Status: st, Output: run.Output{Status: st, Content: id}}
				if err := s.UpdateRun(t.Context(), r); err != nil {
					t.Errorf("UpdateRun(%s): %v", id, err)
				}
			})
		}
		wg.Go(func() {
			err := s.UpdateRun(t.Context(), &store.Run{ID: fmt.Sprintf("missing-%d", i), Status: st})
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("UpdateRun of a missing run = %v, want ErrNotFound", err)
			}
		})
		if i%10 == 0 {
			wg.Go(func() {
				err := s.UpdateRun(cancelled, &store.Run{ID: fmt.Sprintf("cancelled-%d", i), Status: st})
				if !errors.Is(err, context.Canceled) {
					t.Errorf("UpdateRun with a cancelled context = %v, want context.Canceled", err)
				}
			})
		}
	}
	wg.Wait()
	heardAll(t, got, "ended", want)
	for id, st := range want {
		r, err := s.GetRun(t.Context(), id)
		if err != nil || string(r.Status) != st || r.Output.Content != id {
			t.Errorf("GetRun(%s) = %+v, %v; want %s", id, r, err, st)
		}
	}
}

// TestNotifyPeriodicReread: a cancel intent whose notification was lost (here,
// never sent) is delivered by the periodic re-read, without a reconnection.
func TestNotifyPeriodicReread(t *testing.T) {
	t.Parallel()
	s := openTest(t, WithRereadInterval(20*time.Millisecond))
	got := listenAll(t, s)
	warm(t, s, got)

	_, err := s.pool.Exec(t.Context(), `INSERT INTO `+pgx.Identifier{s.Schema(), "cancel_intents"}.Sanitize()+
		` (run_id, reason) VALUES ('lost', 'requested')`)
	if err != nil {
		t.Fatal(err)
	}
	n, before := until(t, got, "cancel", "lost")
	if n.detail != "requested" {
		t.Errorf("reason = %q", n.detail)
	}
	// It still listens, on the connection it had.
	cancelRun(t, s, "after", "")
	_, after := until(t, got, "cancel", "after")
	for _, n := range append(before, after...) {
		if n.kind == "reconnected" {
			t.Errorf("the listener reconnected; want the re-read on its own")
		}
	}
}

// TestNotifyReconnected: Reconnected is called once the listener's connection is
// made again after its backend was terminated, not on its first connection, and
// it hears notifications again.
func TestNotifyReconnected(t *testing.T) {
	t.Parallel()
	s := openTest(t, WithRereadInterval(-1))
	got := listenAll(t, s)
	if slices.Contains(warm(t, s, got), note{kind: "reconnected"}) {
		t.Error("Reconnected called on the first connection")
	}

	var killed int
	err := s.pool.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1`, listenerName(s.Schema())).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminate the listener's backend: %d killed, %v", killed, err)
	}
	_, before := until(t, got, "reconnected", "")
	// The intents are re-read before Reconnected is called.
	if !slices.Contains(before, note{"cancel", "warm", ""}) {
		t.Errorf("before Reconnected: %+v, want the re-read intent", before)
	}
	appendEvents(t, s, store.Event{RunID: "after", Index: 0})
	if n, _ := until(t, got, "events", "after"); n.detail != "0" {
		t.Errorf("events after reconnecting: last %s", n.detail)
	}
}

// TestNotifyOtherSchema: a listener hears nothing of another schema.
func TestNotifyOtherSchema(t *testing.T) {
	t.Parallel()
	s, other := openTest(t, WithRereadInterval(-1)), openTest(t)
	got := listenAll(t, s)
	warm(t, s, got)

	appendEvents(t, other, store.Event{RunID: "theirs", Index: 0})
	if err := other.CreateRun(t.Context(), &store.Run{ID: "theirs", Status: run.StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	if err := other.UpdateRun(t.Context(), &store.Run{ID: "theirs", Status: run.StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	cancelRun(t, other, "theirs", "")
	appendEvents(t, s, store.Event{RunID: "mine", Index: 0})
	_, before := until(t, got, "events", "mine")
	for _, n := range before {
		if n.id == "theirs" {
			t.Errorf("heard %+v of another schema", n)
		}
	}
}

// TestPayloads: every payload a store writes is read back; payloads stay under
// the bound; what cannot be read is ignored.
func TestPayloads(t *testing.T) {
	t.Parallel()
	var got []note
	n := store.Notifications{
		Cancel: func(id, reason string) { got = append(got, note{"cancel", id, reason}) },
		Events: func(id string, last int) { got = append(got, note{"events", id, strconv.Itoa(last)}) },
		Ended:  func(id string, st run.Status) { got = append(got, note{"ended", id, string(st)}) },
	}

	long := strings.Repeat("é", MaxCancelRunID/2)
	var (
		ids  []string
		idxs []int32
		want []note
	)
	for r := range 30 {
		id := fmt.Sprintf("%s%03d", long[:len(long)-4], r) // MaxCancelRunID-1 bytes
		ids, idxs = append(ids, id, id), append(idxs, 1, int32(r))
		want = append(want, note{"events", id, strconv.Itoa(max(1, r))})
	}
	ids, idxs = append(ids, strings.Repeat("z", MaxCancelRunID+1)), append(idxs, 0) // left out
	ps := eventsPayloads(ids, idxs)
	if len(ps) < 2 {
		t.Errorf("%d payloads for 30 runs of 1 KiB ids, want them split", len(ps))
	}
	got = nil
	for _, p := range ps {
		if len(p) > maxPayload {
			t.Errorf("payload of %d bytes", len(p))
		}
		deliver(&n, p)
	}
	if !slices.Equal(got, want) {
		t.Errorf("events heard:\n%+v\nwant\n%+v", got, want)
	}
	if ps := eventsPayloads([]string{"a:b", "a:b", "c d"}, []int32{0, 12, 3}); len(ps) != 1 {
		t.Errorf("payloads %q, want one", ps)
	} else {
		got = nil
		deliver(&n, ps[0])
		if want := []note{{"events", "a:b", "12"}, {"events", "c d", "3"}}; !slices.Equal(got, want) {
			t.Errorf("deliver(%q) = %+v, want %+v", ps[0], got, want)
		}
	}

	got = nil
	p := kindEnded + " " + endedEntry("r:1 ", run.StatusCancelled) + "," + endedEntry("b", run.StatusError)
	deliver(&n, p)
	if want := []note{{"ended", "r:1 ", "CANCELLED"}, {"ended", "b", "ERROR"}}; !slices.Equal(got, want) {
		t.Errorf("deliver(%q) = %+v", p, got)
	}

	got = nil
	for _, p := range []string{
		"", "x", "cancel", "cancel x", "cancel 5:abc", "cancel -1:a", "5:abcde",
		"events", "events 3:abc", "events 3:abc x", "events 3:abc 1,", "events 3:abc -1",
		"events 1:a 1,1:b", "ended 3:abc", "ended 3:abc ", "ended 1:a X,", "ended", "bogus 3:abc", "Cancel 1:ab",
	} {
		deliver(&n, p)
	}
	if len(got) != 0 {
		t.Errorf("malformed payloads delivered %+v", got)
	}
	deliver(&store.Notifications{}, cancelPayload("a", "b")) // nil functions are skipped
}

// TestOpenSchemaParam: the URL's schema parameter names the schema, as WithSchema
// does, which overrides it; a bad name is refused.
func TestOpenSchemaParam(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	dsn := fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", cfg.Host, cfg.Port, cfg.User, cfg.Database)
	for _, tt := range []struct {
		name string
		url  func(schema string) string
		opt  bool // WithSchema(schema), and a URL naming another
	}{
		{"url", func(schema string) string { return pgtest.WithParam(pgtest.URL(), "schema", schema) }, false},
		{"dsn", func(schema string) string { return dsn + " schema=" + schema }, false},
		{"overridden", func(string) string { return pgtest.WithParam(pgtest.URL(), "schema", "pg_not_this") }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			schema := pgtest.Schema(t)
			var opts []Option
			if tt.opt {
				opts = append(opts, WithSchema(schema))
			}
			s, err := Open(t.Context(), tt.url(schema), opts...)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			if s.Schema() != schema {
				t.Errorf("Schema() = %q, want %q", s.Schema(), schema)
			}
			if err := s.CreateRun(t.Context(), &store.Run{ID: "r", Status: run.StatusRunning}); err != nil {
				t.Fatal(err)
			}
			var n int
			err = s.pool.QueryRow(t.Context(), "SELECT count(*) FROM "+pgx.Identifier{schema, "runs"}.Sanitize()).Scan(&n)
			if err != nil || n != 1 {
				t.Errorf("runs in schema %s: %d, %v; want 1", schema, n, err)
			}
		})
	}
	for _, tt := range []struct{ name, url, want string }{
		{"reserved", pgtest.WithParam(pgtest.URL(), "schema", "pg_kern"), "reserved"},
		{"quote", pgtest.WithParam(pgtest.URL(), "schema", `x"; DROP TABLE runs; --`), "schema name"},
		{"empty", pgtest.WithParam(pgtest.URL(), "schema", ""), "schema name"},
		{"dsn digit", dsn + " schema=1x", "schema name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pgtest.Need(t)
			s, err := Open(t.Context(), tt.url)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", tt.url)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open(%q) = %v, want it to say %q", tt.url, err, tt.want)
			}
		})
	}
}
