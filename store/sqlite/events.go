package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

const (
	// sqlMaxIndex reads, for a run (?1), whether its record names another replica
	// than ?2 (NULL if it has no record, or ?2 is NULL) and its greatest stored
	// index: the two primary-key lookups of an append, in one statement.
	sqlMaxIndex = `SELECT (SELECT replica <> ?2 FROM runs WHERE run_id = ?1),
		(SELECT max(last_idx) FROM event_pages WHERE run_id = ?1)`
	sqlInsertPage = `INSERT INTO event_pages (run_id, first_idx, last_idx, data) VALUES (?, ?, ?, ?)`
)

// errBadPage reports a page that does not decode: the database was changed by hand
// or damaged.
var errBadPage = errors.New("malformed event page")

var (
	_ store.Fencer       = (*Store)(nil)
	_ store.EventsCopier = (*Store)(nil)
)

// CopiesEvents says that AppendEvents and AppendEventsAs keep nothing of the
// events' Data once they returned (see store.EventsCopier).
func (s *Store) CopiesEvents() {}

// AppendEvents stores events of any runs in one transaction (which it may share
// with other writes: see the writer), one page per run. An event whose (RunID,
// Index) is already stored is left as it is. An event larger than
// store.MaxValueSize fails the whole call with store.ErrTooLarge before anything is
// written. The same transaction stores a notice of each run's last index, for
// listeners (see Listen).
func (s *Store) AppendEvents(ctx context.Context, events []store.Event) error {
	_, err := s.appendEvents(ctx, nil, events)
	return err
}

// AppendEventsAs stores events as AppendEvents does, except those of the runs
// whose record names another replica than replica, whose ids it returns (see
// store.Fencer). The writer's transaction (BEGIN IMMEDIATE) holds the database's
// write lock from the check to the commit, so a claim (Claim) of another process
// comes wholly before or after it.
func (s *Store) AppendEventsAs(ctx context.Context, replica string, events []store.Event) ([]string, error) {
	return s.appendEvents(ctx, replica, events)
}

// appendEvents stores events; replica, if not nil, fences them (see
// AppendEventsAs), and the runs found lost are returned. The pages are encoded
// here, on the caller's goroutine, so that the writer, which every write of the
// store waits for, only binds them.
func (s *Store) appendEvents(ctx context.Context, replica any, events []store.Event) ([]string, error) {
	if err := s.begin(ctx); err != nil {
		return nil, s.fail("append events", err)
	}
	if len(events) == 0 {
		return nil, nil
	}
	if err := eventsTooLarge(events); err != nil {
		return nil, s.fail("append events", err)
	}
	pages := byRun(events)
	enc := s.encodePages(pages)
	defer s.release(enc)
	var lost []string
	// Events that only wait to be streamed (a Recorder's bulk) may wait for the
	// writes queued beside them (a run's end, its record), which callers wait for.
	err := s.writeLater(ctx, len(pages) == 1, func(ctx context.Context, tx *sql.Tx) error {
		lost = lost[:0] // the writer may run fn again
		return s.writePages(ctx, tx, replica, pages, enc, &lost)
	}, func(b []byte) []byte { return appendEventsNotices(b, pages, lost) })
	if err != nil {
		return nil, s.fail("append events", err)
	}
	return lost, nil
}

// eventsTooLarge refuses events one of which is larger than store.MaxValueSize.
func eventsTooLarge(events []store.Event) error {
	for _, e := range events {
		if len(e.Data) > store.MaxValueSize {
			return tooLarge(fmt.Sprintf("event %d of run %s", e.Index, e.RunID), len(e.Data))
		}
	}
	return nil
}

// writePages writes pages, encoded as enc, in tx, fenced for replica (see
// appendPage), adding to lost the runs found another's.
func (s *Store) writePages(ctx context.Context, tx *sql.Tx, replica any, pages [][]store.Event, enc *encoded, lost *[]string) error {
	switch len(pages) {
	case 0:
		return nil
	case 1:
		return s.appendPage(ctx, tx, replica, pages[0], enc.page(0), lost)
	}
	return s.appendPages(ctx, tx, replica, pages, enc, lost)
}

// appendEventsNotices appends to a notices body that the runs of pages, but those
// lost, have their events stored up to the last of each page.
func appendEventsNotices(b []byte, pages [][]store.Event, lost []string) []byte {
	for _, evs := range pages {
		if id := evs[0].RunID; len(id) <= MaxCancelRunID && !slices.Contains(lost, id) {
			b = appendEventsNotice(b, id, evs[len(evs)-1].Index)
		}
	}
	return b
}

// byRun groups events by run, in order of run id and of index, without repeated
// indexes. Events that come grouped by run, each run's in increasing order of
// index (as a Recorder gives them), are grouped where they are: the pages are
// parts of events.
func byRun(events []store.Event) [][]store.Event {
	var pages [][]store.Event
	for i := 0; i < len(events); {
		j := i + 1
		for ; j < len(events) && events[j].RunID == events[i].RunID; j++ {
			if events[j].Index <= events[j-1].Index {
				return byRunSorted(events)
			}
		}
		pages = append(pages, events[i:j:j])
		i = j
	}
	byID := func(a, b []store.Event) int { return strings.Compare(a[0].RunID, b[0].RunID) }
	if !slices.IsSortedFunc(pages, byID) {
		slices.SortFunc(pages, byID)
	}
	for i := 1; i < len(pages); i++ {
		if pages[i][0].RunID == pages[i-1][0].RunID {
			return byRunSorted(events) // a run's events in two places
		}
	}
	return pages
}

// byRunSorted is byRun for events in any order: it sorts a copy of them.
func byRunSorted(events []store.Event) [][]store.Event {
	sorted := slices.Clone(events)
	slices.SortStableFunc(sorted, func(a, b store.Event) int {
		if c := strings.Compare(a.RunID, b.RunID); c != 0 {
			return c
		}
		return a.Index - b.Index
	})
	var pages [][]store.Event
	for i := 0; i < len(sorted); {
		j := i + 1
		for j < len(sorted) && sorted[j].RunID == sorted[i].RunID {
			j++
		}
		page := slices.CompactFunc(sorted[i:j:j], func(a, b store.Event) bool { return a.Index == b.Index })
		pages = append(pages, page)
		i = j
	}
	return pages
}

// appendPage stores the page of one run's events, encoded as page, as appendEvents
// does.
func (s *Store) appendPage(ctx context.Context, tx *sql.Tx, replica any, evs []store.Event, page []byte, lost *[]string) error {
	kept, theirs, err := s.unstored(ctx, tx, replica, evs)
	if err != nil || len(kept) == 0 {
		return err
	}
	if theirs {
		*lost = append(*lost, evs[0].RunID)
		return nil
	}
	if len(kept) < len(evs) {
		page = encodePage(nil, kept)
	}
	_, err = s.stmt(ctx, tx, s.insertPage).ExecContext(ctx, kept[0].RunID, kept[0].Index, kept[len(kept)-1].Index, page)
	return err
}

// pagesPerStatement bounds the runs one statement of appendPages reads or writes:
// four parameters a page stay far below SQLite's limit of 32,766.
const pagesPerStatement = 256

// sqlLastStored reads, for each run id of the JSON array ?2, in order, whether its
// record names another replica than ?1 (NULL if it has no record, or ?1 is NULL)
// and its greatest stored index.
const sqlLastStored = `SELECT (SELECT replica <> ?1 FROM runs WHERE run_id = k.value),
	(SELECT max(last_idx) FROM event_pages WHERE run_id = k.value)
	FROM json_each(?2) AS k ORDER BY k.key`

// appendPages stores the pages of many runs, encoded in enc, as appendEvents does,
// in a few statements however many runs there are: one reads every run's owner
// and last stored index, and multi-row INSERTs write the pages. A statement costs
// the writer more than the rows it touches, and a flush of many streaming runs
// carries a few events of each.
func (s *Store) appendPages(ctx context.Context, tx *sql.Tx, replica any, pages [][]store.Event, enc *encoded, lost *[]string) error {
	for at := 0; at < len(pages); at += pagesPerStatement {
		n := min(len(pages)-at, pagesPerStatement)
		if err := s.appendChunk(ctx, tx, replica, pages[at:at+n], enc, at, lost); err != nil {
			return err
		}
	}
	return nil
}

// appendChunk stores pages, which are enc's from its page first on.
func (s *Store) appendChunk(ctx context.Context, tx *sql.Tx, replica any, pages [][]store.Event, enc *encoded, first int, lost *[]string) error {
	lasts, err := s.lastStored(ctx, tx, replica, pages)
	if err != nil {
		return err
	}
	args := make([]any, 0, 4*len(pages))
	for i, evs := range pages {
		page := enc.page(first + i)
		l := lasts[i]
		switch {
		case l.other.Bool:
			*lost = append(*lost, evs[0].RunID)
			continue
		case l.idx.Valid && int64(evs[0].Index) <= l.idx.Int64:
			// Some may be stored already (a write retried, a run resumed).
			kept, err := notStored(ctx, tx, evs)
			if err != nil {
				return err
			}
			if len(kept) == 0 {
				continue
			}
			if len(kept) < len(evs) {
				evs, page = kept, encodePage(nil, kept)
			}
		}
		args = append(args, evs[0].RunID, evs[0].Index, evs[len(evs)-1].Index, page)
	}
	return s.insertPages(ctx, tx, args)
}

// lastStored reads, for each of pages, whether its run's record names another
// replica than replica and the greatest index stored of the run (see
// sqlLastStored).
func (s *Store) lastStored(ctx context.Context, tx *sql.Tx, replica any, pages [][]store.Event) ([]lastStored, error) {
	list := make([]byte, 0, 64*len(pages))
	list = append(list, '[')
	for i, evs := range pages {
		if i > 0 {
			list = append(list, ',')
		}
		list = appendJSONString(list, evs[0].RunID)
	}
	list = append(list, ']')
	rows, err := s.stmt(ctx, tx, s.lastStoredStmt).QueryContext(ctx, replica, string(list))
	if err != nil {
		return nil, err
	}
	lasts := make([]lastStored, 0, len(pages))
	for rows.Next() {
		var l lastStored
		if err := rows.Scan(&l.other, &l.idx); err != nil {
			rows.Close()
			return nil, err
		}
		lasts = append(lasts, l)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	if len(lasts) != len(pages) {
		return nil, fmt.Errorf("read the last stored index of %d runs: got %d", len(pages), len(lasts))
	}
	return lasts, nil
}

// lastStored is what sqlLastStored reads of a run.
type lastStored struct {
	other sql.NullBool
	idx   sql.NullInt64
}

// appendJSONString appends s as a JSON string. Run ids need no escapes but in
// theory: those are written as encoding/json writes them.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// insertPages runs the multi-row INSERTs of pages, whose columns are args (four
// a page): a prepared statement of 2^k rows for each bit k of their number.
func (s *Store) insertPages(ctx context.Context, tx *sql.Tx, args []any) error {
	for len(args) > 0 {
		k := bits.Len(uint(len(args)/4)) - 1
		n := 4 << k
		if _, err := s.stmt(ctx, tx, s.insertPagesStmt[k]).ExecContext(ctx, args[:n]...); err != nil {
			return err
		}
		args = args[n:]
	}
	return nil
}

// sqlInsertPages returns the INSERT of n pages.
func sqlInsertPages(n int) string {
	var q strings.Builder
	q.WriteString(`INSERT INTO event_pages (run_id, first_idx, last_idx, data) VALUES `)
	for i := range n {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?, ?, ?, ?)")
	}
	return q.String()
}

// unstored returns the events of one run that are not stored yet, or reports that
// the run's record names another replica than replica (theirs), when replica is not
// nil. The common case, a run's next events, costs one statement of two
// primary-key lookups.
func (s *Store) unstored(ctx context.Context, tx *sql.Tx, replica any, evs []store.Event) (_ []store.Event, theirs bool, _ error) {
	var other sql.NullBool
	var maxIdx sql.NullInt64
	if err := s.stmt(ctx, tx, s.maxIndex).QueryRowContext(ctx, evs[0].RunID, replica).Scan(&other, &maxIdx); err != nil {
		return nil, false, err
	}
	if other.Bool {
		return evs, true, nil
	}
	if !maxIdx.Valid || int64(evs[0].Index) > maxIdx.Int64 {
		return evs, false, nil
	}
	evs, err := notStored(ctx, tx, evs)
	return evs, false, err
}

// notStored returns the events of one run whose indexes its stored pages do not
// hold: the slow path of an append, for a write retried or a run resumed.
func notStored(ctx context.Context, tx *sql.Tx, evs []store.Event) ([]store.Event, error) {
	rows, err := tx.QueryContext(ctx, `SELECT data FROM event_pages WHERE run_id = ? AND last_idx >= ? AND first_idx <= ?`,
		evs[0].RunID, evs[0].Index, evs[len(evs)-1].Index)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	stored := make(map[int]bool)
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		if err := decodePage(data, func(e store.Event) { stored[e.Index] = true }); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(slices.Clone(evs), func(e store.Event) bool { return stored[e.Index] }), nil
}

// encoded is the pages of a call of AppendEvents, one after the other in a buffer
// that is reused once the call returned: the driver copies what it binds.
type encoded struct {
	buf  []byte
	ends []int // where each page ends in buf
	// The pages encoded on another goroutine, before they join buf (see
	// encodePages).
	tail     []byte
	tailEnds []int
}

// parallelBytes is the size of pages, about, from which encodePages encodes half of
// them on another goroutine: its caller, which waits for the write, is what a
// Recorder's writes wait for in turn (a Recorder writes one call after the other),
// and the cores often have room beside it. Below it, a goroutine costs more than it
// saves.
const parallelBytes = 16 << 10

// encodePages encodes each of pages, in a buffer of the size they take: the
// store's spare one (see Store.spare) if no other call has it.
func (s *Store) encodePages(pages [][]store.Event) *encoded {
	var enc *encoded
	select {
	case enc = <-s.spare:
	default:
		enc = new(encoded)
	}
	n := 0
	for _, evs := range pages {
		n += pageSize(evs)
	}
	enc.buf = slices.Grow(enc.buf[:0], n)
	enc.ends = enc.ends[:0]
	if n < parallelBytes || len(pages) < 2 {
		enc.buf, enc.ends = encodeAll(enc.buf, enc.ends, pages)
		return enc
	}
	// The pages from k on, about half the bytes, on another goroutine, unless this
	// one is done with the others first: on busy cores the other goroutine may
	// wait to be run for longer than the pages take. Whichever takes the pages
	// first encodes them; the other goroutine, if it lost, touches nothing and
	// ends at once.
	k, head := 0, 0
	for ; k < len(pages)-1 && head < n/2; k++ {
		head += pageSize(pages[k])
	}
	var taken atomic.Bool
	done := make(chan struct{})
	tail := func() {
		enc.tail, enc.tailEnds = encodeAll(slices.Grow(enc.tail[:0], n-head), enc.tailEnds[:0], pages[k:])
	}
	go func() {
		if taken.CompareAndSwap(false, true) {
			tail()
			close(done)
		}
	}()
	enc.buf, enc.ends = encodeAll(enc.buf, enc.ends, pages[:k])
	if taken.CompareAndSwap(false, true) {
		tail()
	} else {
		<-done
	}
	off := len(enc.buf)
	enc.buf = append(enc.buf, enc.tail...)
	for _, end := range enc.tailEnds {
		enc.ends = append(enc.ends, off+end)
	}
	return enc
}

// encodeAll appends each of pages to buf, and where each ends to ends.
func encodeAll(buf []byte, ends []int, pages [][]store.Event) ([]byte, []int) {
	for _, evs := range pages {
		buf = encodePage(buf, evs)
		ends = append(ends, len(buf))
	}
	return buf, ends
}

// page returns the i-th page.
func (enc *encoded) page(i int) []byte {
	start := 0
	if i > 0 {
		start = enc.ends[i-1]
	}
	return enc.buf[start:enc.ends[i]:enc.ends[i]]
}

// maxSpare is the largest buffer kept for another call: a rare large write does
// not pin its memory.
const maxSpare = 4 << 20

// release keeps enc for another call, unless the store keeps one already.
func (s *Store) release(enc *encoded) {
	if cap(enc.buf)+cap(enc.tail) > maxSpare {
		return
	}
	select {
	case s.spare <- enc:
	default:
	}
}

// pageSize returns the size of the page of evs, or a little more.
func pageSize(evs []store.Event) int {
	n := 0
	for _, e := range evs {
		// Five numbers of at most 20 bytes, six separators.
		n += 106 + len(e.Type) + len(e.Data)
	}
	return n
}

// A page holds its events one after the other, each as a header line and some
// bytes of its JSON (see migrations 0002 and 0008): either
//
//	idx<TAB>type<TAB>created_at<TAB>length<LF>
//
// followed by the event's JSON (length bytes), or, for an event whose JSON repeats
// much of the JSON of the event before it in the page (prev),
//
//	idx<TAB>type<TAB>created_at<TAB>length<TAB>prefix<TAB>suffix<LF>
//	idx<TAB>type<TAB>created_at<TAB>length<TAB>prefix<TAB>suffix<TAB>gap<TAB>from<TAB>copied<LF>
//
// followed by length bytes, lit: the JSON is prev[:prefix] + lit + prev[len(prev)-suffix:],
// or in the second form prev[:prefix] + lit[:gap] + prev[from:from+copied] + lit[gap:] +
// prev[len(prev)-suffix:]. The events of a run repeat most of their JSON (the ids
// and names of the run, its step and its agent) around what changes (the index, the
// content): a streamed chunk's event takes some 40 bytes and its chunk instead of
// some 320, and the writer's transactions and the file's checkpoints write that
// much less.

// diff is how an event's JSON is stored against prev, the JSON of the event before
// it in its page (see above).
type diff struct{ prefix, suffix, gap, from, copied int }

func (d diff) shared() int { return d.prefix + d.copied + d.suffix }

// minShared is the least number of bytes an event must share with the one before
// it to be stored as a diff, and minCopied the least a copy from the middle of the
// one before it must take: below them, the numbers of the header cost about what
// they save.
const (
	minShared = 32
	minCopied = 16
)

// maxGap bounds the bytes, after the prefix an event shares with the one before
// it, in which diffOf looks for where they agree again.
const maxGap = 8

// diffOf returns how to store cur against prev.
func diffOf(prev, cur []byte) diff {
	n := min(len(prev), len(cur))
	d := diff{prefix: commonPrefix(prev[:n], cur[:n])}
	a, b := prev[d.prefix:], cur[d.prefix:]
	if i, j, ok := resync(a, b); ok {
		k := min(len(a)-j, len(b)-i)
		if m := commonPrefix(a[j:j+k], b[i:i+k]); m >= minCopied {
			d.gap, d.from, d.copied = i, d.prefix+j, m
			a, b = a[j+m:], b[i+m:]
		}
	}
	d.suffix = commonSuffix(a, b)
	return d
}

// resync returns the first i and j, each at most maxGap, at which b[i:] and a[j:]
// begin with the same eight bytes, the smallest i+j first.
func resync(a, b []byte) (i, j int, ok bool) {
	// The eight bytes at each offset, each read once, as the search gets to it:
	// the two usually agree again a byte or two on.
	var wa, wb [maxGap + 1]uint64
	na, nb := min(len(a)-7, maxGap+1), min(len(b)-7, maxGap+1)
	for t := 0; t <= 2*maxGap; t++ {
		if t < na {
			wa[t] = binary.LittleEndian.Uint64(a[t:])
		}
		if t < nb {
			wb[t] = binary.LittleEndian.Uint64(b[t:])
		}
		for i := max(0, t-maxGap); i <= min(t, maxGap); i++ {
			if j := t - i; t > 0 && i < nb && j < na && wb[i] == wa[j] {
				return i, j, true
			}
		}
	}
	return 0, 0, false
}

// encodePage appends the page of evs to dst.
func encodePage(dst []byte, evs []store.Event) []byte {
	var prev []byte
	for _, e := range evs {
		dst = strconv.AppendInt(dst, int64(e.Index), 10)
		dst = append(dst, '\t')
		dst = append(dst, e.Type...)
		dst = append(dst, '\t')
		dst = strconv.AppendInt(dst, millis(e.CreatedAt), 10)
		d := diffOf(prev, e.Data)
		if d.shared() < minShared {
			d = diff{}
		}
		dst = appendNumbers(dst, len(e.Data)-d.shared())
		if d.shared() > 0 {
			dst = appendNumbers(dst, d.prefix, d.suffix)
		}
		if d.copied > 0 {
			dst = appendNumbers(dst, d.gap, d.from, d.copied)
		}
		dst = append(dst, '\n')
		lit := e.Data[d.prefix : len(e.Data)-d.suffix]
		dst = append(dst, lit[:d.gap]...)
		dst = append(dst, lit[d.gap+d.copied:]...)
		prev = e.Data
	}
	return dst
}

// appendNumbers appends each of ns after a tab.
func appendNumbers(dst []byte, ns ...int) []byte {
	for _, n := range ns {
		dst = append(dst, '\t')
		dst = strconv.AppendInt(dst, int64(n), 10)
	}
	return dst
}

// commonPrefix returns the length of the longest common prefix of a and b, which
// are as long as each other, comparing eight bytes at a time.
func commonPrefix(a, b []byte) int {
	i := 0
	for ; i+8 <= len(a); i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for i < len(a) && a[i] == b[i] {
		i++
	}
	return i
}

// commonSuffix returns the length of the longest common suffix of a and b.
func commonSuffix(a, b []byte) int {
	n := min(len(a), len(b))
	a, b = a[len(a)-n:], b[len(b)-n:]
	i := 0
	for ; i+8 <= n; i += 8 {
		if x := binary.BigEndian.Uint64(a[n-i-8:]) ^ binary.BigEndian.Uint64(b[n-i-8:]); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for i < n && a[n-1-i] == b[n-1-i] {
		i++
	}
	return i
}

// decodePage calls fn with each event of a page. The events' Data are copies.
func decodePage(page []byte, fn func(store.Event)) error {
	var prev []byte
	for len(page) > 0 {
		nl := bytes.IndexByte(page, '\n')
		if nl < 0 {
			return errBadPage
		}
		var f [9][]byte
		nf := 0
		for field := range bytes.SplitSeq(page[:nl], []byte{'\t'}) {
			if nf == len(f) {
				return errBadPage
			}
			f[nf] = field
			nf++
		}
		if nf != 4 && nf != 6 && nf != 9 {
			return errBadPage
		}
		idx, err1 := strconv.Atoi(string(f[0]))
		created, err2 := strconv.ParseInt(string(f[2]), 10, 64)
		var nums [6]int // length, then the diff's
		for k := range nf - 3 {
			n, err := strconv.Atoi(string(f[3+k]))
			if err != nil || n < 0 {
				return errBadPage
			}
			nums[k] = n
		}
		n, d := nums[0], diff{prefix: nums[1], suffix: nums[2], gap: nums[3], from: nums[4], copied: nums[5]}
		page = page[nl+1:]
		if err := errors.Join(err1, err2); err != nil || n > len(page) || d.gap > n ||
			d.prefix > len(prev) || d.suffix > len(prev)-d.prefix || d.from > len(prev) || d.copied > len(prev)-d.from ||
			// The parts an event shares with the one before never overlap (diffOf),
			// so it is never longer than that one and its own bytes: a damaged page
			// cannot make each event twice as large as the last.
			d.copied > 0 && (d.from < d.prefix || d.from+d.copied > len(prev)-d.suffix) {
			return errBadPage
		}
		lit := page[:n]
		data := make([]byte, 0, n+d.shared())
		data = append(data, prev[:d.prefix]...)
		data = append(data, lit[:d.gap]...)
		data = append(data, prev[d.from:d.from+d.copied]...)
		data = append(data, lit[d.gap:]...)
		data = append(data, prev[len(prev)-d.suffix:]...)
		fn(store.Event{Index: idx, Type: run.EventType(f[1]), CreatedAt: fromMillis(created), Data: data})
		page, prev = page[n:], data
	}
	return nil
}

// Events returns the events of a run from index from on, at most limit of them (all
// when limit is 0), in order.
func (s *Store) Events(ctx context.Context, runID string, from, limit int) ([]store.Event, error) {
	if err := s.begin(ctx); err != nil {
		return nil, s.fail("events of run "+runID, err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT data FROM event_pages
		WHERE run_id = ? AND last_idx >= ? ORDER BY last_idx`, runID, from)
	if err != nil {
		return nil, s.fail("events of run "+runID, err)
	}
	defer rows.Close()
	var evs []store.Event
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, s.fail("events of run "+runID, err)
		}
		err := decodePage(data, func(e store.Event) {
			if e.Index >= from {
				e.RunID = runID
				evs = append(evs, e)
			}
		})
		if err != nil {
			return nil, s.fail("events of run "+runID, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("events of run "+runID, err)
	}
	// Pages written to fill a gap interleave with later ones.
	slices.SortStableFunc(evs, func(a, b store.Event) int { return a.Index - b.Index })
	if limit > 0 && len(evs) > limit {
		evs = evs[:limit]
	}
	return evs, nil
}
