package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"net/url"
	"strconv"

	"github.com/kern-dev/kern/run"
)

// MaxEventSize is the longest line, and the most data in one event, a stream may
// send: 16 MiB.
const MaxEventSize = 16 << 20

var (
	// ErrMalformed is wrapped by the error of an event that cannot be read: data
	// that is not an event's JSON, an id that is not an event index, an event line
	// that disagrees with the data.
	ErrMalformed = errors.New("client: malformed event")
	// ErrTooLarge is wrapped by the error of a line or event over MaxEventSize.
	ErrTooLarge = errors.New("client: event over 16 MiB")
)

// events sends a request whose answer is a run's event stream and yields its
// events up to the terminal event of the run runID ("": of the run of the first
// event).
func (c *Client) events(ctx context.Context, method, path string, form url.Values, header http.Header, runID string) iter.Seq2[*run.Event, error] {
	return func(yield func(*run.Event, error) bool) {
		h := http.Header{"Accept": {"text/event-stream"}}
		for k, vs := range header {
			h[k] = vs
		}
		resp, err := c.send(ctx, method, path, form, h)
		if err != nil {
			yield(nil, err)
			return
		}
		// Closing the body ends the request: on a break, a cancelled ctx or an error.
		defer resp.Body.Close()
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
			yield(nil, fmt.Errorf("client: %s %s: answered %q, not an event stream", method, path, mt))
			return
		}
		d := newDecoder(resp.Body)
		top := runID // per loop: each loop over a Stream starts a run of its own
		for {
			ev, err := d.next()
			if err != nil {
				switch {
				case ctx.Err() != nil:
					err = ctx.Err()
				case errors.Is(err, io.EOF):
					err = fmt.Errorf("the stream ended before the run's terminal event: %w", io.ErrUnexpectedEOF)
				}
				yield(nil, fmt.Errorf("client: %s %s: %w", method, path, err))
				return
			}
			if top == "" {
				top = ev.RunID
			}
			// A pause ends the stream as the run's end does: the run goes on when
			// it is continued, in a stream of its own.
			if !yield(ev, nil) || ((ev.Event.Terminal() || ev.Event.Pauses()) && ev.RunID == top) {
				return
			}
		}
	}
}

// readSize is a stream's read buffer: most events fit; longer lines are put
// together in decoder.long.
const readSize = 1 << 10

// decoder reads the events of a server-sent event stream as kern sends them
// (WHATWG framing: "event", "id" and "data" fields, ":" comments, a blank line
// ending an event; lines end in "\n" or "\r\n").
type decoder struct {
	r    *bufio.Reader
	long []byte // a line longer than r's buffer
	data []byte // the event's data lines, joined with "\n"
	name []byte // its event field
	id   []byte // its id field
	n    int    // events read, for messages
	last recent // the last events' ids and names, shared with the next ones
}

func newDecoder(r io.Reader) *decoder {
	return &decoder{r: bufio.NewReaderSize(r, readSize)}
}

// next returns the next event; io.EOF when the stream ended between events.
func (d *decoder) next() (*run.Event, error) {
	name, id := d.name[:0], d.id[:0]
	defer func() { d.name, d.id = name, id }() // keep the buffers for the next event
	hasData, hasID, pending := false, false, false
	d.data = d.data[:0]
	for {
		line, err := d.line()
		if err != nil {
			if errors.Is(err, io.EOF) && pending {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(line) == 0 {
			if hasData {
				return d.decode(name, id, hasID)
			}
			name, hasID, pending = nil, false, false // an event without data is not one
			continue
		}
		if line[0] == ':' {
			continue // a comment: the ": ping" heartbeat
		}
		pending = true
		field, value, _ := bytes.Cut(line, []byte{':'})
		value = bytes.TrimPrefix(value, []byte{' '})
		switch string(field) {
		case "event":
			name = append(name[:0], value...)
		case "id":
			id, hasID = append(id[:0], value...), true
		case "data":
			if hasData {
				d.data = append(d.data, '\n')
			}
			if len(d.data)+len(value) > MaxEventSize {
				return nil, fmt.Errorf("%w: event #%d", ErrTooLarge, d.n)
			}
			d.data, hasData = append(d.data, value...), true
		}
	}
}

// decode makes the event of one frame.
func (d *decoder) decode(name, id []byte, hasID bool) (*run.Event, error) {
	d.n++
	ev, err := decodeEvent(d.data, &d.last)
	if err != nil {
		return nil, fmt.Errorf("%w #%d (%s): data: %v", ErrMalformed, d.n-1, name, err)
	}
	if len(name) > 0 {
		if ev.Event == "" {
			ev.Event = run.EventType(name)
		} else if string(ev.Event) != string(name) {
			return nil, fmt.Errorf("%w #%d: event: %s, but its data says %s", ErrMalformed, d.n-1, name, ev.Event)
		}
	}
	if ev.Event == "" {
		return nil, fmt.Errorf("%w #%d: no event type", ErrMalformed, d.n-1)
	}
	if hasID {
		// The id is the event's index: it wins over an event_index the data lacks.
		i, err := strconv.Atoi(string(id))
		if err != nil || i < 0 {
			return nil, fmt.Errorf("%w #%d (%s): id %q is not an event index", ErrMalformed, d.n-1, ev.Event, id)
		}
		if ev.EventIndex != 0 && ev.EventIndex != i {
			return nil, fmt.Errorf("%w #%d (%s): id %d, but its data says event_index %d", ErrMalformed, d.n-1, ev.Event, i, ev.EventIndex)
		}
		ev.EventIndex = i
	}
	return ev, nil
}

// line returns the next line without its end; it is valid until the next call.
func (d *decoder) line() ([]byte, error) {
	line, err := d.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		d.long = append(d.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = d.r.ReadSlice('\n')
			if len(d.long)+len(line) > MaxEventSize+len("data: \r\n") {
				return nil, fmt.Errorf("%w: a line of event #%d", ErrTooLarge, d.n)
			}
			d.long = append(d.long, line...)
		}
		line = d.long
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF // cut in the middle of a line
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}
