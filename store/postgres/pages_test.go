package postgres

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// pageEvent is event i of a run, its data naming who wrote it.
func pageEvent(runID string, i int, by string) store.Event {
	return store.Event{RunID: runID, Index: i, Type: run.EventRunContent,
		Data:      fmt.Appendf(nil, `{"event":"RunContent","event_index":%d,"content":"%s"}`, i, by),
		CreatedAt: time.UnixMilli(1_750_000_000_000 + int64(i)).UTC()}
}

func rangeEvents(runID string, from, to int, by string) []store.Event {
	var evs []store.Event
	for i := from; i <= to; i++ {
		evs = append(evs, pageEvent(runID, i, by))
	}
	return evs
}

// checkIndexes fails unless evs are those of indexes want, in order, each once,
// and holds the data of who wrote each first when by says so.
func checkIndexes(t *testing.T, evs []store.Event, want []int, by map[int]string) {
	t.Helper()
	var got []int
	for _, e := range evs {
		got = append(got, e.Index)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("indexes = %v, want %v", got, want)
	}
	for _, e := range evs {
		if w, ok := by[e.Index]; ok && !strings.Contains(string(e.Data), `"`+w+`"`) {
			t.Errorf("event %d = %s, want the one %s wrote", e.Index, e.Data, w)
		}
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// TestPagesFillGaps: appends that leave gaps, fill them, and repeat stored
// indexes store each index once, with what was stored first, and Events reads
// them in order from any index, with any limit.
func TestPagesFillGaps(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	steps := []struct {
		evs []store.Event
	}{
		{append(rangeEvents("r", 0, 1, "first"), pageEvent("r", 5, "first"))},
		{rangeEvents("r", 2, 4, "second")},
		{rangeEvents("r", 3, 7, "third")},
		{append(rangeEvents("r", 9, 9, "fourth"), rangeEvents("r", 0, 2, "fourth")...)},
	}
	for i, st := range steps {
		if err := s.AppendEvents(ctx, st.evs); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	by := map[int]string{0: "first", 1: "first", 2: "second", 3: "second", 4: "second", 5: "first", 6: "third", 7: "third", 9: "fourth"}
	all, err := s.Events(ctx, "r", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, all, []int{0, 1, 2, 3, 4, 5, 6, 7, 9}, by)
	for _, c := range []struct{ from, limit int }{{3, 2}, {5, 0}, {8, 1}, {0, 9}, {7, 100}, {10, 0}} {
		got, err := s.Events(ctx, "r", c.from, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		var want []int
		for _, e := range all {
			if e.Index >= c.from && (c.limit == 0 || len(want) < c.limit) {
				want = append(want, e.Index)
			}
		}
		checkIndexes(t, got, want, by)
	}
}

// TestPagesLarge: a write larger than a page is cut into pages, read back whole
// and in order.
func TestPagesLarge(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	content := strings.Repeat("x", 100_000)
	var evs []store.Event
	for i := range 30 { // ~3 MB: three pages at least
		e := pageEvent("big", i, content)
		evs = append(evs, e)
	}
	if err := s.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	var pages int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{s.schema, "event_pages"}.Sanitize()).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if pages < 3 {
		t.Errorf("%d pages for ~3 MB of events, want 3 at least", pages)
	}
	got, err := s.Events(ctx, "big", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, got, seq(0, 29), nil)
	for i, e := range got {
		if string(e.Data) != string(evs[i].Data) || !e.CreatedAt.Equal(evs[i].CreatedAt) || e.Type != evs[i].Type {
			t.Fatalf("event %d came back as %.80s… at %v", i, e.Data, e.CreatedAt)
		}
	}
	got, err = s.Events(ctx, "big", 9, 15)
	if err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, got, seq(9, 23), nil)
}

// TestPagesConcurrentOverlap: writers appending overlapping ranges of one run at
// once, fenced or not, store each index once.
func TestPagesConcurrentOverlap(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	if err := s.CreateRun(ctx, &store.Run{ID: "fenced", Kind: run.KindAgent, Status: run.StatusRunning,
		Replica: "me", LeaseUntil: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	const writers, rounds = 6, 20
	for _, id := range []string{"open", "fenced"} {
		var wg sync.WaitGroup
		errs := make(chan error, writers*rounds)
		for w := range writers {
			wg.Go(func() {
				for r := range rounds {
					from := r*5 + w%3
					evs := rangeEvents(id, from, from+7, fmt.Sprintf("w%d", w))
					var err error
					if id == "fenced" {
						var lost []string
						lost, err = s.AppendEventsAs(ctx, "me", evs)
						if len(lost) > 0 {
							err = fmt.Errorf("lost %v", lost)
						}
					} else {
						err = s.AppendEvents(ctx, evs)
					}
					if err != nil {
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
		got, err := s.Events(ctx, id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkIndexes(t, got, seq(0, (rounds-1)*5+2+7), nil)
	}
}

// TestMigrateEventRows opens a schema whose events are stored a row each (before
// migration 0006): they become pages, read as they were, and appends go on
// after them, leaving the stored ones as they are.
func TestMigrateEventRows(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	ctx := t.Context()
	tx := migratedBefore(t, schema, "_event_pages.sql")
	// Run a: 0-4 and 7-8 (a gap), with data that is not ASCII, an empty
	// event and a type of its own; run b: 1,000 events of 2 KB, so more than a
	// page of 1 MiB.
	type row struct {
		id   string
		idx  int
		typ  string
		data string
		at   time.Time
	}
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	rows := []row{
		{"a", 0, "RunStarted", `{"event":"RunStarted"}`, at},
		{"a", 1, "RunContent", `{"content":"héllo, 世界 \t\n"}`, at.Add(1500 * time.Microsecond).Truncate(time.Millisecond)},
		{"a", 2, "Custom\tType", `{"x":1}`, at.Add(-time.Hour)},
		{"a", 3, "RunContent", ``, at},
		{"a", 4, "RunContent", `{"content":"four"}`, at},
		{"a", 7, "RunContent", `{"content":"seven"}`, at},
		{"a", 8, "RunCompleted", `{"event":"RunCompleted"}`, at},
	}
	for i := range 1000 {
		rows = append(rows, row{"b", i, "RunContent", fmt.Sprintf(`{"i":%d,"c":"%s"}`, i, strings.Repeat("z", 2000)), at.Add(time.Duration(i) * time.Millisecond)})
	}
	for _, r := range rows {
		if _, err := tx.Exec(ctx, `INSERT INTO events (run_id, idx, type, data, created_at) VALUES ($1, $2, $3, $4, $5)`,
			r.id, r.idx, r.typ, r.data, r.at); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, pgtest.URL(), WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check := func(id string, from, limit int, want []row) {
		t.Helper()
		got, err := s.Events(ctx, id, from, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("Events(%s, %d, %d) = %d events, want %d", id, from, limit, len(got), len(want))
		}
		for i, w := range want {
			g := got[i]
			if g.RunID != id || g.Index != w.idx || string(g.Type) != w.typ || string(g.Data) != w.data || !g.CreatedAt.Equal(w.at) {
				t.Errorf("event %d = %s %d %q %q %v, want %d %q %q %v", i, g.RunID, g.Index, g.Type, g.Data, g.CreatedAt,
					w.idx, w.typ, w.data, w.at)
			}
		}
	}
	check("a", 0, 0, rows[:7])
	check("a", 3, 3, rows[3:6])
	check("b", 0, 0, rows[7:])
	check("b", 990, 5, rows[7+990:7+995])
	var pages int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{schema, "event_pages"}.Sanitize()+" WHERE run_id = 'b'").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if pages < 2 {
		t.Errorf("run b's 2 MB of events in %d page, want pages of about 1 MiB", pages)
	}
	// The gap is filled, the stored events are left as they are, and the run
	// goes on.
	more := append(rangeEvents("a", 4, 9, "later"), pageEvent("a", 0, "later"))
	if err := s.AppendEvents(ctx, more); err != nil {
		t.Fatal(err)
	}
	got, err := s.Events(ctx, "a", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, got, seq(0, 9), map[int]string{5: "later", 6: "later", 9: "later"})
	if string(got[0].Data) != rows[0].data || string(got[7].Data) != rows[5].data {
		t.Errorf("stored events rewritten: %s, %s", got[0].Data, got[7].Data)
	}
}

// TestPageFormat: pages decode to what was encoded, and a damaged page is an
// error, not a panic nor events made up.
func TestPageFormat(t *testing.T) {
	evs := []store.Event{
		{RunID: "r", Index: 3, Type: "A\tB", Data: []byte("x\ny"), CreatedAt: time.UnixMilli(5).UTC()},
		{RunID: "r", Index: 4, Type: run.EventRunContent, CreatedAt: time.UnixMilli(-7).UTC()},
	}
	p := makePages(evs, time.Now())
	if p.len() != 1 || p.firsts[0] != 3 || p.lasts[0] != 4 {
		t.Fatalf("pages = %+v", p)
	}
	got, err := decodePage(nil, "r", p.data[0], 0, 0, make(eventTypes))
	if err != nil || len(got) != 2 {
		t.Fatalf("decode = %v, %v", got, err)
	}
	for i := range evs {
		g, w := got[i], evs[i]
		if g.Index != w.Index || g.Type != w.Type || string(g.Data) != string(w.Data) || !g.CreatedAt.Equal(w.CreatedAt) {
			t.Errorf("event %d = %+v, want %+v", i, g, w)
		}
	}
	// A page cut short is an error, unless cut at the end of an event: then it
	// is a shorter page.
	page := p.data[0]
	for n := 1; n < len(page); n++ {
		if got, err := decodePage(nil, "r", page[:n], 0, 0, make(eventTypes)); err == nil && len(got) != 1 {
			t.Errorf("page cut at %d decoded without error to %d events", n, len(got))
		}
	}
	for _, bad := range []string{"x\t1\t1\t1\nAB", "1\t1\t1\n", "1\t1\t-1\t1\nA", "1\t1\t1\t9\nAB", "-1\t1\t1\t1\nAB"} {
		if _, err := decodePage(nil, "r", []byte(bad), 0, 0, make(eventTypes)); err == nil {
			t.Errorf("page %q decoded without error", bad)
		}
	}
}

// TestSortEvents: a run's events come together, in order of index, each index
// once (the first given), however they are given.
func TestSortEvents(t *testing.T) {
	ev := func(id string, i int, by string) store.Event {
		return store.Event{RunID: id, Index: i, Data: []byte(by)}
	}
	for _, c := range []struct {
		in   []store.Event
		want string
	}{
		{[]store.Event{ev("b", 0, ""), ev("b", 1, ""), ev("a", 5, "")}, "b0 b1 a5"}, // grouped: as given
		{[]store.Event{ev("a", 0, ""), ev("b", 0, ""), ev("a", 1, "")}, "a0 a1 b0"},
		{[]store.Event{ev("a", 1, ""), ev("a", 0, "")}, "a0 a1"},
		{[]store.Event{ev("a", 0, "x"), ev("a", 0, "y"), ev("a", 1, "")}, "a0x a1"},
		{[]store.Event{ev("a", 1, "x"), ev("a", 0, ""), ev("a", 1, "y")}, "a0 a1x"},
	} {
		var got []string
		for _, e := range sortEvents(c.in) {
			got = append(got, fmt.Sprintf("%s%d%s", e.RunID, e.Index, e.Data))
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("sortEvents(%v) = %v, want %s", c.in, got, c.want)
		}
	}
}
