package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// hang bounds every wait on a listener: far longer than a delivery takes, it only
// turns a lost notice into a failure instead of a hung test.
const hang = 30 * time.Second

// fastPoll is the poll interval of the tests' listeners.
const fastPoll = 2 * time.Millisecond

// note is one call of a store.Notifications function.
type note struct {
	kind   string // cancel, events, ended or reconnected
	id     string
	detail string // the reason, the last index or the status
}

// recorder returns Notifications that send what they are called with to the
// channel, and fail the test if two calls overlap.
func recorder(t *testing.T) (store.Notifications, chan note) {
	got := make(chan note, 10_000)
	var busy atomic.Int32
	call := func(n note) {
		if busy.Add(1) > 1 {
			t.Errorf("notification functions called at once (%+v)", n)
		}
		got <- n
		busy.Add(-1)
	}
	return store.Notifications{
		Cancel:      func(id, reason string) { call(note{"cancel", id, reason}) },
		Events:      func(id string, last int) { call(note{"events", id, strconv.Itoa(last)}) },
		Ended:       func(id string, st run.Status) { call(note{"ended", id, string(st)}) },
		Reconnected: func() { call(note{kind: "reconnected"}) },
	}, got
}

// listenAll runs s.Listen until the test ends, and returns what it delivers.
func listenAll(t *testing.T, s *Store) <-chan note {
	t.Helper()
	n, got := recorder(t)
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
			t.Fatalf("no %s of %q within %v; heard %+v", kind, id, hang, before)
		}
	}
}

// warm waits until the listener listens.
func warm(t *testing.T, s *Store, got <-chan note) []note {
	t.Helper()
	cancelRun(t, s, "warm", "")
	_, before := until(t, got, "cancel", "warm")
	return before
}

func cancelRun(t *testing.T, s *Store, id, reason string) {
	t.Helper()
	if err := s.CancelRun(t.Context(), id, reason); err != nil {
		t.Fatalf("CancelRun(%s): %v", id, err)
	}
}

func openPath(t *testing.T, path string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func appendOne(t *testing.T, s *Store, id string, idx int) {
	t.Helper()
	ev := store.Event{RunID: id, Index: idx, Type: run.EventRunContent, Data: []byte(`{"event":"RunContent"}`), CreatedAt: time.Now()}
	if err := s.AppendEvents(t.Context(), []store.Event{ev}); err != nil {
		t.Fatal(err)
	}
}

// TestCancelAcrossStores: two stores on one file behave as two processes: what
// one stores (a cancel, events, an end) is heard by the other's listener, and a
// run it follows can be read back.
func TestCancelAcrossStores(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kern.db")
	executor := openPath(t, path, WithPollInterval(fastPoll))
	other := openPath(t, path)
	got := listenAll(t, executor)
	warm(t, other, got)

	r := &store.Run{ID: "run-1", Kind: run.KindWorkflow, ComponentID: "wf", Status: run.StatusRunning, Input: "go"}
	if err := executor.CreateRun(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	cancelRun(t, other, "run-1", "requested")
	if n, _ := until(t, got, "cancel", "run-1"); n.detail != "requested" {
		t.Errorf("reason = %q, want requested", n.detail)
	}
	if reason, ok, err := executor.PendingCancel(t.Context(), "run-1"); err != nil || !ok || reason != "requested" {
		t.Errorf("PendingCancel through the executor = %q, %v, %v", reason, ok, err)
	}

	// The other way: the executor's writes are heard by a listener of the other.
	follower := listenAll(t, other)
	warm(t, executor, follower)
	appendOne(t, executor, "run-1", 0)
	appendOne(t, executor, "run-1", 1)
	r.Status, r.Output = run.StatusCancelled, run.Output{Status: run.StatusCancelled, Reason: "requested"}
	if err := executor.UpdateRun(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	n, before := until(t, follower, "ended", "run-1")
	if n.detail != string(run.StatusCancelled) {
		t.Errorf("ended with %s, want CANCELLED", n.detail)
	}
	if !slices.Contains(before, note{"events", "run-1", "1"}) {
		t.Errorf("before the end: %+v, want the events up to 1", before)
	}
	if evs, err := other.Events(t.Context(), "run-1", 0, 0); err != nil || len(evs) != 2 {
		t.Errorf("the follower reads %d events, %v; want 2", len(evs), err)
	}
	if _, ok, err := other.PendingCancel(t.Context(), "run-1"); err != nil || ok {
		t.Errorf("PendingCancel of the ended run = %v, %v; want none", ok, err)
	}
}

// TestCancelAcrossProcesses: a cancel stored by another process on the file is
// heard by this one's listener.
func TestCancelAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kern.db")
	s := openPath(t, path, WithPollInterval(fastPoll))
	if err := s.CreateRun(t.Context(), &store.Run{ID: "run-1", Status: run.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	got := listenAll(t, s)
	warm(t, s, got)

	cmd := childCmd(t, "cancel", path)
	cmd.Env = append(cmd.Env, childRunEnv+"=run-1")
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("child: %v: %s", err, out)
	}
	if n, _ := until(t, got, "cancel", "run-1"); n.detail != childReason {
		t.Errorf("reason = %q, want %q", n.detail, childReason)
	}
}

// TestIntentEnds: an intent is deleted once its run ends, whichever way it ends;
// a cancel of a run that ended keeps none.
func TestIntentEnds(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	ctx := t.Context()
	for _, id := range []string{"completed", "interrupted"} {
		if err := s.CreateRun(ctx, &store.Run{ID: id, Status: run.StatusRunning, Replica: "r",
			LeaseUntil: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		cancelRun(t, s, id, "requested")
	}
	if err := s.UpdateRun(ctx, &store.Run{ID: "completed", Status: run.StatusCompleted, Replica: "r"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Interrupt(ctx, time.Now().Add(2*time.Hour), store.ReasonInterrupted); err != nil {
		t.Fatal(err)
	}
	cancelRun(t, s, "completed", "again")
	for _, id := range []string{"completed", "interrupted"} {
		if reason, ok, err := s.PendingCancel(ctx, id); err != nil || ok {
			t.Errorf("PendingCancel(%s) = %q, %v, %v; want none", id, reason, ok, err)
		}
	}
	if n := count(t, s, `SELECT count(*) FROM cancel_intents`); n != 0 {
		t.Errorf("%d intents kept, want none", n)
	}
}

func count(t *testing.T, s *Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIntentTTL: an intent older than store.IntentTTL is neither pending nor
// delivered, and the next cancel deletes it; a cancel of its run after it is a
// new intent.
func TestIntentTTL(t *testing.T) {
	t.Parallel()
	s := openTemp(t, WithPollInterval(fastPoll))
	old := time.Now().Add(-store.IntentTTL - time.Minute).UnixMilli()
	for _, id := range []string{"old", "older"} {
		if _, err := s.w.ExecContext(t.Context(), `INSERT INTO cancel_intents (run_id, reason, created_at) VALUES (?, 'stale', ?)`,
			id, old); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, err := s.PendingCancel(t.Context(), "old"); err != nil || ok {
		t.Errorf("PendingCancel of an intent past its TTL = %v, %v; want none", ok, err)
	}
	got := listenAll(t, s)
	before := warm(t, s, got)
	if len(before) > 0 {
		t.Errorf("delivered %+v, intents past their TTL", before)
	}
	if n := count(t, s, `SELECT count(*) FROM cancel_intents WHERE created_at = ?`, old); n != 0 {
		t.Errorf("%d intents past their TTL left after a cancel, want none", n)
	}
	cancelRun(t, s, "old", "fresh")
	if reason, ok, err := s.PendingCancel(t.Context(), "old"); err != nil || !ok || reason != "fresh" {
		t.Errorf("PendingCancel after a new cancel = %q, %v, %v; want fresh", reason, ok, err)
	}
}

// TestListenMissed: a listener that finds notices it had not read pruned
// re-reads the intents, calls Reconnected, then delivers what it read.
func TestListenMissed(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	n, got := recorder(t)
	l, err := s.newListener(&n)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	if err := l.startOnce(); err != nil {
		t.Fatal(err)
	}
	cancelRun(t, s, "lost", "requested")
	appendOne(t, s, "kept", 3)
	// The cancel's notice is pruned before the listener reads it.
	if _, err := s.w.ExecContext(t.Context(), `DELETE FROM notices WHERE seq = ?`, l.cursor+1); err != nil {
		t.Fatal(err)
	}
	if err := l.poll(); err != nil {
		t.Fatal(err)
	}
	close(got)
	var heard []note
	for n := range got {
		heard = append(heard, n)
	}
	want := []note{{"cancel", "lost", "requested"}, {kind: "reconnected"}, {"events", "kept", "3"}}
	if !slices.Equal(heard, want) {
		t.Errorf("heard %+v, want %+v", heard, want)
	}
}

// TestListenReread: an intent stored without a notice (as if it were lost) is
// delivered by the periodic re-read.
func TestListenReread(t *testing.T) {
	t.Parallel()
	s := openTemp(t, WithPollInterval(fastPoll), WithRereadInterval(10*time.Millisecond))
	got := listenAll(t, s)
	warm(t, s, got)
	if _, err := s.w.ExecContext(t.Context(), `INSERT INTO cancel_intents (run_id, reason, created_at) VALUES ('quiet', 'requested', ?)`,
		time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	n, before := until(t, got, "cancel", "quiet")
	if n.detail != "requested" {
		t.Errorf("reason = %q", n.detail)
	}
	if slices.Contains(before, note{kind: "reconnected"}) {
		t.Error("Reconnected called, want the re-read alone")
	}
}

// TestListenClosed: a listener returns ErrClosed once its store is closed.
func TestListenClosed(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	done := make(chan error, 1)
	n, got := recorder(t)
	go func() { done <- s.Listen(context.Background(), n) }()
	warm(t, s, got)
	s.Close()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("Listen = %v, want ErrClosed", err)
		}
	case <-time.After(hang):
		t.Fatal("Listen did not return once the store was closed")
	}
}

// TestNoticesPruned: notices older than noticeTTL are deleted by a later write;
// seqs are never reused.
func TestNoticesPruned(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	if _, err := s.w.ExecContext(t.Context(), `INSERT INTO notices (body, created_at) VALUES (?, ?)`,
		appendNotice(nil, noticeCancel, "old", ""), time.Now().Add(-2*noticeTTL).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	first := count(t, s, `SELECT max(seq) FROM notices`)
	cancelRun(t, s, "new", "")
	if n := count(t, s, `SELECT count(*) FROM notices WHERE seq <= ?`, first); n != 0 {
		t.Errorf("%d old notices left, want them pruned", n)
	}
	if n := count(t, s, `SELECT min(seq) FROM notices`); n <= first {
		t.Errorf("new notice's seq %d, want after %d", n, first)
	}
}

// TestMigrateFromVersion2: a file written by a binary that knew schema version 2
// is upgraded in place, and keeps its runs.
func TestMigrateFromVersion2(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "v2.db")
	db, err := sql.Open("sqlite", driverDSN(path, nil, false))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:2] {
		if _, err := db.ExecContext(t.Context(), m.sql); err != nil {
			t.Fatal(err)
		}
	}
	for _, stmt := range []string{
		`CREATE TABLE kern_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
		`INSERT INTO kern_schema VALUES (1, '0001_init.sql', 0), (2, '0002_event_pages.sql', 0)`,
		`INSERT INTO runs (run_id, status, input, output, created_at, updated_at) VALUES ('old', 'RUNNING', '', '{}', 1, 1)`,
	} {
		if _, err := db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := openPath(t, path)
	if r, err := s.GetRun(t.Context(), "old"); err != nil || r.Status != run.StatusRunning {
		t.Fatalf("GetRun after the upgrade = %+v, %v", r, err)
	}
	cancelRun(t, s, "old", "requested")
	if reason, ok, err := s.PendingCancel(t.Context(), "old"); err != nil || !ok || reason != "requested" {
		t.Errorf("PendingCancel = %q, %v, %v", reason, ok, err)
	}
	s.Close()
	checkSchema(t, path)
}

func TestNotices(t *testing.T) {
	t.Parallel()
	in := []notice{
		{noticeCancel, "run-1", "requested"}, {noticeCancel, "", ""}, {noticeCancel, "a:b", "1:2"},
		{noticeEnded, "12", string(run.StatusCancelled)}, {noticeEvents, "é\x00\n", "42"},
	}
	var body []byte
	for _, n := range in {
		if n.kind == noticeEvents {
			last, _ := strconv.Atoi(n.value)
			body = appendEventsNotice(body, n.runID, last)
			continue
		}
		body = appendNotice(body, n.kind, n.runID, n.value)
	}
	var out []notice
	if err := decodeNotices(body, func(n notice) { out = append(out, n) }); err != nil || !slices.Equal(out, in) {
		t.Errorf("decodeNotices = %+v, %v; want %+v", out, err, in)
	}
	for _, bad := range []string{
		"c", "c5:abc", "c3:abc", "c3:abc4:ab", "z1:a1:b", "c-1:a1:b", "c:a1:b", "c99999999999999999999999:a",
		"c1:a1:bx", "c1:a1:b" + "c1:a",
	} {
		out = nil
		if err := decodeNotices([]byte(bad), func(n notice) { out = append(out, n) }); !errors.Is(err, errBadNotice) || len(out) > 0 {
			t.Errorf("decodeNotices(%q) = %+v, %v; want errBadNotice and nothing", bad, out, err)
		}
	}
	for v, want := range map[string]bool{"0": true, "123": true, "": false, "-1": false, "1x": false, "9999999999999999999": false} {
		if _, ok := parseIndex(v); ok != want {
			t.Errorf("parseIndex(%q) ok = %v, want %v", v, ok, want)
		}
	}
}

// TestListenQueriesIndexed: what a listener and a cancel run is an indexed search,
// never a scan of a table that grows (sqlite_sequence holds a row per table).
func TestListenQueriesIndexed(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	for _, q := range []string{sqlNextNotices, sqlPendingIntents, sqlLastNotice, sqlIntent, sqlPruneIntents,
		sqlPruneNotices, sqlInsertIntent} {
		rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, 1, 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(detail, "SCAN ") && detail != "SCAN sqlite_sequence" && detail != "SCAN CONSTANT ROW" {
				t.Errorf("%s\nplans %q", q, detail)
			}
		}
		rows.Close()
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	var b backoff
	now := time.Now()
	var waits []time.Duration
	for range 10 {
		waits = append(waits, b.fail(now, 50*time.Millisecond))
	}
	want := []time.Duration{50, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	if !b.next.Equal(now.Add(maxBackoff)) {
		t.Errorf("next attempt at %v, want %v", b.next, now.Add(maxBackoff))
	}
}
