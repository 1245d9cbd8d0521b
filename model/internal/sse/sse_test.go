package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// event is a copied Event, comparable in tests.
type event struct {
	Type, Data, ID string
}

// readAll decodes every event from src and returns them with the error that ended the
// stream.
func readAll(src io.Reader, max int) ([]event, error) {
	r := NewReader(src)
	if max > 0 {
		r.max = max
	}
	var events []event
	for {
		ev, err := r.Next()
		if err != nil {
			return events, err
		}
		events = append(events, event{string(ev.Type), string(ev.Data), ev.ID})
	}
}

// chunkings are the ways the tests feed a stream to a Reader: whole, a byte at a time,
// in halves, and with the last bytes arriving together with io.EOF.
var chunkings = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"onebyte", iotest.OneByteReader},
	{"half", iotest.HalfReader},
	{"dataerr", iotest.DataErrReader},
}

func TestReaderFraming(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []event
		err  error
	}{
		{"empty stream", "", nil, io.EOF},
		{"one event", "event: a\ndata: x\n\n", []event{{"a", "x", ""}}, io.EOF},
		{"no event field", "data: x\n\n", []event{{"", "x", ""}}, io.EOF},
		{"openai responses", "event: response.created\ndata: {\"type\":\"response.created\"}\n\nevent: response.completed\ndata: {}\n\n",
			[]event{{"response.created", `{"type":"response.created"}`, ""}, {"response.completed", "{}", ""}}, io.EOF},
		{"chat done", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []event{{"", `{"a":1}`, ""}, {"", "[DONE]", ""}}, io.EOF},
		{"crlf", "event: a\r\ndata: x\r\n\r\n", []event{{"a", "x", ""}}, io.EOF},
		{"cr", "event: a\rdata: x\r\r", []event{{"a", "x", ""}}, io.EOF},
		{"mixed line ends", "data: a\r\ndata: b\rdata: c\n\r\n", []event{{"", "a\nb\nc", ""}}, io.EOF},
		{"cr then lf is one line end", "data: a\r\n\ndata: b\r\r\n", []event{{"", "a", ""}, {"", "b", ""}}, io.EOF},
		{"multi-line data", "data: a\ndata: b\ndata:\ndata: c\n\n", []event{{"", "a\nb\n\nc", ""}}, io.EOF},
		{"one space stripped", "data:  two\n\n", []event{{"", " two", ""}}, io.EOF},
		{"no space", "event:t\ndata:x\n\n", []event{{"t", "x", ""}}, io.EOF},
		{"trailing space kept", "data: x \n\n", []event{{"", "x ", ""}}, io.EOF},
		{"colon in value", "data: a: b\n\n", []event{{"", "a: b", ""}}, io.EOF},
		{"empty data dispatches", "data:\n\n", []event{{"", "", ""}}, io.EOF},
		{"data without colon", "data\n\n", []event{{"", "", ""}}, io.EOF},
		{"no data not dispatched", "event: a\n\ndata: x\n\n", []event{{"", "x", ""}}, io.EOF},
		{"comments ignored", ": ping\n\n:\ndata: x\n: mid\n\n", []event{{"", "x", ""}}, io.EOF},
		{"unknown fields ignored", "foo: bar\ndata : x\ndata: y\nDATA: z\n\n", []event{{"", "y", ""}}, io.EOF},
		{"last event field wins", "event: a\nevent: b\ndata: x\n\n", []event{{"b", "x", ""}}, io.EOF},
		{"type resets after dispatch", "event: a\ndata: 1\n\ndata: 2\n\n", []event{{"a", "1", ""}, {"", "2", ""}}, io.EOF},
		{"id persists", "id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n", []event{{"", "a", "1"}, {"", "b", "1"}, {"", "c", ""}}, io.EOF},
		{"id with nul ignored", "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", []event{{"", "a", "1"}, {"", "b", "1"}}, io.EOF},
		{"id from undispatched event", "id: 7\n\ndata: a\n\n", []event{{"", "a", "7"}}, io.EOF},
		{"bom stripped", "\xEF\xBB\xBFdata: x\n\n", []event{{"", "x", ""}}, io.EOF},
		{"only bom", "\xEF\xBB\xBF", nil, io.EOF},
		{"second bom kept", "\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\ndata: y\n\n", []event{{"", "y", ""}}, io.EOF},
		{"blank lines between events", "\n\n\ndata: x\n\n\n\n", []event{{"", "x", ""}}, io.EOF},
		{"trailing comment", "data: x\n\n: bye\n", []event{{"", "x", ""}}, io.EOF},
		{"utf-8 data", "data: héllo, 世界\n\n", []event{{"", "héllo, 世界", ""}}, io.EOF},

		// Truncated streams.
		{"no blank line", "data: x\n\ndata: y\n", []event{{"", "x", ""}}, io.ErrUnexpectedEOF},
		{"partial line", "data: x\n\ndata: y", []event{{"", "x", ""}}, io.ErrUnexpectedEOF},
		{"partial event field", "event: a\n", nil, io.ErrUnexpectedEOF},
		{"partial comment", "data: x\n\n: pi", []event{{"", "x", ""}}, io.ErrUnexpectedEOF},
		{"cr at end", "data: x\r", nil, io.ErrUnexpectedEOF},
		{"partial bom", "\xEF\xBB", nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		for _, c := range chunkings {
			t.Run(tt.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				got, err := readAll(c.wrap(strings.NewReader(tt.in)), 0)
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("events = %q, want %q", got, tt.want)
				}
				if err != tt.err {
					t.Errorf("err = %v, want %v", err, tt.err)
				}
			})
		}
	}
}

func TestReaderRetry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"retry: 1500\ndata: x\n\n", 1500 * time.Millisecond},
		{"retry: 1500\nretry: 1x\ndata: x\n\n", 1500 * time.Millisecond},
		{"retry:\ndata: x\n\n", 0},
		{"retry: -5\ndata: x\n\n", 0},
		{"retry: 99999999999999999999999\ndata: x\n\n", time.Duration(1<<63 - 1).Truncate(time.Millisecond)},
	}
	for _, tt := range tests {
		r := NewReader(strings.NewReader(tt.in))
		if _, err := r.Next(); err != nil {
			t.Fatalf("%q: Next: %v", tt.in, err)
		}
		if got := r.Retry(); got != tt.want {
			t.Errorf("%q: Retry() = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestReaderLongLine checks that a data line far longer than the first buffer, as a big
// tool-call argument makes, arrives whole.
func TestReaderLongLine(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB
	in := "event: a\ndata: " + long + "\n\ndata: after\n\n"
	for _, c := range chunkings[:3] { // one byte at a time is slow for 1 MiB
		got, err := readAll(c.wrap(strings.NewReader(in)), 0)
		want := []event{{"a", long, ""}, {"", "after", ""}}
		if !reflect.DeepEqual(got, want) || err != io.EOF {
			t.Errorf("%s: got %d events, err %v; want the long event, another and io.EOF", c.name, len(got), err)
		}
	}
}

func TestReaderTooLarge(t *testing.T) {
	t.Parallel()
	const max = 64
	fits := strings.Repeat("x", max-len("data: "))
	tests := []struct {
		name string
		in   string
		want []event
	}{
		{"line fits", "data: " + fits + "\n\n", []event{{"", fits, ""}}},
		{"line too long", "data: x\n\ndata: " + fits + "y\n\n", []event{{"", "x", ""}}},
		{"comment too long", ":" + strings.Repeat("c", max) + "\ndata: x\n\n", nil},
		{"data too long", "data: " + fits + "\ndata: " + fits + "\n\n", nil},
	}
	for _, tt := range tests {
		for _, c := range chunkings {
			got, err := readAll(c.wrap(strings.NewReader(tt.in)), max)
			wantErr := error(ErrTooLarge)
			if tt.name == "line fits" {
				wantErr = io.EOF
			}
			if !reflect.DeepEqual(got, tt.want) || err != wantErr {
				t.Errorf("%s/%s: got %q, %v; want %q, %v", tt.name, c.name, got, err, tt.want, wantErr)
			}
		}
	}
}

func TestReaderSourceError(t *testing.T) {
	t.Parallel()
	cut := errors.New("connection reset")
	src := io.MultiReader(strings.NewReader("data: x\n\ndata: y\n"), iotest.ErrReader(cut))
	r := NewReader(src)
	if ev, err := r.Next(); err != nil || string(ev.Data) != "x" {
		t.Fatalf("first Next = %q, %v; want x", ev.Data, err)
	}
	for range 2 { // the error sticks
		if _, err := r.Next(); err != cut {
			t.Fatalf("Next err = %v, want %v", err, cut)
		}
	}
}

func TestReaderNoProgress(t *testing.T) {
	t.Parallel()
	r := NewReader(zeroReader{})
	if _, err := r.Next(); err != io.ErrNoProgress {
		t.Fatalf("Next err = %v, want io.ErrNoProgress", err)
	}
}

// zeroReader returns no bytes and no error.
type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

// TestReaderAliasing checks that the bytes of an event stay put until the next call,
// even when the source's next read would overwrite the buffer.
func TestReaderAliasing(t *testing.T) {
	t.Parallel()
	r := NewReader(iotest.OneByteReader(strings.NewReader("event: a\ndata: one\n\nevent: b\ndata: two\n\n")))
	ev, err := r.Next()
	if err != nil || string(ev.Type) != "a" || string(ev.Data) != "one" {
		t.Fatalf("first event = %q %q, %v", ev.Type, ev.Data, err)
	}
	ev, err = r.Next()
	if err != nil || string(ev.Type) != "b" || string(ev.Data) != "two" {
		t.Fatalf("second event = %q %q, %v", ev.Type, ev.Data, err)
	}
}

// TestReaderHTTP reads events flushed one by one over a real connection, and tells a
// stream that ends cleanly from one whose connection is cut inside an event.
func TestReaderHTTP(t *testing.T) {
	t.Parallel()
	for _, cut := range []bool{false, true} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			rc := http.NewResponseController(w)
			for i := range 3 {
				fmt.Fprintf(w, "event: delta\ndata: {\"n\":%d}\n\n", i)
				rc.Flush()
			}
			if cut {
				io.WriteString(w, "event: delta\ndata: {\"n\":")
				rc.Flush()
				panic(http.ErrAbortHandler)
			}
		}))
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readAll(resp.Body, 0)
		resp.Body.Close()
		srv.Close()
		want := []event{{"delta", `{"n":0}`, ""}, {"delta", `{"n":1}`, ""}, {"delta", `{"n":2}`, ""}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("cut=%v: events = %q, want %q", cut, got, want)
		}
		if cut && !errors.Is(err, io.ErrUnexpectedEOF) || !cut && err != io.EOF {
			t.Errorf("cut=%v: err = %v", cut, err)
		}
	}
}

// reference decodes in as the spec's algorithm does, one line at a time over the whole
// input; FuzzReader holds Reader to it.
func reference(in string, max int) ([]event, error) {
	in = strings.TrimPrefix(in, utf8BOM)
	var (
		events           []event
		typ, data, id    string
		hasData, pending bool
	)
	for len(in) > 0 {
		i := strings.IndexAny(in, "\r\n")
		if i < 0 {
			if len(in) > max {
				return events, ErrTooLarge
			}
			return events, io.ErrUnexpectedEOF
		}
		line := in[:i]
		if in[i] == '\r' && i+1 < len(in) && in[i+1] == '\n' {
			in = in[i+2:]
		} else {
			in = in[i+1:]
		}
		if len(line) > max {
			return events, ErrTooLarge
		}
		switch {
		case line == "":
			if hasData {
				events = append(events, event{typ, data, id})
			}
			typ, data, hasData, pending = "", "", false, false
			continue
		case line[0] == ':':
			continue
		}
		pending = true
		name, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch name {
		case "event":
			typ = value
		case "data":
			if hasData {
				data += "\n"
			}
			data += value
			hasData = true
			if len(data) > max {
				return events, ErrTooLarge
			}
		case "id":
			if !strings.Contains(value, "\x00") {
				id = value
			}
		}
	}
	if pending {
		return events, io.ErrUnexpectedEOF
	}
	return events, io.EOF
}

func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"event: a\ndata: x\n\n",
		"data: a\r\ndata: b\rdata: c\n\r\n",
		": ping\n\nid: 1\nretry: 10\ndata\n\n",
		"\xEF\xBB\xBFdata: x\n\ndata: y",
		"event: response.output_text.delta\ndata: " + deltaJSON + "\n\n",
	} {
		f.Add([]byte(s))
	}
	const max = 256
	f.Fuzz(func(t *testing.T, in []byte) {
		want, wantErr := reference(string(in), max)
		for _, c := range chunkings {
			got, err := readAll(c.wrap(bytes.NewReader(in)), max)
			if err != wantErr || !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: got %q, %v; reference %q, %v", c.name, got, err, want, wantErr)
			}
		}
	})
}

// deltaJSON is a response.output_text.delta event of the OpenAI Responses API, as
// PROTOCOLS.md §1.5 and §1.7 show it.
const deltaJSON = `{"type":"response.output_text.delta","content_index":0,"delta":"Hel","item_id":"msg_68b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5","logprobs":[],"obfuscation":"KZu1MDybNUnQRm","output_index":0,"sequence_number":4}`

// repeatReader returns p over and over, as a long stream of identical events.
type repeatReader struct {
	p   []byte
	off int
}

func (r *repeatReader) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		c := copy(b[n:], r.p[r.off:])
		n += c
		r.off = (r.off + c) % len(r.p)
	}
	return n, nil
}

func benchmarkEvents(b *testing.B, raw string) {
	src := &repeatReader{p: []byte(raw)}
	r := NewReader(src)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReader decodes one OpenAI Responses text delta event per op.
func BenchmarkReader(b *testing.B) {
	benchmarkEvents(b, "event: response.output_text.delta\ndata: "+deltaJSON+"\n\n")
}

// BenchmarkReaderAnthropic decodes one Anthropic text delta event per op.
func BenchmarkReaderAnthropic(b *testing.B) {
	benchmarkEvents(b, "event: content_block_delta\r\n"+
		`data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"I'll check the current weather"}}`+"\r\n\r\n")
}

// BenchmarkReaderLarge decodes one event with 256 KiB of data per op.
func BenchmarkReaderLarge(b *testing.B) {
	benchmarkEvents(b, "event: response.completed\ndata: "+strings.Repeat("x", 256<<10)+"\n\n")
}

func ExampleReader() {
	stream := "event: response.output_text.delta\n" +
		`data: {"type":"response.output_text.delta","delta":"Hel"}` + "\n\n" +
		": keep-alive\n\n" +
		"event: response.completed\n" +
		`data: {"type":"response.completed"}` + "\n\n"
	r := NewReader(strings.NewReader(stream))
	for {
		ev, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println("stream cut:", err)
			return
		}
		fmt.Printf("%s %s\n", ev.Type, ev.Data)
	}
	// Output:
	// response.output_text.delta {"type":"response.output_text.delta","delta":"Hel"}
	// response.completed {"type":"response.completed"}
}
