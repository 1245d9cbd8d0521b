package postgres

import (
	"bytes"
	"cmp"
	"errors"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// Events are stored in pages: a page holds consecutive events of one run (indexes
// first_idx to last_idx, none missing), as one bytea value of the table
// event_pages. A page's events are written one after the other, each as a header
// line and two values:
//
//	<index>\t<created_at, Unix milliseconds>\t<len(type)>\t<len(data)>\n<type><data>
//
// (lengths in bytes, numbers in decimal). A run's pages never overlap: an append
// writes only indexes not stored yet (see appendEvents), so that a run's events
// are its pages' in order of last_idx.

// maxPageBytes bounds a page unless one event alone is larger: a write of many
// events of one run is cut into pages of about this size, far below what a bytea
// may hold.
const maxPageBytes = 1 << 20

// errBadPage reports a page that does not decode: the database was changed by
// hand or damaged.
var errBadPage = errors.New("malformed event page")

// appendPageEvent appends e's entry in a page to dst.
func appendPageEvent(dst []byte, e *store.Event, created time.Time) []byte {
	dst = strconv.AppendInt(dst, int64(e.Index), 10)
	dst = append(dst, '\t')
	dst = strconv.AppendInt(dst, created.UnixMilli(), 10)
	dst = append(dst, '\t')
	dst = strconv.AppendInt(dst, int64(len(e.Type)), 10)
	dst = append(dst, '\t')
	dst = strconv.AppendInt(dst, int64(len(e.Data)), 10)
	dst = append(dst, '\n')
	dst = append(dst, e.Type...)
	return append(dst, e.Data...)
}

// pageEntry is an event as a page holds it; its values point into the page.
type pageEntry struct {
	index   int
	created int64 // Unix milliseconds
	typ     []byte
	data    []byte
}

// nextEntry reads the entry at the start of page and returns the rest.
func nextEntry(page []byte) (pageEntry, []byte, error) {
	var e pageEntry
	nl := bytes.IndexByte(page, '\n')
	if nl < 0 {
		return e, nil, errBadPage
	}
	head := page[:nl]
	var nums [4]int64
	for i := range nums {
		field := head
		if i < len(nums)-1 {
			tab := bytes.IndexByte(head, '\t')
			if tab < 0 {
				return e, nil, errBadPage
			}
			field, head = head[:tab], head[tab+1:]
		}
		n, err := strconv.ParseInt(string(field), 10, 64)
		if err != nil {
			return e, nil, errBadPage
		}
		nums[i] = n
	}
	rest := page[nl+1:]
	lt, ld := nums[2], nums[3]
	if nums[0] < 0 || lt < 0 || ld < 0 || lt+ld > int64(len(rest)) {
		return e, nil, errBadPage
	}
	e.index, e.created = int(nums[0]), nums[1]
	e.typ = rest[:lt:lt]
	e.data = rest[lt : lt+ld : lt+ld]
	return e, rest[lt+ld:], nil
}

// eventTypes interns the types of the events read, so that the events of a
// read share their types' strings.
type eventTypes map[string]run.EventType

func (m eventTypes) of(b []byte) run.EventType {
	if t, ok := m[string(b)]; ok {
		return t
	}
	t := run.EventType(b)
	m[string(t)] = t
	return t
}

// decodePage appends to dst the events of page whose index is from or more, at
// most limit of dst in all when limit > 0. The events' Data point into page.
func decodePage(dst []store.Event, runID string, page []byte, from, limit int, types eventTypes) ([]store.Event, error) {
	for len(page) > 0 && (limit <= 0 || len(dst) < limit) {
		e, rest, err := nextEntry(page)
		if err != nil {
			return dst, err
		}
		page = rest
		if e.index < from {
			continue
		}
		ev := store.Event{RunID: runID, Index: e.index, Type: types.of(e.typ), CreatedAt: time.UnixMilli(e.created).UTC()}
		if len(e.data) > 0 {
			ev.Data = e.data
		}
		dst = append(dst, ev)
	}
	return dst, nil
}

// pageIndexes calls fn with the index of each event of page.
func pageIndexes(page []byte, fn func(int)) error {
	for len(page) > 0 {
		e, rest, err := nextEntry(page)
		if err != nil {
			return err
		}
		fn(e.index)
		page = rest
	}
	return nil
}

// pages are the pages of a write of events, as the statements take them: the
// i-th page is of run ids[i], indexes firsts[i] to lasts[i], encoded in data[i],
// which is buf[starts[i]:starts[i]+sizes[i]].
type pages struct {
	ids                          []string
	firsts, lasts, starts, sizes []int32
	data                         [][]byte
	buf                          []byte
}

func (p *pages) len() int { return len(p.ids) }

// args are the arguments of the appendPages statements for p.
func (p *pages) args(channel string, payloads []string, replica string, check bool) []any {
	return []any{p.ids, p.firsts, p.lasts, p.buf, p.starts, p.sizes, channel, payloads, replica, check}
}

// sortEvents returns events grouped by run, in order of index, a repeated index
// left out but for its first; the runs in order of id, unless each run's events
// are together and in order already (a recorder's are), which are returned as
// they are.
func sortEvents(events []store.Event) []store.Event {
	if grouped(events) {
		return events
	}
	cmpEvents := func(a, b *store.Event) int {
		if c := strings.Compare(a.RunID, b.RunID); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	}
	// Sort their positions (an event is large to move), the first of equal
	// events first.
	order := make([]int, len(events))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Or(cmpEvents(&events[a], &events[b]), cmp.Compare(a, b)) })
	out := make([]store.Event, 0, len(events))
	for k, i := range order {
		if k > 0 && cmpEvents(&events[order[k-1]], &events[i]) == 0 {
			continue
		}
		out = append(out, events[i])
	}
	return out
}

// grouped reports whether each run's events are together in events, in
// increasing order of index.
func grouped(events []store.Event) bool {
	var seen map[string]bool // the runs before the current one
	for i := 1; i < len(events); i++ {
		prev, e := &events[i-1], &events[i]
		if e.RunID == prev.RunID {
			if e.Index <= prev.Index {
				return false
			}
			continue
		}
		if seen == nil {
			seen = make(map[string]bool)
		}
		seen[prev.RunID] = true
		if seen[e.RunID] {
			return false
		}
	}
	return true
}

// makePages cuts events, sorted by sortEvents, into pages: a page ends where the
// run changes, an index is missing, or the page reaches maxPageBytes. Events
// without a time get now.
func makePages(sorted []store.Event, now time.Time) pages {
	size := 0
	for i := range sorted {
		size += len(sorted[i].Data) + len(sorted[i].Type) + 40
	}
	buf := make([]byte, 0, size)
	var p pages
	start := 0 // where the page being written begins in buf
	for i := range sorted {
		e := &sorted[i]
		created := now
		if !e.CreatedAt.IsZero() {
			created = e.CreatedAt
		}
		cont := i > 0 && sorted[i-1].RunID == e.RunID && sorted[i-1].Index+1 == e.Index && len(buf)-start < maxPageBytes
		if !cont && i > 0 {
			p.endPage(buf, start)
			start = len(buf)
		}
		if !cont {
			p.ids, p.firsts, p.lasts = append(p.ids, e.RunID), append(p.firsts, int32(e.Index)), append(p.lasts, 0)
		}
		p.lasts[len(p.lasts)-1] = int32(e.Index)
		buf = appendPageEvent(buf, e, created)
	}
	if len(sorted) > 0 {
		p.endPage(buf, start)
	}
	p.buf = buf
	return p
}

// endPage takes note of the page of buf that begins at start.
func (p *pages) endPage(buf []byte, start int) {
	p.data = append(p.data, buf[start:len(buf):len(buf)])
	p.starts, p.sizes = append(p.starts, int32(start)), append(p.sizes, int32(len(buf)-start))
}

// lockKeys are the keys of the advisory locks of the runs of p (see
// Store.lockRuns), sorted and each once, so that writers lock the keys they share
// in one order.
func lockKeys(p *pages) []int32 {
	keys := make([]int32, 0, len(p.ids))
	for i, id := range p.ids {
		if i > 0 && p.ids[i-1] == id {
			continue
		}
		h := fnv.New32a()
		h.Write([]byte(id))
		keys = append(keys, int32(h.Sum32()))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// lockClass is the first key of the advisory locks of the runs' events of the
// schema, the second being a hash of the run's id.
func lockClass(schema string) int32 {
	h := fnv.New32a()
	h.Write([]byte("kern/store/postgres events " + schema))
	return int32(h.Sum32())
}
