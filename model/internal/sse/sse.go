// Package sse decodes a stream of Server-Sent Events (text/event-stream), as the
// OpenAI and Anthropic streaming APIs send them.
//
// The framing follows the WHATWG HTML rules: lines end in "\n", "\r\n" or "\r"; a blank
// line dispatches the event; "event", "data", "id" and "retry" fields are understood,
// other fields and ":" comment lines are ignored; several data lines are joined with
// "\n"; an event without data is not dispatched; a leading byte order mark is skipped.
//
// Unlike a browser's EventSource, a Reader reports a stream that ends in the middle of
// an event as io.ErrUnexpectedEOF, so that a caller can tell a cut connection from a
// clean end. Decoding is allocation-free once the Reader's buffers have grown to the
// size of the stream's events.
package sse

import (
	"bytes"
	"errors"
	"io"
	"math"
	"time"
)

// MaxEventSize is the longest line, and the most data in one event, that a Reader
// accepts: 16 MiB.
const MaxEventSize = 16 << 20

// ErrTooLarge is returned by Reader.Next for a line or an event's data longer than
// MaxEventSize.
var ErrTooLarge = errors.New("sse: event larger than 16 MiB")

// initialBufSize is the Reader's first buffer; it grows as long lines need.
const initialBufSize = 8 << 10

// utf8BOM is the byte order mark a stream may start with.
const utf8BOM = "\xEF\xBB\xBF"

// Event is one dispatched event.
//
// Type and Data alias the Reader's buffers: they are valid only until the next call of
// Next. Copy them to keep them.
type Event struct {
	// Type is the value of the event's "event" field, or empty if it had none (a
	// browser's EventSource calls such an event "message").
	Type []byte
	// Data is the event's data lines joined with "\n". It may be empty: a lone
	// "data:" line makes an event with empty data.
	Data []byte
	// ID is the stream's last event ID: the value of the most recent "id" field, which
	// carries over to later events that do not set it.
	ID string
}

// Reader decodes events from an io.Reader. It does its own buffering, so it needs no
// bufio.Reader around the source. A Reader is not safe for concurrent use.
type Reader struct {
	src io.Reader
	max int // longest line or event data accepted

	// buf[r:w] holds bytes read from src and not yet parsed; buf[r:scan] is known to
	// hold no line end.
	buf     []byte
	r, w    int
	scan    int
	srcErr  error // src's error, acted on once the buffered bytes are parsed
	err     error // Next's error, returned again by every later call
	afterCR bool  // the last line ended in "\r", so a "\n" next belongs to it
	started bool  // the first line was read (and its BOM removed)

	// The event being assembled.
	typ     []byte
	data    []byte
	hasData bool // a data field was seen, even an empty one
	pending bool // a field line was read since the last blank line

	id    string
	retry time.Duration
}

// NewReader returns a Reader that decodes events from src.
func NewReader(src io.Reader) *Reader {
	return &Reader{src: src, max: MaxEventSize}
}

// Next returns the next event. At the end of the stream it returns io.EOF if the
// stream ended cleanly, between events, and io.ErrUnexpectedEOF if it ended in the
// middle of one (the partial event is dropped). It returns ErrTooLarge for an oversized
// event, and passes on any other error from the source unchanged. Once Next has
// returned an error it returns the same error on every later call.
func (r *Reader) Next() (Event, error) {
	if r.err != nil {
		return Event{}, r.err
	}
	r.typ, r.data, r.hasData = r.typ[:0], r.data[:0], false
	for {
		line, err := r.readLine()
		if err != nil {
			r.err = err
			return Event{}, err
		}
		if len(line) == 0 {
			r.pending = false
			if r.hasData {
				return Event{Type: r.typ, Data: r.data, ID: r.id}, nil
			}
			r.typ = r.typ[:0]
			continue
		}
		if err := r.field(line); err != nil {
			r.err = err
			return Event{}, err
		}
	}
}

// Retry returns the reconnection delay the stream last asked for in a "retry" field,
// or zero if it asked for none. The LLM APIs do not send one.
func (r *Reader) Retry() time.Duration {
	return r.retry
}

// field applies one non-blank line to the event being assembled.
func (r *Reader) field(line []byte) error {
	if line[0] == ':' {
		return nil // a comment
	}
	r.pending = true
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "event":
		r.typ = append(r.typ[:0], value...)
	case "data":
		if r.hasData {
			if len(r.data)+1+len(value) > r.max {
				return ErrTooLarge
			}
			r.data = append(r.data, '\n')
		}
		r.data = append(r.data, value...)
		r.hasData = true
	case "id":
		if bytes.IndexByte(value, 0) < 0 && string(value) != r.id {
			r.id = string(value)
		}
	case "retry":
		if ms, ok := parseDigits(value); ok {
			r.retry = time.Duration(ms) * time.Millisecond
		}
	}
	return nil
}

// parseDigits parses a non-empty string of ASCII digits, saturating at the largest
// number of milliseconds a time.Duration holds.
func parseDigits(b []byte) (int64, bool) {
	const limit = math.MaxInt64 / int64(time.Millisecond)
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = min(n*10+int64(c-'0'), limit)
	}
	return n, len(b) > 0
}

// readLine returns the next line without its line end. The line aliases r.buf and is
// valid until the next call.
func (r *Reader) readLine() ([]byte, error) {
	for {
		if r.afterCR && r.r < r.w {
			if r.buf[r.r] == '\n' {
				r.r++
			}
			r.afterCR = false
		}
		if !r.afterCR {
			if line, ok := r.cutLine(); ok {
				return line, nil
			}
		}
		if r.srcErr != nil {
			return nil, r.endErr()
		}
		if err := r.fill(); err != nil {
			return nil, err
		}
	}
}

// cutLine takes the first complete line out of the buffer, if there is one.
func (r *Reader) cutLine() ([]byte, bool) {
	r.scan = max(r.scan, r.r)
	s := r.buf[r.scan:r.w]
	i := bytes.IndexByte(s, '\n')
	if i >= 0 {
		s = s[:i]
	}
	if j := bytes.IndexByte(s, '\r'); j >= 0 {
		i = j
	}
	if i < 0 {
		r.scan = r.w
		return nil, false
	}
	end := r.scan + i
	line := r.buf[r.r:end]
	r.afterCR = r.buf[end] == '\r'
	r.r = end + 1
	r.scan = r.r
	if !r.started {
		r.started = true
		line = bytes.TrimPrefix(line, []byte(utf8BOM))
	}
	return line, true
}

// endErr is the error that ends the stream once src has failed and every complete
// line has been parsed.
func (r *Reader) endErr() error {
	if r.srcErr != io.EOF {
		return r.srcErr
	}
	rest := r.buf[r.r:r.w]
	if !r.started && string(rest) == utf8BOM {
		rest = nil
	}
	if len(rest) > r.max {
		return ErrTooLarge
	}
	if len(rest) > 0 || r.pending {
		return io.ErrUnexpectedEOF
	}
	return io.EOF
}

// fill reads more of src into the buffer, first moving the unparsed bytes to its
// start and growing it if a line fills it. A read error is kept in r.srcErr.
func (r *Reader) fill() error {
	if r.buf == nil {
		r.buf = make([]byte, min(initialBufSize, r.max+1))
	}
	if r.r > 0 {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.scan -= r.r
		r.r = 0
	}
	if r.w == len(r.buf) {
		// The buffer holds one unfinished line.
		if len(r.buf) > r.max {
			return ErrTooLarge
		}
		buf := make([]byte, min(2*len(r.buf), r.max+1))
		copy(buf, r.buf[:r.w])
		r.buf = buf
	}
	for range 100 {
		n, err := r.src.Read(r.buf[r.w:])
		if n < 0 || n > len(r.buf)-r.w {
			r.srcErr = errors.New("sse: source returned an invalid byte count")
			return nil
		}
		r.w += n
		if err != nil {
			r.srcErr = err
			return nil
		}
		if n > 0 {
			return nil
		}
	}
	r.srcErr = io.ErrNoProgress
	return nil
}
