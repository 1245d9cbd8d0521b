package sqlite

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// TestMigrateEventsToPages opens a database written by schema version 1 (one row per
// event): the migration moves its events into pages, unchanged.
func TestMigrateEventsToPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		string(v1),
		`CREATE TABLE kern_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
		`INSERT INTO kern_schema VALUES (1, '0001_init', 0)`,
		`INSERT INTO events VALUES ('r1', 0, 'RunStarted', CAST('{"event":"RunStarted"}' AS BLOB), 1000),
			('r1', 1, 'RunContent', CAST('{"content":"a\tb\nc"}' AS BLOB), 2000),
			('r2', 0, 'WorkflowStarted', CAST('{}' AS BLOB), 3000)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs, err := s.Events(t.Context(), "r1", 0, 0)
	if err != nil || len(evs) != 2 {
		t.Fatalf("Events = %v, %v", evs, err)
	}
	if evs[1].Index != 1 || evs[1].Type != run.EventRunContent || string(evs[1].Data) != `{"content":"a\tb\nc"}` ||
		!evs[1].CreatedAt.Equal(time.UnixMilli(2000)) {
		t.Errorf("migrated event = %+v (%s)", evs[1], evs[1].Data)
	}
	// New events go on after the migrated ones.
	if err := s.AppendEvents(t.Context(), []store.Event{{RunID: "r1", Index: 2, Type: run.EventRunCompleted, Data: json.RawMessage(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	if evs, _ := s.Events(t.Context(), "r1", 1, 0); len(evs) != 2 || evs[1].Index != 2 {
		t.Errorf("after append: %+v", evs)
	}
}

func FuzzPage(f *testing.F) {
	f.Add(3, "RunContent", []byte(`{"a":"\n\t"}`), 5, []byte("x"))
	// Events that share their start and end: the second is stored as a difference.
	long := `{"event":"RunContent","run_id":"01a2357d-a5d0-7c2b-920e-d76386bbe6c2","event_index":`
	f.Add(4, "RunContent", []byte(long+`4,"content":"word "}`), 5, []byte(long+`5,"content":"word "}`))
	f.Add(4, "RunContent", []byte(long+`4,"content":"aaaaaaaa"}`), 5, []byte(long+`4,"content":"aaaaaaaaaaaaaaaa"}`))
	f.Fuzz(func(t *testing.T, i1 int, typ string, d1 []byte, i2 int, d2 []byte) {
		if bytes.ContainsAny([]byte(typ), "\t\n") {
			return // event types are names without tabs or newlines
		}
		in := []store.Event{
			{Index: i1, Type: run.EventType(typ), Data: d1, CreatedAt: time.UnixMilli(7)},
			{Index: i2, Type: run.EventType(typ), Data: d2, CreatedAt: time.UnixMilli(8)},
		}
		var out []store.Event
		if err := decodePage(encodePage(nil, in), func(e store.Event) { out = append(out, e) }); err != nil {
			t.Fatal(err)
		}
		if len(out) != 2 {
			t.Fatalf("decoded %d events", len(out))
		}
		for k := range in {
			if out[k].Index != in[k].Index || out[k].Type != in[k].Type || !bytes.Equal(out[k].Data, in[k].Data) || !out[k].CreatedAt.Equal(in[k].CreatedAt) {
				t.Fatalf("event %d: %+v, want %+v", k, out[k], in[k])
			}
		}
	})
}

func TestDecodePageRejectsDamage(t *testing.T) {
	for _, page := range []string{"1\tRunStarted\t0\n", "1\tRunStarted\t0\t5\nab", "x\tT\t0\t0\n", "1\tT\t0\t-1\n",
		// Differences from no event, from a shorter one, or with a field too few or too many.
		"1\tT\t0\t1\t2\t0\nx",
		"1\tT\t0\t3\nabc2\tT\t0\t1\t2\t2\nx",
		"1\tT\t0\t3\nabc2\tT\t0\t1\t2\nx",
		"1\tT\t0\t3\nabc2\tT\t0\t1\t1\t1\t1\nx",
		"1\tT\t0\t3\nabc2\tT\t0\t1\t-1\t1\nx",
		"1\tT\t0\t3\nabc2\tT\t0\t1\t0\t0\t0\t4\t0\nx", // a copy from beyond the event before
		"1\tT\t0\t3\nabc2\tT\t0\t1\t0\t0\t0\t1\t3\nx",
		"1\tT\t0\t3\nabc2\tT\t0\t1\t0\t0\t2\t0\t1\nx", // a gap longer than what is stored
		"1\tT\t0\t3\nabc2\tT\t0\t0\t2\t0\t0\t0\t2\n",  // a copy overlapping the prefix
		"1\tT\t0\t3\nabc2\tT\t0\t0\t0\t2\t0\t1\t2\n",  // a copy overlapping the suffix
	} {
		if err := decodePage([]byte(page), func(store.Event) {}); err == nil {
			t.Errorf("decodePage(%q) accepted a damaged page", page)
		}
	}
}

// TestDecodePageBoundsGrowth: a damaged page whose every event shares with the
// one before more than that one holds (the whole of it as prefix, and again as a
// copy) would decode 801 bytes into 128 MiB; it is refused.
func TestDecodePageBoundsGrowth(t *testing.T) {
	page := []byte("0\tRunContent\t0\t64\n" + strings.Repeat("x", 64))
	for i, n := 1, 64; i <= 20; i, n = i+1, n*2 {
		page = append(page, fmt.Sprintf("%d\tRunContent\t0\t0\t%d\t0\t0\t0\t%d\n", i, n, n)...)
	}
	total := 0
	err := decodePage(page, func(e store.Event) { total += len(e.Data) })
	if err == nil {
		t.Fatalf("decodePage accepted a page of %d bytes that decodes to %d", len(page), total)
	}
	if total > 64 {
		t.Errorf("decoded %d bytes before refusing the page, want only its first event's 64", total)
	}
}

// TestMigrateToEventLog opens a file of schema version 5 (pages keyed by run and
// first index): migration 6 moves its pages into the arrival-ordered log, where
// they read as before, a run's events go on after them, and an event stored
// already is left as it is.
func TestMigrateToEventLog(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "v5.db")
	db, err := sql.Open("sqlite", driverDSN(path, nil, false))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	page := func(evs ...store.Event) []byte { return encodePage(nil, evs) }
	ev := func(i int, data string) store.Event {
		return store.Event{Index: i, Type: run.EventRunContent, Data: []byte(data), CreatedAt: time.UnixMilli(int64(1000 + i))}
	}
	stmts := []string{`CREATE TABLE kern_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`}
	for _, m := range ms[:5] {
		stmts = append(stmts, m.sql, fmt.Sprintf(`INSERT INTO kern_schema VALUES (%d, '%s', 0)`, m.version, m.name))
	}
	for _, q := range stmts {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []struct {
		run         string
		first, last int
		data        []byte
	}{
		{"b", 0, 0, page(ev(0, `"b0"`))},
		{"a", 2, 3, page(ev(2, `"a2"`), ev(3, `"a3"`))},
		{"a", 0, 1, page(ev(0, `"a0"`), ev(1, `"a1"`))},
	} {
		if _, err := db.ExecContext(t.Context(), `INSERT INTO event_pages (run_id, first_idx, last_idx, data) VALUES (?, ?, ?, ?)`,
			p.run, p.first, p.last, p.data); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := openPath(t, path)
	evs, err := s.Events(t.Context(), "a", 1, 0)
	if err != nil || len(evs) != 3 || evs[0].Index != 1 || string(evs[2].Data) != `"a3"` || !evs[2].CreatedAt.Equal(time.UnixMilli(1003)) {
		t.Fatalf("Events(a, 1) after the migration = %+v, %v", evs, err)
	}
	a3, a4 := ev(3, `"again"`), ev(4, `"a4"`)
	a3.RunID, a4.RunID = "a", "a"
	if err := s.AppendEvents(t.Context(), []store.Event{a3, a4}); err != nil {
		t.Fatal(err)
	}
	evs, err = s.Events(t.Context(), "a", 0, 0)
	if err != nil || len(evs) != 5 {
		t.Fatalf("Events(a) after an append = %+v, %v", evs, err)
	}
	for i, e := range evs {
		if e.Index != i {
			t.Errorf("event %d has index %d", i, e.Index)
		}
	}
	if string(evs[3].Data) != `"a3"` || string(evs[4].Data) != `"a4"` {
		t.Errorf("events 3, 4 = %s, %s; want the stored one kept and the new one added", evs[3].Data, evs[4].Data)
	}
	if evs, err := s.Events(t.Context(), "b", 0, 0); err != nil || len(evs) != 1 || string(evs[0].Data) != `"b0"` {
		t.Errorf("Events(b) = %+v, %v", evs, err)
	}
	s.Close()
	checkSchema(t, path)
}

// TestPageDifferences checks that the events of a run, which repeat most of their
// JSON around what changes (the index, the content), take a page far smaller than
// their JSON, and read back as they were.
func TestPageDifferences(t *testing.T) {
	t.Parallel()
	evs := streamed(20)
	size := 0
	for _, e := range evs {
		size += len(e.Data)
	}
	page := encodePage(nil, evs)
	if len(page) > size/4 {
		t.Errorf("page of %d bytes for %d bytes of events, want at most a fourth", len(page), size)
	}
	var got []store.Event
	if err := decodePage(page, func(e store.Event) { got = append(got, e) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(evs) {
		t.Fatalf("decoded %d events of %d", len(got), len(evs))
	}
	for i := range evs {
		if got[i].Index != i || !bytes.Equal(got[i].Data, evs[i].Data) || !got[i].CreatedAt.Equal(evs[i].CreatedAt) {
			t.Errorf("event %d = %d %s, want %s", i, got[i].Index, got[i].Data, evs[i].Data)
		}
	}
}

// streamed returns n events of a streamed chunk of a workflow's agent, as kern
// writes them.
func streamed(n int) []store.Event {
	var evs []store.Event
	for i := range n {
		data := fmt.Sprintf(`{"event":"RunContent","run_id":"01a2357d-a5d0-7c2b-920e-d76386bbe6c2","created_at":1796193756,`+
			`"event_index":%d,"agent_id":"r","agent_name":"R","workflow_id":"wf","workflow_name":"wf",`+
			`"workflow_run_id":"01a2357d-a5cd-795a-b43a-f4ead91a07cf","step_id":"research","step_name":"research",`+
			`"step_index":0,"content":"%s"}`, i, strings.Repeat("token ", i%4))
		evs = append(evs, store.Event{Index: i, Type: run.EventRunContent, Data: []byte(data), CreatedAt: time.UnixMilli(int64(1000 + i))})
	}
	return evs
}

// BenchmarkEncodePage encodes the page of 20 streamed chunks' events.
func BenchmarkEncodePage(b *testing.B) {
	evs := streamed(20)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = encodePage(buf[:0], evs)
	}
	b.ReportMetric(float64(len(buf)), "page-bytes")
}

// TestMigrateToPageDifferences opens a file of schema version 7, whose pages hold
// every event whole: they read as before, and a run's events go on after them.
func TestMigrateToPageDifferences(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "v7.db")
	db, err := sql.Open("sqlite", driverDSN(path, nil, false))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{`CREATE TABLE kern_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`}
	for _, m := range ms[:7] {
		stmts = append(stmts, m.sql, fmt.Sprintf(`INSERT INTO kern_schema VALUES (%d, '%s', 0)`, m.version, m.name))
	}
	// A page as version 7 wrote it: every event whole, though they share most of
	// their JSON.
	a0 := `{"event":"RunContent","run_id":"a","workflow_name":"a long name to share","content":"zero"}`
	a1 := `{"event":"RunContent","run_id":"a","workflow_name":"a long name to share","content":"one"}`
	v7 := fmt.Sprintf("0\tRunContent\t1000\t%d\n%s1\tRunContent\t1001\t%d\n%s", len(a0), a0, len(a1), a1)
	stmts = append(stmts, fmt.Sprintf(`INSERT INTO event_pages (run_id, first_idx, last_idx, data) VALUES ('a', 0, 1, CAST('%s' AS BLOB))`, v7))
	for _, q := range stmts {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := openPath(t, path)
	a2 := `{"event":"RunContent","run_id":"a","workflow_name":"a long name to share","content":"two"}`
	a3 := `{"event":"RunContent","run_id":"a","workflow_name":"a long name to share","content":"three"}`
	if err := s.AppendEvents(t.Context(), []store.Event{
		{RunID: "a", Index: 2, Type: run.EventRunContent, Data: []byte(a2), CreatedAt: time.UnixMilli(1002)},
		{RunID: "a", Index: 3, Type: run.EventRunContent, Data: []byte(a3), CreatedAt: time.UnixMilli(1003)},
	}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Events(t.Context(), "a", 0, 0)
	if err != nil || len(evs) != 4 {
		t.Fatalf("Events(a) = %+v, %v", evs, err)
	}
	for i, want := range []string{a0, a1, a2, a3} {
		if evs[i].Index != i || string(evs[i].Data) != want || !evs[i].CreatedAt.Equal(time.UnixMilli(int64(1000+i))) {
			t.Errorf("event %d = %d %s at %v, want %s", i, evs[i].Index, evs[i].Data, evs[i].CreatedAt, want)
		}
	}
	s.Close()
	checkSchema(t, path)
}

// FuzzDecodePage checks that no bytes make decodePage panic or hand out more than
// the page could hold.
func FuzzDecodePage(f *testing.F) {
	f.Add([]byte("1\tT\t0\t3\nabc2\tT\t0\t1\t0\t1\t0\t1\t1\nx"))
	f.Fuzz(func(t *testing.T, page []byte) {
		total := 0
		decodePage(page, func(e store.Event) { total += len(e.Data) })
		if total > len(page)*len(page) {
			t.Errorf("%d bytes of events from a page of %d", total, len(page))
		}
	})
}
