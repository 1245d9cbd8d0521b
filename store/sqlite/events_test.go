package sqlite

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// TestAppendEventsShapes stores batches of many runs' events in the shapes a
// Recorder gives them (grouped by run, in order) and in others, with some of
// their events stored already: every run reads back each of its events once, the
// first stored copy of each, whatever the number of runs (the pages go in
// multi-row INSERTs of 2^k rows) or the order of the batch.
func TestAppendEventsShapes(t *testing.T) {
	t.Parallel()
	ev := func(id string, i int, data string) store.Event {
		return store.Event{RunID: id, Index: i, Type: run.EventRunContent, Data: []byte(`"` + data + `"`),
			CreatedAt: time.UnixMilli(int64(1000 + i))}
	}
	// grouped returns the events i (from, to) of n runs, run by run in order of id.
	grouped := func(n, from, to int, data string) []store.Event {
		var evs []store.Event
		for r := range n {
			for i := from; i < to; i++ {
				evs = append(evs, ev(fmt.Sprintf("run-%03d", r), i, data))
			}
		}
		return evs
	}
	tests := []struct {
		name    string
		runs    int
		batches [][]store.Event
		want    int // events of each run
		fresh   int // of which the first batch stored
	}{
		{"one run", 1, [][]store.Event{grouped(1, 0, 3, "new")}, 3, 3},
		{"seven runs", 7, [][]store.Event{grouped(7, 0, 2, "new")}, 2, 2},
		{"more runs than a statement takes", 300, [][]store.Event{grouped(300, 0, 2, "new")}, 2, 2},
		{"runs out of order", 5, [][]store.Event{func() []store.Event {
			evs := grouped(5, 0, 2, "new")
			slices.Reverse(evs[:4]) // run-001's, then run-000's, each backwards
			return append(evs[6:], evs[:6]...)
		}()}, 2, 2},
		{"a run's events in two places", 3, [][]store.Event{func() []store.Event {
			evs := grouped(3, 0, 2, "new")
			return append(evs[1:], evs[0]) // run-000: 1, ..., 0
		}()}, 2, 2},
		{"retried with more", 20, [][]store.Event{
			grouped(20, 0, 2, "new"),
			grouped(20, 1, 4, "retried"), // 1 stored: only 2 and 3 are new
		}, 4, 2},
		{"one run retried with more", 1, [][]store.Event{
			grouped(1, 0, 2, "new"),
			grouped(1, 0, 3, "retried"),
		}, 3, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := openTemp(t)
			for _, b := range tt.batches {
				if lost, err := s.AppendEventsAs(t.Context(), "", b); err != nil || len(lost) > 0 {
					t.Fatalf("AppendEventsAs = %v, %v", lost, err)
				}
			}
			for r := range tt.runs {
				id := fmt.Sprintf("run-%03d", r)
				got, err := s.Events(t.Context(), id, 0, 0)
				if err != nil || len(got) != tt.want {
					t.Fatalf("Events(%s) = %d events, %v; want %d", id, len(got), err, tt.want)
				}
				for i, e := range got {
					want := `"new"`
					if i >= tt.fresh {
						want = `"retried"`
					}
					if e.Index != i || string(e.Data) != want || !e.CreatedAt.Equal(time.UnixMilli(int64(1000+i))) {
						t.Errorf("%s: event %d = %d %s at %v, want %s", id, i, e.Index, e.Data, e.CreatedAt, want)
					}
				}
			}
		})
	}
}

// TestByRunGrouped checks that events grouped by run and in order are paged where
// they are, not copied, and that byRun puts the runs in order of id.
func TestByRunGrouped(t *testing.T) {
	evs := []store.Event{{RunID: "b", Index: 0}, {RunID: "b", Index: 1}, {RunID: "a", Index: 3}}
	pages := byRun(evs)
	if len(pages) != 2 || pages[0][0].RunID != "a" || len(pages[1]) != 2 {
		t.Fatalf("byRun = %v", pages)
	}
	if &pages[0][0] != &evs[2] || &pages[1][0] != &evs[0] {
		t.Error("byRun copied events that were grouped already")
	}
}

// TestAppendEventsCopies checks the promise of CopiesEvents: once AppendEvents
// returned, the caller may overwrite the events' Data (a Recorder reuses its
// buffer) and what was stored stays as it was.
func TestAppendEventsCopies(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	buf := []byte(`"a0""b0""b1"`)
	evs := []store.Event{
		{RunID: "a", Index: 0, Type: run.EventRunContent, Data: buf[0:4]},
		{RunID: "b", Index: 0, Type: run.EventRunContent, Data: buf[4:8]},
		{RunID: "b", Index: 1, Type: run.EventRunContent, Data: buf[8:12]},
	}
	if err := s.AppendEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	copy(buf, `"xx""xx""xx"`)
	for id, want := range map[string][]string{"a": {`"a0"`}, "b": {`"b0"`, `"b1"`}} {
		got, err := s.Events(t.Context(), id, 0, 0)
		if err != nil || len(got) != len(want) {
			t.Fatalf("Events(%s) = %v, %v", id, got, err)
		}
		for i := range want {
			if string(got[i].Data) != want[i] {
				t.Errorf("Events(%s)[%d] = %s, want %s", id, i, got[i].Data, want[i])
			}
		}
	}
}

// TestEncodePagesParallel checks that pages large enough to be encoded on two
// goroutines come out as one goroutine encodes them, one after the other, and that
// the buffers, kept for the next call, do not carry a call's pages into the next.
func TestEncodePagesParallel(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	pagesOf := func(runs, events int, word string) [][]store.Event {
		var pages [][]store.Event
		for r := range runs {
			var evs []store.Event
			for i := range events {
				data := fmt.Sprintf(`{"run_id":"run-%03d","event_index":%d,"content":%q}`, r, i, strings.Repeat(word, i%7))
				evs = append(evs, store.Event{RunID: fmt.Sprintf("run-%03d", r), Index: i, Type: run.EventRunContent,
					Data: []byte(data), CreatedAt: time.UnixMilli(int64(1000 + i))})
			}
			pages = append(pages, evs)
		}
		return pages
	}
	for _, c := range []struct {
		name  string
		pages [][]store.Event
	}{
		{"small", pagesOf(3, 4, "a ")},
		{"large", pagesOf(9, 40, "word ")},
		{"one large page", pagesOf(1, 400, "word ")},
		{"large again, other words", pagesOf(7, 50, "other ")},
	} {
		enc := s.encodePages(c.pages)
		want, wantEnds := encodeAll(nil, nil, c.pages)
		if !bytes.Equal(enc.buf, want) || !slices.Equal(enc.ends, wantEnds) {
			t.Errorf("%s: the pages differ from those encoded one after the other", c.name)
		}
		for i, evs := range c.pages {
			var got []store.Event
			if err := decodePage(enc.page(i), func(e store.Event) { got = append(got, e) }); err != nil {
				t.Fatalf("%s: page %d: %v", c.name, i, err)
			}
			if len(got) != len(evs) || !bytes.Equal(got[len(got)-1].Data, evs[len(evs)-1].Data) {
				t.Errorf("%s: page %d decodes to %d events, want %d", c.name, i, len(got), len(evs))
			}
		}
		s.release(enc)
	}
}
