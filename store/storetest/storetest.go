// Package storetest is the behavioural test suite every store.Store backend runs, so
// that store/sqlite and store/postgres behave alike.
//
// A backend's test calls Run with a function that opens a fresh, empty store for one
// subtest and closes it through t.Cleanup:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "kern.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// # What the suite holds a backend to, beyond the interface's doc comments
//
//   - Times are kept to the millisecond at least; the suite compares them with a
//     millisecond's tolerance. A zero LeaseUntil comes back zero.
//   - CreateRun keeps r.CreatedAt when it is set and uses the current time when it
//     is zero. CreateRun, UpdateRun and SaveSession set UpdatedAt to the current
//     time. SaveSession keeps a session's first CreatedAt when it updates it.
//   - UpdateRun saves Status, Output, Replica and LeaseUntil only; a run's identity
//     (session, user, parent, kind, component, input, CreatedAt) stays as created.
//   - A run with a session id creates its session (see sessions.go); DeleteSession
//     deletes the runs (and their events) that name it.
//   - Event.Data comes back as equivalent JSON: a backend may normalise whitespace
//     and key order (PostgreSQL's jsonb does).
//   - Session state goes through JSON: numbers come back as float64, nested objects
//     as map[string]any, arrays as []any. A nil or empty state comes back empty.
//   - Events of a run that has none, or from past its last index, are an empty
//     slice and no error.
//   - Interrupt takes RUNNING and PENDING runs whose LeaseUntil is before now (a
//     RUNNING run's zero LeaseUntil counts as lapsed: nobody holds the run), sets
//     Status and Output.Status to ERROR and Output.Error to the reason, keeps the
//     rest of the output (partial content, step results), and returns the runs as
//     now stored. A run with a live lease, a queued run (PENDING with a zero
//     LeaseUntil), or a run in any other status, is never touched.
//   - Claim takes the runs Interrupt would end, oldest first (by CreatedAt), at
//     most limit of them (none when limit is 0): it sets Status to RUNNING, Replica
//     and LeaseUntil, keeps Output as saved, and returns the runs as now stored.
//   - RenewLeases changes only the lease of RUNNING or PENDING runs that the given
//     replica executes; it returns the other ids (ids it does not know included),
//     without an error.
//   - UpdateRun refuses with ErrTakenOver, changing nothing, a terminal status
//     written for a replica while the stored run is RUNNING or PENDING, held by
//     another replica whose LeaseUntil is not before the time of the write.
//   - A value larger than store.MaxValueSize (a run's Input, its Output as JSON, an
//     event's Data, a session's State as JSON) is refused with ErrTooLarge before
//     anything of the call is written; AppendEvents writes none of its batch then.
//   - After Close every method returns an error matching store.ErrClosed; a second
//     Close does not panic and returns nil or ErrClosed.
//   - A method called with a cancelled context returns promptly an error matching
//     context.Canceled.
//   - ListRuns returns runs newest first by CreatedAt; a zero Limit means 100.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// Run runs the suite against the stores open returns: one fresh, empty store per
// subtest. Subtests run in parallel, except the one that stores oversized values,
// which runs alone first to bound memory.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	t.Run("TooLarge", func(t *testing.T) { testTooLarge(t, open(t)) })

	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"RunRoundTrip", testRunRoundTrip},
		{"RunDefaults", testRunDefaults},
		{"CreateRunExists", testCreateRunExists},
		{"UpdateRun", testUpdateRun},
		{"UpdateRunNotFound", testUpdateRunNotFound},
		{"GetRunNotFound", testGetRunNotFound},
		{"ListRunsFilters", testListRunsFilters},
		{"ListRunsPaging", testListRunsPaging},
		{"ListRunsDefaultLimit", testListRunsDefaultLimit},
		{"AppendEvents", testAppendEvents},
		{"AppendEventsIdempotent", testAppendEventsIdempotent},
		{"EventsFromLimit", testEventsFromLimit},
		{"SessionSaveGet", testSessionSaveGet},
		{"SessionState", testSessionState},
		{"SessionNotFound", testSessionNotFound},
		{"DeleteSessionCascades", testDeleteSessionCascades},
		{"RenewLeases", testRenewLeases},
		{"RenewLeasesLost", testRenewLeasesLost},
		{"UpdateRunTakenOver", testUpdateRunTakenOver},
		{"Interrupt", testInterrupt},
		{"Claim", testClaim},
		{"ClaimLimit", testClaimLimit},
		{"ClaimConcurrent", testClaimConcurrent},
		{"ConcurrentWriters", testConcurrentWriters},
		{"LargeValue", testLargeValue},
		{"Closed", testClosed},
		{"CancelledContext", testCancelledContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
	runSessions(t, open)
	t.Run("Canceller", func(t *testing.T) { runCanceller(t, open) })
	t.Run("Queue", func(t *testing.T) { runQueue(t, open) })
	t.Run("Fencer", func(t *testing.T) { runFencer(t, open) })
	t.Run("Pauser", func(t *testing.T) { runPauser(t, open) })
}

// base is a fixed instant with a sub-millisecond part, so that precision shows.
var base = time.Date(2025, 6, 1, 12, 0, 0, 123_456_789, time.UTC)

// ms is the precision the store promises.
const ms = time.Millisecond

func sameTime(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() == b.IsZero()
	}
	d := a.Sub(b)
	return d > -ms && d < ms
}

func ctxOf(t *testing.T) context.Context { return t.Context() }

// fullRun returns a run with every field set.
func fullRun(id string) *store.Run {
	return &store.Run{
		ID:          id,
		SessionID:   "sess-" + id,
		UserID:      "user-1",
		ParentRunID: "parent-" + id,
		Kind:        run.KindWorkflow,
		ComponentID: "article-writer",
		Status:      run.StatusCancelled,
		Input:       "Write a story about a dragon — ünïcödé ✓\nline two",
		Output: run.Output{
			RunID:         id,
			SessionID:     "sess-" + id,
			UserID:        "user-1",
			ParentRunID:   "parent-" + id,
			WorkflowID:    "article-writer",
			WorkflowName:  "Article Writer",
			Model:         "gpt-5.2",
			ModelProvider: "openai",
			Status:        run.StatusCancelled,
			Input:         "Write a story about a dragon — ünïcödé ✓\nline two",
			Content:       "Once upon a time, a dragon…",
			Error:         "boom",
			Reason:        "user asked",
			StepResults: []run.StepResult{
				{StepID: "s1", StepName: "research", Content: "facts", Status: run.StatusCompleted},
				{StepID: "s2", StepName: "writing", Content: "Once upon", Status: run.StatusCancelled,
					Steps: []run.StepResult{{StepName: "inner", Content: "x", Error: "e", Stop: true}}},
			},
			Metrics: run.Metrics{
				Duration:         2500 * time.Millisecond,
				TimeToFirstToken: 125 * time.Millisecond,
				InputTokens:      10,
				OutputTokens:     20,
				TotalTokens:      30,
			},
			CreatedAt: base.Unix(),
		},
		Replica:    "replica-a",
		LeaseUntil: base.Add(time.Minute),
		CreatedAt:  base,
	}
}

// simpleRun returns a small RUNNING run.
func simpleRun(id string) *store.Run {
	return &store.Run{
		ID:          id,
		SessionID:   "s",
		Kind:        run.KindAgent,
		ComponentID: "agent",
		Status:      run.StatusRunning,
		Input:       "hi",
		Output:      run.Output{RunID: id, Status: run.StatusRunning, Input: "hi"},
	}
}

func mustCreate(t *testing.T, s store.Store, r *store.Run) {
	t.Helper()
	if err := s.CreateRun(ctxOf(t), r); err != nil {
		t.Fatalf("CreateRun(%s): %v", r.ID, err)
	}
}

func mustGet(t *testing.T, s store.Store, id string) *store.Run {
	t.Helper()
	r, err := s.GetRun(ctxOf(t), id)
	if err != nil {
		t.Fatalf("GetRun(%s): %v", id, err)
	}
	return r
}

// diffRun reports how got differs from want, times compared to the millisecond.
func diffRun(got, want *store.Run) string {
	var d []string
	if !sameTime(got.CreatedAt, want.CreatedAt) {
		d = append(d, fmt.Sprintf("CreatedAt %v, want %v", got.CreatedAt, want.CreatedAt))
	}
	if !sameTime(got.LeaseUntil, want.LeaseUntil) {
		d = append(d, fmt.Sprintf("LeaseUntil %v, want %v", got.LeaseUntil, want.LeaseUntil))
	}
	g, w := *got, *want
	g.CreatedAt, w.CreatedAt = time.Time{}, time.Time{}
	g.LeaseUntil, w.LeaseUntil = time.Time{}, time.Time{}
	g.UpdatedAt, w.UpdatedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(g, w) {
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(w)
		d = append(d, fmt.Sprintf("run\n got %s\nwant %s", gj, wj))
	}
	return strings.Join(d, "; ")
}

func testRunRoundTrip(t *testing.T, s store.Store) {
	want := fullRun("run-1")
	before := time.Now()
	mustCreate(t, s, want)
	got := mustGet(t, s, "run-1")
	if d := diffRun(got, want); d != "" {
		t.Errorf("GetRun after CreateRun: %s", d)
	}
	if got.UpdatedAt.Before(before.Add(-ms)) || got.UpdatedAt.After(time.Now().Add(ms)) {
		t.Errorf("UpdatedAt = %v, want the time of CreateRun (%v)", got.UpdatedAt, before)
	}
}

func testRunDefaults(t *testing.T, s store.Store) {
	r := &store.Run{ID: "bare", Kind: run.KindAgent, ComponentID: "a", Status: run.StatusPending}
	before := time.Now()
	mustCreate(t, s, r)
	after := time.Now()
	got := mustGet(t, s, "bare")
	if got.CreatedAt.Before(before.Add(-ms)) || got.CreatedAt.After(after.Add(ms)) {
		t.Errorf("zero CreatedAt stored as %v, want the time of CreateRun (%v..%v)", got.CreatedAt, before, after)
	}
	if !got.LeaseUntil.IsZero() {
		t.Errorf("zero LeaseUntil came back as %v", got.LeaseUntil)
	}
	want := *r
	want.CreatedAt = got.CreatedAt
	if d := diffRun(got, &want); d != "" {
		t.Errorf("bare run: %s", d)
	}
}

func testCreateRunExists(t *testing.T, s store.Store) {
	mustCreate(t, s, simpleRun("dup"))
	other := simpleRun("dup")
	other.Input = "other"
	if err := s.CreateRun(ctxOf(t), other); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second CreateRun = %v, want ErrExists", err)
	}
	if got := mustGet(t, s, "dup"); got.Input != "hi" {
		t.Errorf("duplicate CreateRun changed the run: Input = %q", got.Input)
	}
}

func testUpdateRun(t *testing.T, s store.Store) {
	orig := fullRun("upd")
	orig.Status = run.StatusRunning
	mustCreate(t, s, orig)
	created := mustGet(t, s, "upd")
	time.Sleep(5 * ms)

	upd := fullRun("upd")
	upd.Status = run.StatusCompleted
	upd.Output.Status = run.StatusCompleted
	upd.Output.Content = "The end."
	upd.Output.Error = ""
	upd.Output.StepResults = append(upd.Output.StepResults, run.StepResult{StepName: "third", Content: "c"})
	upd.Output.Metrics.Duration = 5 * time.Second
	upd.Replica = "replica-b"
	upd.LeaseUntil = base.Add(time.Hour)
	// Identity fields are not UpdateRun's to change.
	upd.Input = "changed input"
	upd.SessionID = "other-session"
	upd.CreatedAt = base.Add(time.Hour)
	if err := s.UpdateRun(ctxOf(t), upd); err != nil {
		t.Fatalf("UpdateRun: %v", err)
	}
	got := mustGet(t, s, "upd")

	want := fullRun("upd")
	want.Status = run.StatusCompleted
	want.Output = upd.Output
	want.Replica = "replica-b"
	want.LeaseUntil = upd.LeaseUntil
	if d := diffRun(got, want); d != "" {
		t.Errorf("after UpdateRun: %s", d)
	}
	if !got.UpdatedAt.After(created.UpdatedAt) {
		t.Errorf("UpdatedAt did not move: %v after update, %v before", got.UpdatedAt, created.UpdatedAt)
	}
}

func testUpdateRunNotFound(t *testing.T, s store.Store) {
	if err := s.UpdateRun(ctxOf(t), simpleRun("nope")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateRun of unknown run = %v, want ErrNotFound", err)
	}
	if _, err := s.GetRun(ctxOf(t), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateRun of unknown run created it (GetRun = %v)", err)
	}
}

func testGetRunNotFound(t *testing.T, s store.Store) {
	for _, id := range []string{"missing", ""} {
		if r, err := s.GetRun(ctxOf(t), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRun(%q) = %v, %v; want ErrNotFound", id, r, err)
		}
	}
}

func ids(rs []*store.Run) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// seedRuns stores six runs, created one second apart in the order listed (r6 is the
// newest).
func seedRuns(t *testing.T, s store.Store) {
	t.Helper()
	seed := []struct {
		id, session string
		kind        run.Kind
		comp        string
		status      run.Status
	}{
		{"r1", "sA", run.KindAgent, "researcher", run.StatusCompleted},
		{"r2", "sA", run.KindWorkflow, "writer-flow", run.StatusRunning},
		{"r3", "sB", run.KindAgent, "researcher", run.StatusCancelled},
		{"r4", "sA", run.KindAgent, "writer", run.StatusCompleted},
		{"r5", "sB", run.KindWorkflow, "writer-flow", run.StatusCompleted},
		{"r6", "sA", run.KindAgent, "researcher", run.StatusError},
	}
	for i, sd := range seed {
		r := &store.Run{ID: sd.id, SessionID: sd.session, Kind: sd.kind, ComponentID: sd.comp,
			Status: sd.status, CreatedAt: base.Add(time.Duration(i) * time.Second)}
		mustCreate(t, s, r)
	}
}

func testListRunsFilters(t *testing.T, s store.Store) {
	seedRuns(t, s)
	tests := []struct {
		name string
		q    store.RunQuery
		want []string
	}{
		{"all", store.RunQuery{}, []string{"r6", "r5", "r4", "r3", "r2", "r1"}},
		{"session", store.RunQuery{SessionID: "sA"}, []string{"r6", "r4", "r2", "r1"}},
		{"kind", store.RunQuery{Kind: run.KindWorkflow}, []string{"r5", "r2"}},
		{"component", store.RunQuery{ComponentID: "researcher"}, []string{"r6", "r3", "r1"}},
		{"status", store.RunQuery{Status: run.StatusCompleted}, []string{"r5", "r4", "r1"}},
		{"session and component", store.RunQuery{SessionID: "sA", ComponentID: "researcher"}, []string{"r6", "r1"}},
		{"kind and component and status", store.RunQuery{Kind: run.KindAgent, ComponentID: "researcher", Status: run.StatusCancelled}, []string{"r3"}},
		{"no match", store.RunQuery{SessionID: "sZ"}, nil},
	}
	for _, tt := range tests {
		got, err := s.ListRuns(ctxOf(t), tt.q)
		if err != nil {
			t.Fatalf("%s: ListRuns: %v", tt.name, err)
		}
		if g := ids(got); !slices.Equal(g, tt.want) {
			t.Errorf("%s: ListRuns(%+v) = %v, want %v", tt.name, tt.q, g, tt.want)
		}
	}
	// A user's runs (the seed has none).
	for i, u := range []string{"u1", "u2", "u1"} {
		mustCreate(t, s, &store.Run{ID: fmt.Sprintf("user-%d", i), UserID: u, Kind: run.KindAgent, ComponentID: "other",
			Status: run.StatusCompleted, CreatedAt: time.Now().Add(time.Duration(i) * time.Second)})
	}
	if got, err := s.ListRuns(ctxOf(t), store.RunQuery{UserID: "u1"}); err != nil || !slices.Equal(ids(got), []string{"user-2", "user-0"}) {
		t.Errorf("ListRuns(user u1) = %v, %v; want [user-2 user-0]", ids(got), err)
	}
	got, err := s.ListRuns(ctxOf(t), store.RunQuery{ComponentID: "writer"})
	if err != nil || len(got) != 1 {
		t.Fatalf("ListRuns(writer) = %v, %v", got, err)
	}
	if got[0].SessionID != "sA" || got[0].Kind != run.KindAgent || !sameTime(got[0].CreatedAt, base.Add(3*time.Second)) {
		t.Errorf("listed run has wrong fields: %+v", got[0])
	}
}

func testListRunsPaging(t *testing.T, s store.Store) {
	seedRuns(t, s)
	tests := []struct {
		limit, offset int
		want          []string
	}{
		{2, 0, []string{"r6", "r5"}},
		{2, 2, []string{"r4", "r3"}},
		{2, 4, []string{"r2", "r1"}},
		{2, 6, nil},
		{4, 3, []string{"r3", "r2", "r1"}},
		{0, 5, []string{"r1"}},
	}
	for _, tt := range tests {
		got, err := s.ListRuns(ctxOf(t), store.RunQuery{Limit: tt.limit, Offset: tt.offset})
		if err != nil {
			t.Fatalf("ListRuns: %v", err)
		}
		if g := ids(got); !slices.Equal(g, tt.want) {
			t.Errorf("ListRuns(limit %d, offset %d) = %v, want %v", tt.limit, tt.offset, g, tt.want)
		}
	}
}

func testListRunsDefaultLimit(t *testing.T, s store.Store) {
	for i := range 105 {
		r := simpleRun(fmt.Sprintf("run-%03d", i))
		r.CreatedAt = base.Add(time.Duration(i) * time.Second)
		mustCreate(t, s, r)
	}
	got, err := s.ListRuns(ctxOf(t), store.RunQuery{})
	if err != nil {
		t.Fatalf("ListRuns: %v", err)
	}
	if len(got) != 100 {
		t.Fatalf("ListRuns with Limit 0 returned %d runs, want 100", len(got))
	}
	if got[0].ID != "run-104" || got[99].ID != "run-005" {
		t.Errorf("ListRuns = %s..%s, want run-104..run-005", got[0].ID, got[99].ID)
	}
	got, err = s.ListRuns(ctxOf(t), store.RunQuery{Limit: 200})
	if err != nil || len(got) != 105 {
		t.Fatalf("ListRuns with Limit 200 = %d runs, %v; want 105", len(got), err)
	}
}

func event(runID string, idx int, typ run.EventType, content string) store.Event {
	data, _ := json.Marshal(run.Event{Event: typ, RunID: runID, EventIndex: idx, Content: content, CreatedAt: base.Unix()})
	return store.Event{RunID: runID, Index: idx, Type: typ, Data: data, CreatedAt: base.Add(time.Duration(idx) * ms)}
}

// sameJSON reports whether a and b hold equal JSON values.
func sameJSON(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

func checkEvents(t *testing.T, got, want []store.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.RunID != w.RunID || g.Index != w.Index || g.Type != w.Type {
			t.Errorf("event %d = (%s, %d, %s), want (%s, %d, %s)", i, g.RunID, g.Index, g.Type, w.RunID, w.Index, w.Type)
		}
		if !sameJSON(g.Data, w.Data) {
			t.Errorf("event %d data = %s, want %s", i, g.Data, w.Data)
		}
		if !sameTime(g.CreatedAt, w.CreatedAt) {
			t.Errorf("event %d CreatedAt = %v, want %v", i, g.CreatedAt, w.CreatedAt)
		}
	}
}

func testAppendEvents(t *testing.T, s store.Store) {
	mustCreate(t, s, simpleRun("a"))
	mustCreate(t, s, simpleRun("b"))
	if err := s.AppendEvents(ctxOf(t), nil); err != nil {
		t.Fatalf("AppendEvents(nil) = %v", err)
	}
	var wantA, wantB, batch []store.Event
	for i := range 10 {
		ea := event("a", i, run.EventRunContent, fmt.Sprintf("chunk %d of a", i))
		eb := event("b", i, run.EventStepOutput, fmt.Sprintf("chunk %d of b", i))
		wantA, wantB = append(wantA, ea), append(wantB, eb)
	}
	// Interleave the runs, and put each run's events out of order.
	for i := 9; i >= 0; i-- {
		batch = append(batch, wantB[i], wantA[(i+3)%10])
	}
	if err := s.AppendEvents(ctxOf(t), batch); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	for _, c := range []struct {
		id   string
		want []store.Event
	}{{"a", wantA}, {"b", wantB}} {
		got, err := s.Events(ctxOf(t), c.id, 0, 0)
		if err != nil {
			t.Fatalf("Events(%s): %v", c.id, err)
		}
		checkEvents(t, got, c.want)
	}
	// A later batch continues the log.
	more := []store.Event{event("a", 10, run.EventRunCompleted, "")}
	if err := s.AppendEvents(ctxOf(t), more); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	got, err := s.Events(ctxOf(t), "a", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, got, append(wantA, more...))
}

func testAppendEventsIdempotent(t *testing.T, s store.Store) {
	mustCreate(t, s, simpleRun("a"))
	first := []store.Event{event("a", 0, run.EventRunStarted, ""), event("a", 1, run.EventRunContent, "one")}
	if err := s.AppendEvents(ctxOf(t), first); err != nil {
		t.Fatal(err)
	}
	// A retried batch: the stored events stay as they were, the new one is added;
	// a duplicate inside one batch is no error either.
	retry := []store.Event{
		event("a", 1, run.EventRunContent, "ONE, rewritten"),
		event("a", 2, run.EventRunContent, "two"),
		event("a", 2, run.EventRunContent, "two again"),
		event("a", 0, run.EventRunError, "rewritten"),
	}
	if err := s.AppendEvents(ctxOf(t), retry); err != nil {
		t.Fatalf("AppendEvents with stored indexes: %v", err)
	}
	got, err := s.Events(ctxOf(t), "a", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, got, append(first, retry[1]))
}

func testEventsFromLimit(t *testing.T, s store.Store) {
	mustCreate(t, s, simpleRun("a"))
	var all []store.Event
	for i := range 20 {
		all = append(all, event("a", i, run.EventRunContent, strings.Repeat("x", i)))
	}
	if err := s.AppendEvents(ctxOf(t), all); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		from, limit int
		want        []store.Event
	}{
		{0, 0, all},
		{5, 0, all[5:]},
		{5, 3, all[5:8]},
		{18, 10, all[18:]},
		{0, 1, all[:1]},
		{20, 0, nil},
		{100, 5, nil},
	}
	for _, tt := range tests {
		got, err := s.Events(ctxOf(t), "a", tt.from, tt.limit)
		if err != nil {
			t.Fatalf("Events(from %d, limit %d): %v", tt.from, tt.limit, err)
		}
		t.Run(fmt.Sprintf("from%d_limit%d", tt.from, tt.limit), func(t *testing.T) { checkEvents(t, got, tt.want) })
	}
	got, err := s.Events(ctxOf(t), "no-such-run", 0, 0)
	if err != nil || len(got) != 0 {
		t.Errorf("Events of an unknown run = %v, %v; want none and no error", got, err)
	}
}

func testSessionSaveGet(t *testing.T, s store.Store) {
	sess := &store.Session{ID: "s1", UserID: "u1", Kind: run.KindWorkflow, ComponentID: "flow",
		State: map[string]any{"topic": "dragons"}, CreatedAt: base}
	if err := s.SaveSession(ctxOf(t), sess); err != nil {
		t.Fatalf("SaveSession (create): %v", err)
	}
	got, err := s.GetSession(ctxOf(t), "s1")
	if err != nil {
		t.Fatalf("GetSession: %v", err)
	}
	checkSession(t, got, sess)
	firstUpdate := got.UpdatedAt
	time.Sleep(5 * ms)

	upd := &store.Session{ID: "s1", UserID: "u2", Kind: run.KindWorkflow, ComponentID: "flow",
		State: map[string]any{"topic": "dragons", "step": "writing"}}
	if err := s.SaveSession(ctxOf(t), upd); err != nil {
		t.Fatalf("SaveSession (update): %v", err)
	}
	got, err = s.GetSession(ctxOf(t), "s1")
	if err != nil {
		t.Fatalf("GetSession: %v", err)
	}
	want := *upd
	want.CreatedAt = base // kept from the first save
	checkSession(t, got, &want)
	if !got.UpdatedAt.After(firstUpdate) {
		t.Errorf("UpdatedAt did not move: %v, was %v", got.UpdatedAt, firstUpdate)
	}

	// A session saved with a zero CreatedAt gets the current time.
	before := time.Now()
	if err := s.SaveSession(ctxOf(t), &store.Session{ID: "s2", Kind: run.KindAgent, ComponentID: "a"}); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetSession(ctxOf(t), "s2")
	if err != nil {
		t.Fatal(err)
	}
	if got.CreatedAt.Before(before.Add(-ms)) || got.CreatedAt.After(time.Now().Add(ms)) {
		t.Errorf("zero CreatedAt stored as %v, want about %v", got.CreatedAt, before)
	}
	if len(got.State) != 0 {
		t.Errorf("nil state came back as %v", got.State)
	}
}

func checkSession(t *testing.T, got, want *store.Session) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || got.Kind != want.Kind || got.ComponentID != want.ComponentID {
		t.Errorf("session = %+v, want %+v", got, want)
	}
	if !reflect.DeepEqual(got.State, want.State) {
		t.Errorf("state = %#v, want %#v", got.State, want.State)
	}
	if !sameTime(got.CreatedAt, want.CreatedAt) {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, want.CreatedAt)
	}
}

func testSessionState(t *testing.T, s store.Store) {
	state := map[string]any{
		"int":    42,
		"float":  2.5,
		"string": "héllo \"quoted\" \n",
		"bool":   true,
		"null":   nil,
		"list":   []any{1, "two", false},
		"nested": map[string]any{"deep": map[string]any{"n": int64(7)}},
		"empty":  map[string]any{},
	}
	// What comes back: JSON's types.
	want := map[string]any{
		"int":    float64(42),
		"float":  2.5,
		"string": "héllo \"quoted\" \n",
		"bool":   true,
		"null":   nil,
		"list":   []any{float64(1), "two", false},
		"nested": map[string]any{"deep": map[string]any{"n": float64(7)}},
		"empty":  map[string]any{},
	}
	if err := s.SaveSession(ctxOf(t), &store.Session{ID: "st", Kind: run.KindAgent, ComponentID: "a", State: state}); err != nil {
		t.Fatalf("SaveSession: %v", err)
	}
	got, err := s.GetSession(ctxOf(t), "st")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.State, want) {
		t.Errorf("state = %#v\nwant %#v", got.State, want)
	}
	// A state that JSON cannot hold is an error, and nothing is written.
	bad := &store.Session{ID: "bad", Kind: run.KindAgent, State: map[string]any{"ch": make(chan int)}}
	if err := s.SaveSession(ctxOf(t), bad); err == nil {
		t.Errorf("SaveSession with a channel in its state succeeded")
	}
}

func testSessionNotFound(t *testing.T, s store.Store) {
	if _, err := s.GetSession(ctxOf(t), "none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSession(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.DeleteSession(ctxOf(t), "none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteSession(unknown) = %v, want ErrNotFound", err)
	}
}

func testDeleteSessionCascades(t *testing.T, s store.Store) {
	for _, id := range []string{"gone", "kept"} {
		if err := s.SaveSession(ctxOf(t), &store.Session{ID: id, Kind: run.KindAgent, ComponentID: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []struct{ id, session string }{{"g1", "gone"}, {"g2", "gone"}, {"k1", "kept"}} {
		sr := simpleRun(r.id)
		sr.SessionID = r.session
		mustCreate(t, s, sr)
		evs := []store.Event{event(r.id, 0, run.EventRunStarted, ""), event(r.id, 1, run.EventRunContent, "c")}
		if err := s.AppendEvents(ctxOf(t), evs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteSession(ctxOf(t), "gone"); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	if _, err := s.GetSession(ctxOf(t), "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSession after delete = %v, want ErrNotFound", err)
	}
	for _, id := range []string{"g1", "g2"} {
		if _, err := s.GetRun(ctxOf(t), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRun(%s) after its session was deleted = %v, want ErrNotFound", id, err)
		}
		if evs, err := s.Events(ctxOf(t), id, 0, 0); err != nil || len(evs) != 0 {
			t.Errorf("Events(%s) after its session was deleted = %d events, %v; want none", id, len(evs), err)
		}
	}
	if runs, err := s.ListRuns(ctxOf(t), store.RunQuery{SessionID: "gone"}); err != nil || len(runs) != 0 {
		t.Errorf("ListRuns of the deleted session = %v, %v", ids(runs), err)
	}
	if _, err := s.GetSession(ctxOf(t), "kept"); err != nil {
		t.Errorf("the other session: %v", err)
	}
	mustGet(t, s, "k1")
	if evs, err := s.Events(ctxOf(t), "k1", 0, 0); err != nil || len(evs) != 2 {
		t.Errorf("the other session's events: %d, %v; want 2", len(evs), err)
	}
	if err := s.DeleteSession(ctxOf(t), "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteSession = %v, want ErrNotFound", err)
	}
}

func testRenewLeases(t *testing.T, s store.Store) {
	old := base.Add(time.Minute)
	for _, r := range []struct{ id, replica string }{{"a1", "A"}, {"a2", "A"}, {"a3", "A"}, {"b1", "B"}} {
		sr := simpleRun(r.id)
		sr.Replica, sr.LeaseUntil = r.replica, old
		mustCreate(t, s, sr)
	}
	until := base.Add(time.Hour)
	lost, err := s.RenewLeases(ctxOf(t), "A", []string{"a1", "a2", "b1", "unknown"}, until)
	if err != nil {
		t.Fatalf("RenewLeases: %v", err)
	}
	slices.Sort(lost)
	if want := []string{"b1", "unknown"}; !slices.Equal(lost, want) {
		t.Errorf("RenewLeases lost %q, want %q", lost, want)
	}
	if lost, err := s.RenewLeases(ctxOf(t), "A", nil, until); err != nil || len(lost) > 0 {
		t.Fatalf("RenewLeases with no runs: lost %q, %v", lost, err)
	}
	want := map[string]time.Time{"a1": until, "a2": until, "a3": old, "b1": old}
	for id, lease := range want {
		got := mustGet(t, s, id)
		if !sameTime(got.LeaseUntil, lease) {
			t.Errorf("run %s (replica %s): lease %v, want %v", id, got.Replica, got.LeaseUntil, lease)
		}
	}
}

// testRenewLeasesLost: a replica that renews the lease of a run another replica
// claimed, or of a run that ended, learns it lost the run, and renews nothing.
func testRenewLeasesLost(t *testing.T, s store.Store) {
	now := time.Now()
	for _, r := range []struct {
		id     string
		status run.Status
		lease  time.Time
	}{
		{"claimed", run.StatusRunning, now.Add(-time.Second)},
		{"kept", run.StatusRunning, now.Add(time.Minute)},
		{"pending", run.StatusPending, now.Add(time.Minute)},
		{"ended", run.StatusCompleted, now.Add(time.Minute)},
	} {
		sr := simpleRun(r.id)
		sr.Status, sr.Output.Status, sr.Replica, sr.LeaseUntil = r.status, r.status, "A", r.lease
		mustCreate(t, s, sr)
	}
	claimedUntil := now.Add(time.Hour)
	claimed, err := s.Claim(ctxOf(t), "B", now, claimedUntil, 10)
	if err != nil || len(claimed) != 1 || claimed[0].ID != "claimed" {
		t.Fatalf("Claim = %d runs, %v; want run claimed", len(claimed), err)
	}
	until := now.Add(2 * time.Hour)
	lost, err := s.RenewLeases(ctxOf(t), "A", []string{"claimed", "kept", "pending", "ended"}, until)
	if err != nil {
		t.Fatalf("RenewLeases: %v", err)
	}
	slices.Sort(lost)
	if want := []string{"claimed", "ended"}; !slices.Equal(lost, want) {
		t.Errorf("RenewLeases lost %q, want %q", lost, want)
	}
	for id, want := range map[string]time.Time{"claimed": claimedUntil, "kept": until, "pending": until, "ended": now.Add(time.Minute)} {
		if got := mustGet(t, s, id); !sameTime(got.LeaseUntil, want) {
			t.Errorf("run %s (replica %s): lease %v, want %v", id, got.Replica, got.LeaseUntil, want)
		}
	}
	if got := mustGet(t, s, "claimed"); got.Replica != "B" {
		t.Errorf("claimed run's replica = %q after A's renewal, want B", got.Replica)
	}
}

// testUpdateRunTakenOver: the end of a run written for a replica is refused while
// another replica holds the run with a live lease; an end written for no replica,
// or after that lease lapsed, and any update that is not an end, are not.
func testUpdateRunTakenOver(t *testing.T, s store.Store) {
	now := time.Now()
	seed := func(id string, lease time.Time) {
		sr := simpleRun(id)
		sr.Replica, sr.LeaseUntil = "B", lease
		mustCreate(t, s, sr)
	}
	end := func(id, replica string) error {
		r := simpleRun(id)
		r.Status, r.Output.Status, r.Output.Content, r.Replica = run.StatusCompleted, run.StatusCompleted, "A's end", replica
		return s.UpdateRun(ctxOf(t), r)
	}
	seed("held", now.Add(time.Hour))
	if err := end("held", "A"); !errors.Is(err, store.ErrTakenOver) {
		t.Errorf("A's end of a run B holds = %v, want ErrTakenOver", err)
	}
	if got := mustGet(t, s, "held"); got.Status != run.StatusRunning || got.Replica != "B" || got.Output.Content != "" {
		t.Errorf("refused end changed the run: %s by %q, content %q", got.Status, got.Replica, got.Output.Content)
	}
	if err := end("nope", "A"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("A's end of a run never created = %v, want ErrNotFound", err)
	}
	// Not an end: saved whoever holds the run (a claim, a resume).
	upd := simpleRun("held")
	upd.Replica, upd.LeaseUntil = "A", now.Add(time.Hour)
	if err := s.UpdateRun(ctxOf(t), upd); err != nil {
		t.Errorf("RUNNING update of a run B holds, for A: %v", err)
	}
	for _, c := range []struct{ id, replica string }{{"own", "B"}, {"anyone", ""}, {"lapsed", "A"}} {
		lease := now.Add(time.Hour)
		if c.id == "lapsed" {
			lease = now.Add(-time.Second)
		}
		seed(c.id, lease)
		if err := end(c.id, c.replica); err != nil {
			t.Errorf("end of run %s for replica %q: %v", c.id, c.replica, err)
		}
		if got := mustGet(t, s, c.id); got.Status != run.StatusCompleted {
			t.Errorf("run %s after its end for replica %q: %s", c.id, c.replica, got.Status)
		}
	}
}

func testInterrupt(t *testing.T, s store.Store) {
	now := time.Now()
	lapsed, live := now.Add(-time.Second), now.Add(time.Minute)
	seed := []struct {
		id     string
		status run.Status
		lease  time.Time
		ended  bool
	}{
		{"running-lapsed", run.StatusRunning, lapsed, true},
		{"pending-lapsed", run.StatusPending, lapsed, true},
		{"running-nolease", run.StatusRunning, time.Time{}, true},
		{"running-live", run.StatusRunning, live, false},
		{"pending-live", run.StatusPending, live, false},
		{"pending-queued", run.StatusPending, time.Time{}, false},
		{"completed-lapsed", run.StatusCompleted, lapsed, false},
		{"cancelled-lapsed", run.StatusCancelled, lapsed, false},
		{"paused-lapsed", run.StatusPaused, lapsed, false},
		{"error-lapsed", run.StatusError, lapsed, false},
	}
	stored := map[string]*store.Run{}
	for _, sd := range seed {
		r := fullRun(sd.id)
		r.Status, r.Output.Status, r.Output.Error, r.Output.Reason = sd.status, sd.status, "", ""
		r.Replica, r.LeaseUntil = "dead-replica", sd.lease
		mustCreate(t, s, r)
		stored[sd.id] = r
	}
	const reason = "interrupted"
	got, err := s.Interrupt(ctxOf(t), now, reason)
	if err != nil {
		t.Fatalf("Interrupt: %v", err)
	}
	var wantIDs []string
	for _, sd := range seed {
		if sd.ended {
			wantIDs = append(wantIDs, sd.id)
		}
	}
	gotIDs := ids(got)
	slices.Sort(gotIDs)
	slices.Sort(wantIDs)
	if !slices.Equal(gotIDs, wantIDs) {
		t.Fatalf("Interrupt returned %v, want %v", gotIDs, wantIDs)
	}
	for _, r := range got {
		want := *stored[r.ID]
		want.Status, want.Output.Status, want.Output.Error = run.StatusError, run.StatusError, reason
		if d := diffRun(r, &want); d != "" {
			t.Errorf("returned run %s: %s", r.ID, d)
		}
	}
	for _, sd := range seed {
		want := *stored[sd.id]
		if sd.ended {
			want.Status, want.Output.Status, want.Output.Error = run.StatusError, run.StatusError, reason
		}
		if d := diffRun(mustGet(t, s, sd.id), &want); d != "" {
			t.Errorf("stored run %s after Interrupt: %s", sd.id, d)
		}
	}
	again, err := s.Interrupt(ctxOf(t), now, reason)
	if err != nil || len(again) != 0 {
		t.Errorf("second Interrupt = %v, %v; want nothing", ids(again), err)
	}
}

// leftBehind is the seed of the Claim tests: runs in every state a claim must tell
// apart, and whether a claim at now takes them.
func leftBehind(now time.Time) []struct {
	id      string
	status  run.Status
	lease   time.Time
	claimed bool
} {
	lapsed, live := now.Add(-time.Second), now.Add(time.Minute)
	return []struct {
		id      string
		status  run.Status
		lease   time.Time
		claimed bool
	}{
		{"running-lapsed", run.StatusRunning, lapsed, true},
		{"pending-lapsed", run.StatusPending, lapsed, true},
		{"running-nolease", run.StatusRunning, time.Time{}, true},
		{"running-live", run.StatusRunning, live, false},
		{"pending-live", run.StatusPending, live, false},
		{"pending-queued", run.StatusPending, time.Time{}, false},
		{"completed-lapsed", run.StatusCompleted, lapsed, false},
		{"cancelled-lapsed", run.StatusCancelled, lapsed, false},
		{"paused-lapsed", run.StatusPaused, lapsed, false},
		{"error-lapsed", run.StatusError, lapsed, false},
	}
}

func testClaim(t *testing.T, s store.Store) {
	now := time.Now()
	seed := leftBehind(now)
	stored := map[string]*store.Run{}
	var wantIDs []string
	for i, sd := range seed {
		r := fullRun(sd.id)
		r.Status, r.Output.Status, r.Output.Error, r.Output.Reason = sd.status, sd.status, "", ""
		r.Replica, r.LeaseUntil, r.CreatedAt = "dead-replica", sd.lease, base.Add(time.Duration(i)*time.Second)
		mustCreate(t, s, r)
		stored[sd.id] = r
		if sd.claimed {
			wantIDs = append(wantIDs, sd.id)
		}
	}
	until := now.Add(time.Hour)
	got, err := s.Claim(ctxOf(t), "B", now, until, 100)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if gotIDs := ids(got); !slices.Equal(gotIDs, wantIDs) {
		t.Fatalf("Claim returned %v, want %v (oldest first)", gotIDs, wantIDs)
	}
	claimed := func(id string) *store.Run {
		want := *stored[id]
		want.Status, want.Replica, want.LeaseUntil = run.StatusRunning, "B", until
		return &want
	}
	for _, r := range got {
		want := claimed(r.ID)
		want.ClaimedFrom = "dead-replica"
		if d := diffRun(r, want); d != "" {
			t.Errorf("returned run %s: %s", r.ID, d)
		}
	}
	for _, sd := range seed {
		want := stored[sd.id]
		if sd.claimed {
			want = claimed(sd.id)
		}
		if d := diffRun(mustGet(t, s, sd.id), want); d != "" {
			t.Errorf("stored run %s after Claim: %s", sd.id, d)
		}
	}

	// The claimed runs' leases are live now: neither a claim nor Interrupt takes them.
	if again, err := s.Claim(ctxOf(t), "C", now.Add(30*time.Second), until, 100); err != nil || len(again) != 0 {
		t.Errorf("Claim of live leases = %v, %v; want nothing", ids(again), err)
	}
	if ended, err := s.Interrupt(ctxOf(t), now.Add(30*time.Second), "interrupted"); err != nil || len(ended) != 0 {
		t.Errorf("Interrupt of live leases = %v, %v; want nothing", ids(ended), err)
	}
	// Once they lapse again, another replica takes them; the queued run stays queued.
	again, err := s.Claim(ctxOf(t), "C", until.Add(time.Second), until.Add(time.Hour), 100)
	if err != nil {
		t.Fatalf("second Claim: %v", err)
	}
	var lapsedAgain []string
	for _, sd := range seed {
		if sd.claimed || sd.id == "running-live" || sd.id == "pending-live" {
			lapsedAgain = append(lapsedAgain, sd.id)
		}
	}
	slices.SortFunc(lapsedAgain, func(a, b string) int { return stored[a].CreatedAt.Compare(stored[b].CreatedAt) })
	if gotIDs := ids(again); !slices.Equal(gotIDs, lapsedAgain) {
		t.Errorf("Claim after the leases lapsed = %v, want %v", gotIDs, lapsedAgain)
	}
	for _, r := range again {
		want := "B" // the first claim's
		if r.ID == "running-live" || r.ID == "pending-live" {
			want = "dead-replica"
		}
		if r.ClaimedFrom != want {
			t.Errorf("second Claim took run %s from %q, want %q", r.ID, r.ClaimedFrom, want)
		}
	}
	if q := mustGet(t, s, "pending-queued"); q.Status != run.StatusPending || !q.LeaseUntil.IsZero() || q.Replica != "dead-replica" {
		t.Errorf("queued run after the claims: %s, lease %v, replica %q", q.Status, q.LeaseUntil, q.Replica)
	}
}

func testClaimLimit(t *testing.T, s store.Store) {
	now := time.Now()
	var all []string
	for i := range 5 {
		r := simpleRun(fmt.Sprintf("r%d", i))
		r.Replica, r.LeaseUntil, r.CreatedAt = "dead", now.Add(-time.Minute), base.Add(time.Duration(i)*time.Second)
		mustCreate(t, s, r)
		all = append(all, r.ID)
	}
	if got, err := s.Claim(ctxOf(t), "B", now, now.Add(time.Hour), 0); err != nil || len(got) != 0 {
		t.Errorf("Claim with limit 0 = %v, %v; want nothing", ids(got), err)
	}
	var claimed []string
	for _, want := range []int{2, 2, 1, 0} {
		got, err := s.Claim(ctxOf(t), "B", now, now.Add(time.Hour), 2)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		if len(got) != want {
			t.Fatalf("Claim with limit 2 took %v, want %d runs", ids(got), want)
		}
		claimed = append(claimed, ids(got)...)
	}
	if !slices.Equal(claimed, all) {
		t.Errorf("claims took %v, want %v, oldest first", claimed, all)
	}
}

// testClaimConcurrent: claimers racing over many runs left behind take each exactly
// once, and all of them.
func testClaimConcurrent(t *testing.T, s store.Store) {
	const runs, claimers, limit = 60, 6, 4
	now := time.Now()
	for i := range runs {
		r := simpleRun(fmt.Sprintf("r%02d", i))
		r.Replica, r.LeaseUntil = "dead", now.Add(-time.Minute)
		mustCreate(t, s, r)
	}
	var (
		mu    sync.Mutex
		taken = map[string][]string{} // run → the claimers that took it
	)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for c := range claimers {
		replica := fmt.Sprintf("c%d", c)
		wg.Go(func() {
			<-start
			for {
				got, err := s.Claim(ctxOf(t), replica, now, now.Add(time.Hour), limit)
				if err != nil {
					t.Errorf("Claim by %s: %v", replica, err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, r := range got {
					taken[r.ID] = append(taken[r.ID], replica)
					if r.Replica != replica {
						t.Errorf("run %s claimed by %s names replica %q", r.ID, replica, r.Replica)
					}
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if len(taken) != runs {
		t.Errorf("%d runs claimed, want %d", len(taken), runs)
	}
	for id, by := range taken {
		if len(by) != 1 {
			t.Errorf("run %s claimed by %v", id, by)
			continue
		}
		if got := mustGet(t, s, id); got.Replica != by[0] || got.Status != run.StatusRunning {
			t.Errorf("run %s stored as %s by %q, claimed by %s", id, got.Status, got.Replica, by[0])
		}
	}
}

func testConcurrentWriters(t *testing.T, s store.Store) {
	const writers, runsEach, eventsEach = 8, 50, 6
	ctx := ctxOf(t)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range runsEach {
				if err := lifecycle(ctx, s, w, i, eventsEach); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := range writers {
		runs, err := s.ListRuns(ctx, store.RunQuery{SessionID: fmt.Sprintf("w%d", w), Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != runsEach {
			t.Errorf("writer %d: %d runs stored, want %d", w, len(runs), runsEach)
		}
		for _, r := range runs {
			if r.Status != run.StatusCompleted || r.Output.Content != "done "+r.ID {
				t.Errorf("run %s: status %s, content %q", r.ID, r.Status, r.Output.Content)
			}
			evs, err := s.Events(ctx, r.ID, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != eventsEach {
				t.Errorf("run %s: %d events, want %d", r.ID, len(evs), eventsEach)
			}
		}
	}
}

// lifecycle creates run i of writer w, appends its events in two batches, and
// completes it.
func lifecycle(ctx context.Context, s store.Store, w, i, events int) error {
	id := fmt.Sprintf("w%d-r%d", w, i)
	r := simpleRun(id)
	r.SessionID = fmt.Sprintf("w%d", w)
	if err := s.CreateRun(ctx, r); err != nil {
		return fmt.Errorf("CreateRun %s: %w", id, err)
	}
	var evs []store.Event
	for j := range events {
		evs = append(evs, event(id, j, run.EventRunContent, "chunk"))
	}
	half := events / 2
	for _, b := range [][]store.Event{evs[:half], evs[half:]} {
		if err := s.AppendEvents(ctx, b); err != nil {
			return fmt.Errorf("AppendEvents %s: %w", id, err)
		}
	}
	r.Status, r.Output.Status, r.Output.Content = run.StatusCompleted, run.StatusCompleted, "done "+id
	if err := s.UpdateRun(ctx, r); err != nil {
		return fmt.Errorf("UpdateRun %s: %w", id, err)
	}
	return nil
}

func testLargeValue(t *testing.T, s store.Store) {
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB, stored whole
	r := simpleRun("large")
	r.Input, r.Output.Content = big, big
	mustCreate(t, s, r)
	got := mustGet(t, s, "large")
	if got.Input != big || got.Output.Content != big {
		t.Errorf("1 MiB input/content came back with %d/%d bytes", len(got.Input), len(got.Output.Content))
	}
	data, _ := json.Marshal(map[string]string{"content": big})
	if err := s.AppendEvents(ctxOf(t), []store.Event{{RunID: "large", Index: 0, Type: run.EventRunContent, Data: data, CreatedAt: base}}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Events(ctxOf(t), "large", 0, 0)
	if err != nil || len(evs) != 1 || !sameJSON(evs[0].Data, data) {
		t.Errorf("1 MiB event did not come back whole (err %v)", err)
	}
}

// oversized is a string one byte longer than store.MaxValueSize, built once.
var oversized = sync.OnceValue(func() string { return strings.Repeat("x", store.MaxValueSize+1) })

func testTooLarge(t *testing.T, s store.Store) {
	ctx := ctxOf(t)
	big := oversized()

	r := simpleRun("big-input")
	r.Input = big
	if err := s.CreateRun(ctx, r); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("CreateRun with oversized input = %v, want ErrTooLarge", err)
	}
	if _, err := s.GetRun(ctx, "big-input"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("oversized run was written (GetRun = %v)", err)
	}

	r = simpleRun("big-output")
	r.Output.Content = big
	if err := s.CreateRun(ctx, r); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("CreateRun with oversized content = %v, want ErrTooLarge", err)
	}

	mustCreate(t, s, simpleRun("small"))
	upd := simpleRun("small")
	upd.Status, upd.Output.Content = run.StatusCompleted, big
	if err := s.UpdateRun(ctx, upd); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("UpdateRun with oversized content = %v, want ErrTooLarge", err)
	}
	if got := mustGet(t, s, "small"); got.Status != run.StatusRunning || got.Output.Content != "" {
		t.Errorf("refused UpdateRun changed the run: status %s, %d bytes of content", got.Status, len(got.Output.Content))
	}

	data := make([]byte, 0, len(big)+2)
	data = append(append(append(data, '"'), big...), '"')
	batch := []store.Event{
		event("small", 0, run.EventRunStarted, ""),
		{RunID: "small", Index: 1, Type: run.EventRunContent, Data: data, CreatedAt: base},
		event("small", 2, run.EventRunContent, "after"),
	}
	if err := s.AppendEvents(ctx, batch); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("AppendEvents with an oversized event = %v, want ErrTooLarge", err)
	}
	if evs, err := s.Events(ctx, "small", 0, 0); err != nil || len(evs) != 0 {
		t.Errorf("refused AppendEvents wrote %d events (err %v), want none", len(evs), err)
	}

	sess := &store.Session{ID: "big", Kind: run.KindAgent, ComponentID: "a", State: map[string]any{"big": big}}
	if err := s.SaveSession(ctx, sess); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("SaveSession with oversized state = %v, want ErrTooLarge", err)
	}
	if _, err := s.GetSession(ctx, "big"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("oversized session was written (GetSession = %v)", err)
	}
}

// calls invokes every method of the Store once, with valid arguments.
func calls(s store.Store) map[string]func(ctx context.Context) error {
	sess := &store.Session{ID: "s", Kind: run.KindAgent, ComponentID: "a"}
	m := map[string]func(ctx context.Context) error{
		"CreateRun": func(ctx context.Context) error { return s.CreateRun(ctx, simpleRun("new")) },
		"UpdateRun": func(ctx context.Context) error { return s.UpdateRun(ctx, simpleRun("existing")) },
		"GetRun":    func(ctx context.Context) error { _, err := s.GetRun(ctx, "existing"); return err },
		"ListRuns":  func(ctx context.Context) error { _, err := s.ListRuns(ctx, store.RunQuery{}); return err },
		"AppendEvents": func(ctx context.Context) error {
			return s.AppendEvents(ctx, []store.Event{event("existing", 5, run.EventRunContent, "x")})
		},
		"Events":        func(ctx context.Context) error { _, err := s.Events(ctx, "existing", 0, 0); return err },
		"GetSession":    func(ctx context.Context) error { _, err := s.GetSession(ctx, "s"); return err },
		"SaveSession":   func(ctx context.Context) error { return s.SaveSession(ctx, sess) },
		"DeleteSession": func(ctx context.Context) error { return s.DeleteSession(ctx, "s") },
		"ListSessions": func(ctx context.Context) error {
			_, _, err := s.ListSessions(ctx, store.SessionQuery{})
			return err
		},
		"RenewLeases": func(ctx context.Context) error {
			_, err := s.RenewLeases(ctx, "A", []string{"existing"}, time.Now().Add(time.Minute))
			return err
		},
		"Interrupt": func(ctx context.Context) error { _, err := s.Interrupt(ctx, time.Now(), "interrupted"); return err },
		"Claim": func(ctx context.Context) error {
			_, err := s.Claim(ctx, "B", time.Now(), time.Now().Add(time.Minute), 10)
			return err
		},
	}
	if f, ok := s.(store.Fencer); ok {
		m["AppendEventsAs"] = func(ctx context.Context) error {
			_, err := f.AppendEventsAs(ctx, "A", []store.Event{event("existing", 5, run.EventRunContent, "x")})
			return err
		}
	}
	return m
}

// seedExisting stores the run and session that calls refers to.
func seedExisting(t *testing.T, s store.Store) {
	t.Helper()
	r := simpleRun("existing")
	r.Replica = "A"
	mustCreate(t, s, r)
	if err := s.AppendEvents(ctxOf(t), []store.Event{event("existing", 0, run.EventRunStarted, "")}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveSession(ctxOf(t), &store.Session{ID: "s", Kind: run.KindAgent, ComponentID: "a"}); err != nil {
		t.Fatal(err)
	}
}

func testClosed(t *testing.T, s store.Store) {
	seedExisting(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for name, call := range calls(s) {
		if err := call(ctxOf(t)); !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
		t.Errorf("second Close = %v, want nil or ErrClosed", err)
	}
}

func testCancelledContext(t *testing.T, s store.Store) {
	seedExisting(t, s)
	ctx, cancel := context.WithCancel(ctxOf(t))
	cancel()
	for name, call := range calls(s) {
		done := make(chan error, 1)
		go func() { done <- call(ctx) }()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a cancelled context = %v, want context.Canceled", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s with a cancelled context hangs", name)
		}
	}
	// The store still works afterwards.
	mustGet(t, s, "existing")
}
