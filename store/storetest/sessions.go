package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// What the suite holds a backend to about sessions, beyond the interface's doc
// comments:
//
//   - A run stored with a session id (CreateRun, and Enqueue of a store.Queue)
//     creates its session unless it exists: the run's user, kind and component,
//     the run's input (at most store.MaxSessionName characters) as its name, an
//     empty state, the run's CreatedAt as its CreatedAt and UpdatedAt. A later run
//     of the session moves its UpdatedAt to the run's CreatedAt when that is more
//     than store.SessionUpdatePrecision later (never back), and leaves the rest as
//     it is. A run refused (ErrExists) changes nothing; a run
//     without a session id creates none.
//   - SaveSession of a session that a run created keeps its name (when the saved
//     session has none) and its CreatedAt; a run of a session saved first fills in
//     its name and keeps its state and CreatedAt.
//   - ListSessions filters by user, kind, component and a part of the name
//     (ignoring the case of ASCII letters); sorts by UpdatedAt or CreatedAt,
//     newest first unless Ascending, ties broken by id in the same direction; a
//     zero Limit means 100; total counts the sessions selected, whatever the page.

// runSessions runs the session tests, each in parallel on a fresh store.
func runSessions(t *testing.T, open func(t *testing.T) store.Store) {
	for _, tt := range []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"SessionFromFirstRun", testSessionFromFirstRun},
		{"SessionFromQueuedRun", testSessionFromQueuedRun},
		{"SessionSavedAndRun", testSessionSavedAndRun},
		{"SessionNameBounded", testSessionNameBounded},
		{"DeleteSessionOfRuns", testDeleteSessionOfRuns},
		{"ListSessionsFilters", testListSessionsFilters},
		{"ListSessionsOrder", testListSessionsOrder},
		{"ListSessionsPaging", testListSessionsPaging},
		{"ListSessionsDefaultLimit", testListSessionsDefaultLimit},
		{"ListSessionsClosed", testListSessionsClosed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// sessionRun returns a top-level run of session sid, created at the given time.
func sessionRun(id, sid string, at time.Time) *store.Run {
	return &store.Run{
		ID: id, SessionID: sid, UserID: "u-" + sid, Kind: run.KindWorkflow, ComponentID: "flow",
		Status: run.StatusRunning, Input: "input of " + id,
		Output:    run.Output{RunID: id, Status: run.StatusRunning, Input: "input of " + id},
		CreatedAt: at,
	}
}

func mustGetSession(t *testing.T, s store.Store, id string) *store.Session {
	t.Helper()
	sess, err := s.GetSession(ctxOf(t), id)
	if err != nil {
		t.Fatalf("GetSession(%s): %v", id, err)
	}
	return sess
}

// checkTimes checks a session's CreatedAt and UpdatedAt.
func checkTimes(t *testing.T, sess *store.Session, created, updated time.Time) {
	t.Helper()
	if !sameTime(sess.CreatedAt, created) || !sameTime(sess.UpdatedAt, updated) {
		t.Errorf("session %s: CreatedAt %v, UpdatedAt %v; want %v, %v", sess.ID, sess.CreatedAt, sess.UpdatedAt, created, updated)
	}
}

func testSessionFromFirstRun(t *testing.T, s store.Store) {
	first := sessionRun("r1", "s1", base)
	mustCreate(t, s, first)
	sess := mustGetSession(t, s, "s1")
	want := &store.Session{ID: "s1", UserID: "u-s1", Kind: run.KindWorkflow, ComponentID: "flow", CreatedAt: base}
	checkSession(t, sess, want)
	if sess.Name != "input of r1" || len(sess.State) != 0 {
		t.Errorf("session name %q, state %v; want the first run's input, no state", sess.Name, sess.State)
	}
	checkTimes(t, sess, base, base)

	// A run less than SessionUpdatePrecision later, or an earlier one (an
	// import), changes nothing.
	mustCreate(t, s, sessionRun("r1b", "s1", base.Add(store.SessionUpdatePrecision/2)))
	mustCreate(t, s, sessionRun("r0", "s1", base.Add(-time.Hour)))
	checkTimes(t, mustGetSession(t, s, "s1"), base, base)
	// A later run moves UpdatedAt only.
	later := sessionRun("r2", "s1", base.Add(time.Minute))
	later.UserID, later.Kind, later.ComponentID, later.ParentRunID = "other", run.KindAgent, "helper", "r1"
	mustCreate(t, s, later)
	sess = mustGetSession(t, s, "s1")
	checkSession(t, sess, want)
	if sess.Name != "input of r1" {
		t.Errorf("name = %q after more runs, want the first run's", sess.Name)
	}
	checkTimes(t, sess, base, base.Add(time.Minute))

	// A refused run changes nothing; a run without a session makes none.
	dup := sessionRun("r1", "s1", base.Add(time.Hour))
	if err := s.CreateRun(ctxOf(t), dup); !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateRun(duplicate) = %v, want ErrExists", err)
	}
	checkTimes(t, mustGetSession(t, s, "s1"), base, base.Add(time.Minute))
	mustCreate(t, s, sessionRun("alone", "", base))
	if _, total, err := s.ListSessions(ctxOf(t), store.SessionQuery{}); err != nil || total != 1 {
		t.Errorf("ListSessions total = %d, %v; want 1 (a run without a session makes none)", total, err)
	}
}

func testSessionFromQueuedRun(t *testing.T, s store.Store) {
	q, ok := s.(store.Queue)
	if !ok {
		t.Skip("not a store.Queue")
	}
	if err := q.Enqueue(ctxOf(t), sessionRun("queued", "sq", base)); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	sess := mustGetSession(t, s, "sq")
	checkSession(t, sess, &store.Session{ID: "sq", UserID: "u-sq", Kind: run.KindWorkflow, ComponentID: "flow", CreatedAt: base})
	if sess.Name != "input of queued" {
		t.Errorf("name = %q", sess.Name)
	}
}

func testSessionSavedAndRun(t *testing.T, s store.Store) {
	// Run first, state saved after: the name and CreatedAt stay.
	mustCreate(t, s, sessionRun("r1", "ran", base))
	saved := &store.Session{ID: "ran", UserID: "u-ran", Kind: run.KindWorkflow, ComponentID: "flow",
		State: map[string]any{"topic": "dragons"}}
	if err := s.SaveSession(ctxOf(t), saved); err != nil {
		t.Fatal(err)
	}
	sess := mustGetSession(t, s, "ran")
	checkSession(t, sess, &store.Session{ID: "ran", UserID: "u-ran", Kind: run.KindWorkflow, ComponentID: "flow",
		State: map[string]any{"topic": "dragons"}, CreatedAt: base})
	if sess.Name != "input of r1" {
		t.Errorf("name = %q after SaveSession without one, want the run's input", sess.Name)
	}
	// A name given to SaveSession replaces it.
	saved.Name = "Dragons"
	if err := s.SaveSession(ctxOf(t), saved); err != nil {
		t.Fatal(err)
	}
	if sess := mustGetSession(t, s, "ran"); sess.Name != "Dragons" {
		t.Errorf("name = %q, want the saved one", sess.Name)
	}

	// Saved first, run after: the run fills the name in and keeps the state.
	if err := s.SaveSession(ctxOf(t), &store.Session{ID: "saved", Kind: run.KindAgent, ComponentID: "a",
		State: map[string]any{"n": 1}, CreatedAt: base.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, sessionRun("r2", "saved", base))
	sess = mustGetSession(t, s, "saved")
	checkSession(t, sess, &store.Session{ID: "saved", Kind: run.KindAgent, ComponentID: "a",
		State: map[string]any{"n": float64(1)}, CreatedAt: base.Add(time.Hour)})
	if sess.Name != "input of r2" {
		t.Errorf("name = %q, want the run's input", sess.Name)
	}
}

func testSessionNameBounded(t *testing.T, s store.Store) {
	r := sessionRun("long", "long", base)
	r.Input = strings.Repeat("é", store.MaxSessionName+50)
	mustCreate(t, s, r)
	if got := mustGetSession(t, s, "long").Name; got != strings.Repeat("é", store.MaxSessionName) {
		t.Errorf("name of %d characters, want the input's first %d", len([]rune(got)), store.MaxSessionName)
	}
}

func testDeleteSessionOfRuns(t *testing.T, s store.Store) {
	for _, id := range []string{"d1", "d2"} {
		mustCreate(t, s, sessionRun(id, "runs-only", base))
		if err := s.AppendEvents(ctxOf(t), []store.Event{event(id, 0, run.EventWorkflowStarted, "")}); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate(t, s, sessionRun("k1", "kept", base))
	if err := s.DeleteSession(ctxOf(t), "runs-only"); err != nil {
		t.Fatalf("DeleteSession of a session its runs made: %v", err)
	}
	if _, err := s.GetSession(ctxOf(t), "runs-only"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSession after delete = %v, want ErrNotFound", err)
	}
	for _, id := range []string{"d1", "d2"} {
		if _, err := s.GetRun(ctxOf(t), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRun(%s) after its session was deleted = %v, want ErrNotFound", id, err)
		}
		if evs, err := s.Events(ctxOf(t), id, 0, 0); err != nil || len(evs) != 0 {
			t.Errorf("Events(%s) after its session was deleted = %d events, %v", id, len(evs), err)
		}
	}
	if _, err := s.GetRun(ctxOf(t), "k1"); err != nil {
		t.Errorf("run of another session: %v", err)
	}
	if err := s.DeleteSession(ctxOf(t), "runs-only"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteSession = %v, want ErrNotFound", err)
	}
}

// sessionIDs returns the ids of sessions, in order.
func sessionIDs(ss []*store.Session) []string {
	out := make([]string, len(ss))
	for i, sess := range ss {
		out[i] = sess.ID
	}
	return out
}

// seedSessions stores five sessions through their runs, the first run of each
// created a minute apart in the order listed (e is the newest), and a second run
// of a an hour later (a is the most recently updated).
func seedSessions(t *testing.T, s store.Store) {
	t.Helper()
	for i, c := range []struct {
		id, user, component, input string
		kind                       run.Kind
	}{
		{"a", "ann", "flow", "Write about DRAGONS", run.KindWorkflow},
		{"b", "bob", "flow", "a poem", run.KindWorkflow},
		{"c", "ann", "helper", "dragons again", run.KindAgent},
		{"d", "", "helper", "hello", run.KindAgent},
		{"e", "ann", "flow", "Dragon", run.KindWorkflow},
	} {
		r := sessionRun("r-"+c.id, c.id, base.Add(time.Duration(i)*time.Minute))
		r.UserID, r.ComponentID, r.Kind, r.Input = c.user, c.component, c.kind, c.input
		mustCreate(t, s, r)
	}
	mustCreate(t, s, sessionRun("r-a2", "a", base.Add(time.Hour)))
}

func listSessions(t *testing.T, s store.Store, q store.SessionQuery) ([]string, int) {
	t.Helper()
	got, total, err := s.ListSessions(ctxOf(t), q)
	if err != nil {
		t.Fatalf("ListSessions(%+v): %v", q, err)
	}
	return sessionIDs(got), total
}

func testListSessionsFilters(t *testing.T, s store.Store) {
	if got, total := listSessions(t, s, store.SessionQuery{}); len(got) != 0 || total != 0 {
		t.Errorf("empty store: %v, total %d", got, total)
	}
	seedSessions(t, s)
	for _, c := range []struct {
		q    store.SessionQuery
		want []string
	}{
		{store.SessionQuery{}, []string{"a", "e", "d", "c", "b"}},
		{store.SessionQuery{UserID: "ann"}, []string{"a", "e", "c"}},
		{store.SessionQuery{Kind: run.KindAgent}, []string{"d", "c"}},
		{store.SessionQuery{ComponentID: "flow"}, []string{"a", "e", "b"}},
		{store.SessionQuery{Kind: run.KindAgent, ComponentID: "flow"}, nil},
		{store.SessionQuery{UserID: "ann", Kind: run.KindWorkflow, ComponentID: "flow"}, []string{"a", "e"}},
		{store.SessionQuery{Name: "dragon"}, []string{"a", "e", "c"}},
		{store.SessionQuery{Name: "DRAGONS", UserID: "ann", Kind: run.KindAgent}, []string{"c"}},
		{store.SessionQuery{Name: "%"}, nil},
		{store.SessionQuery{UserID: "nobody"}, nil},
	} {
		got, total := listSessions(t, s, c.q)
		if !reflect.DeepEqual(got, append([]string{}, c.want...)) || total != len(c.want) {
			t.Errorf("ListSessions(%+v) = %v, total %d; want %v", c.q, got, total, c.want)
		}
	}
	// The sessions come back whole.
	page, _, err := s.ListSessions(ctxOf(t), store.SessionQuery{ComponentID: "helper", Kind: run.KindAgent, UserID: "ann"})
	if err != nil || len(page) != 1 {
		t.Fatalf("ListSessions = %v, %v", sessionIDs(page), err)
	}
	checkSession(t, page[0], &store.Session{ID: "c", UserID: "ann", Kind: run.KindAgent, ComponentID: "helper",
		CreatedAt: base.Add(2 * time.Minute)})
	if page[0].Name != "dragons again" {
		t.Errorf("listed session's name = %q", page[0].Name)
	}
	checkTimes(t, page[0], base.Add(2*time.Minute), base.Add(2*time.Minute))
}

func testListSessionsOrder(t *testing.T, s store.Store) {
	seedSessions(t, s)
	// Two sessions whose every time ties: ordered by id.
	mustCreate(t, s, sessionRun("r-y", "y", base.Add(-time.Hour)))
	mustCreate(t, s, sessionRun("r-x", "x", base.Add(-time.Hour)))
	for _, c := range []struct {
		q    store.SessionQuery
		want []string
	}{
		{store.SessionQuery{}, []string{"a", "e", "d", "c", "b", "y", "x"}},
		{store.SessionQuery{Ascending: true}, []string{"x", "y", "b", "c", "d", "e", "a"}},
		{store.SessionQuery{OrderBy: store.ByCreated}, []string{"e", "d", "c", "b", "a", "y", "x"}},
		{store.SessionQuery{OrderBy: store.ByCreated, Ascending: true}, []string{"x", "y", "a", "b", "c", "d", "e"}},
	} {
		if got, _ := listSessions(t, s, c.q); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ListSessions(%+v) = %v, want %v", c.q, got, c.want)
		}
	}
}

func testListSessionsPaging(t *testing.T, s store.Store) {
	seedSessions(t, s)
	for _, c := range []struct {
		q    store.SessionQuery
		want []string
	}{
		{store.SessionQuery{Limit: 2}, []string{"a", "e"}},
		{store.SessionQuery{Limit: 2, Offset: 2}, []string{"d", "c"}},
		{store.SessionQuery{Limit: 2, Offset: 4}, []string{"b"}},
		{store.SessionQuery{Limit: 2, Offset: 5}, nil},
		{store.SessionQuery{Limit: 2, Offset: 50}, nil},
		{store.SessionQuery{Offset: 3}, []string{"c", "b"}},
	} {
		got, total := listSessions(t, s, c.q)
		if !reflect.DeepEqual(got, append([]string{}, c.want...)) || total != 5 {
			t.Errorf("ListSessions(%+v) = %v, total %d; want %v, total 5", c.q, got, total, c.want)
		}
	}
	got, total := listSessions(t, s, store.SessionQuery{UserID: "ann", Limit: 1, Offset: 7})
	if len(got) != 0 || total != 3 {
		t.Errorf("a page past the end of a filtered list = %v, total %d; want none, total 3", got, total)
	}
}

func testListSessionsDefaultLimit(t *testing.T, s store.Store) {
	for i := range 101 {
		id := fmt.Sprintf("s%03d", i)
		mustCreate(t, s, sessionRun("r"+id, id, base.Add(time.Duration(i)*time.Second)))
	}
	got, total := listSessions(t, s, store.SessionQuery{})
	if len(got) != 100 || total != 101 || got[0] != "s100" || got[99] != "s001" {
		t.Errorf("zero Limit: %d sessions (%s…%s), total %d; want 100 (s100…s001), total 101",
			len(got), got[0], got[len(got)-1], total)
	}
}

func testListSessionsClosed(t *testing.T, s store.Store) {
	seedSessions(t, s)
	ctx, cancel := context.WithCancel(ctxOf(t))
	cancel()
	if _, _, err := s.ListSessions(ctx, store.SessionQuery{}); !errors.Is(err, context.Canceled) {
		t.Errorf("ListSessions with a cancelled context = %v, want context.Canceled", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ListSessions(ctxOf(t), store.SessionQuery{}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("ListSessions after Close = %v, want ErrClosed", err)
	}
}
