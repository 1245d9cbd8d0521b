package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kern-dev/kern/run"
)

// FuzzSSEDecoder: whatever bytes a stream holds, the decoder never panics, ends
// (each event it returns consumed input; the stream's end is io.EOF, or
// io.ErrUnexpectedEOF inside an event), and every event it returns has a type and
// a non-negative index; an error it returns is ErrMalformed, ErrTooLarge or an
// end of input.
func FuzzSSEDecoder(f *testing.F) {
	for _, seed := range []string{
		"event: RunContent\nid: 3\ndata: {\"event\":\"RunContent\",\"run_id\":\"a\",\"event_index\":3,\"content\":\"hi\"}\n\n",
		": ping\n\nevent: WorkflowStarted\r\nid: 0\r\ndata: {\"event\":\"WorkflowStarted\",\"run_id\":\"w\"}\r\n\r\n",
		"data: {\"event\":\"RunContent\"}\ndata: {}\n\n",
		"id: -1\ndata: {\"event\":\"RunContent\"}\n\n",
		"event: A\ndata: {\"event\":\"B\"}\n\n",
		"data: {\"event\":\"RunContent\"",
		"event: RunContent\n\n\n",
		"data:\n\n",
		"id: 9\ndata: {\"event\":\"RunContent\",\"event_index\":8}\n\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		d := newDecoder(bytes.NewReader(stream))
		for calls := 0; ; calls++ {
			if calls > len(stream)+1 {
				t.Fatalf("%q: %d events from %d bytes", stream, calls, len(stream))
			}
			ev, err := d.next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("%q: error %v", stream, err)
				}
				return
			}
			if ev.Event == "" || ev.EventIndex < 0 {
				t.Fatalf("%q: event %+v", stream, ev)
			}
		}
	})
}

// FuzzSSERoundTrip: an event as kern writes it (its JSON on one data line, its
// type in the event line, its index as the id), with CRLF or LF line ends and a
// heartbeat before it, decodes to the same event.
func FuzzSSERoundTrip(f *testing.F) {
	f.Add("RunContent", "a1", "word ", "", "", 7, false)
	f.Add("WorkflowCancelled", "w1", "partial\ntext", "cancelled by request", "", 0, true)
	f.Add("WorkflowError", "w1", "", "", "boom \"quoted\" \u2028 \x00", 123456, false)
	f.Add("RunContent", "é中😀", "\xff\xfe", "", "", 1, true)
	f.Fuzz(func(t *testing.T, typ, runID, content, reason, msg string, index int, crlf bool) {
		if typ == "" || !utf8.ValidString(typ) || strings.ContainsAny(typ, "\r\n") || index < 0 { // kern's types are ASCII names
			return
		}
		want := &run.Event{Event: run.EventType(typ), RunID: runID, EventIndex: index, CreatedAt: 1764547200,
			Content: content, Reason: reason, Error: msg}
		data, err := want.AppendJSON(nil)
		if err != nil {
			return // an event kern would not send
		}
		nl := "\n"
		if crlf {
			nl = "\r\n"
		}
		frame := ": ping" + nl + nl + "event: " + typ + nl + "id: " + strconv.Itoa(index) + nl + "data: " + string(data) + nl + nl
		got, err := newDecoder(strings.NewReader(frame)).next()
		if err != nil {
			t.Fatalf("%q: %v", frame, err)
		}
		// Strings go through JSON: invalid UTF-8 comes back as U+FFFD, as
		// encoding/json has it.
		if got.Event != want.Event || got.RunID != viaJSON(runID) || got.EventIndex != index ||
			got.Content != viaJSON(content) || got.Reason != viaJSON(reason) || got.Error != viaJSON(msg) ||
			got.CreatedAt != want.CreatedAt {
			t.Fatalf("%q: decoded %+v, want %+v", frame, got, want)
		}
	})
}

// viaJSON returns s as encoding/json reads it back after writing it.
func viaJSON(s string) string {
	b, _ := json.Marshal(s)
	var back string
	json.Unmarshal(b, &back)
	return back
}
