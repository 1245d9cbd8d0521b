package scripted_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Both Model and its description are what agents expect of a provider.
var (
	_ model.Model     = (*scripted.Model)(nil)
	_ model.Describer = (*scripted.Model)(nil)
)

// result is everything one range over a stream produced.
type result struct {
	chunks []model.Chunk
	err    error
	errs   int // how many errors were yielded
	after  int // how many values were yielded after an error
}

func collect(ctx context.Context, m model.Model, req *model.Request) result {
	var r result
	for c, err := range m.Stream(ctx, req) {
		if r.errs > 0 {
			r.after++
		}
		if err != nil {
			r.err = err
			r.errs++
			continue
		}
		r.chunks = append(r.chunks, c)
	}
	return r
}

func texts(chunks []model.Chunk) []string {
	var out []string
	for _, c := range chunks {
		if c.Text != "" {
			out = append(out, c.Text)
		}
	}
	return out
}

func userRequest(text string) *model.Request {
	return &model.Request{Messages: []model.Message{{Role: model.RoleUser, Content: text}}}
}

func TestChunking(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		text string
		size int
		want []string
	}{
		{"words", "Hello, world! How are you?", 0, []string{"Hello, ", "world! ", "How ", "are ", "you?"}},
		{"words keep surrounding whitespace", "  a \t b\n\nc  ", 0, []string{"  a \t ", "b\n\n", "c  "}},
		{"whitespace only", " \n ", 0, []string{" \n "}},
		{"one word", "word", 0, []string{"word"}},
		{"unicode whitespace", "a\u00a0b\u3000c", 0, []string{"a\u00a0", "b\u3000", "c"}},
		{"negative size is words", "a b", -1, []string{"a ", "b"}},
		{"one rune", "héllo", 1, []string{"h", "é", "l", "l", "o"}},
		{"three runes multibyte", "日本語のテキスト", 3, []string{"日本語", "のテキ", "スト"}},
		{"emoji", "a😀b😀", 2, []string{"a😀", "b😀"}},
		{"size beyond text", "short", 100, []string{"short"}},
		{"invalid utf-8 byte is one rune", "a\xffb", 1, []string{"a", "\xff", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := &scripted.Model{Turns: []scripted.Turn{{Text: tt.text}}, ChunkSize: tt.size}
			r := collect(t.Context(), m, userRequest("hi"))
			if r.err != nil {
				t.Fatalf("err = %v", r.err)
			}
			got := texts(r.chunks)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("chunks = %q, want %q", got, tt.want)
			}
			if strings.Join(got, "") != tt.text {
				t.Errorf("chunks do not add up to the text")
			}
			for _, c := range got {
				if utf8.ValidString(tt.text) && !utf8.ValidString(c) {
					t.Errorf("chunk %q splits a rune", c)
				}
			}
		})
	}
}

func TestTurnSelection(t *testing.T) {
	t.Parallel()
	m := &scripted.Model{Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{
			{Name: "weather", Arguments: json.RawMessage(`{"city":"Oslo"}`)},
			{ID: "mine", Name: "time"},
		}},
		{Text: "It is cold."},
		{Text: "Bye."},
	}}
	call := []model.ToolCall{{ID: "call_0_0", Name: "weather"}}
	tests := []struct {
		name     string
		messages []model.Message
		want     scripted.Turn
	}{
		{"first turn", []model.Message{
			{Role: model.RoleUser, Content: "Weather in Oslo?"},
		}, scripted.Turn{ToolCalls: []model.ToolCall{
			{ID: "call_0_0", Name: "weather", Arguments: json.RawMessage(`{"city":"Oslo"}`)},
			{ID: "mine", Name: "time", Arguments: json.RawMessage(`{}`)},
		}}},
		{"after tool round-trip", []model.Message{
			{Role: model.RoleUser, Content: "Weather in Oslo?"},
			{Role: model.RoleAssistant, ToolCalls: call},
			{Role: model.RoleTool, ToolCallID: "call_0_0", ToolName: "weather", Content: "-3C"},
		}, scripted.Turn{Text: "It is cold."}},
		{"last turn", []model.Message{
			{Role: model.RoleAssistant, ToolCalls: call},
			{Role: model.RoleAssistant, Content: "It is cold."},
			{Role: model.RoleUser, Content: "Thanks"},
		}, scripted.Turn{Text: "Bye."}},
		{"past the end repeats the last turn", []model.Message{
			{Role: model.RoleAssistant}, {Role: model.RoleAssistant},
			{Role: model.RoleAssistant}, {Role: model.RoleAssistant},
		}, scripted.Turn{Text: "Bye."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := collect(t.Context(), m, &model.Request{Messages: tt.messages})
			if r.err != nil {
				t.Fatalf("err = %v", r.err)
			}
			got := scripted.Turn{Text: strings.Join(texts(r.chunks), "")}
			for _, c := range r.chunks {
				got.ToolCalls = append(got.ToolCalls, c.ToolCalls...)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("turn = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestToolCallIDsFollowTheTurn(t *testing.T) {
	t.Parallel()
	m := &scripted.Model{Turns: []scripted.Turn{{ToolCalls: []model.ToolCall{{Name: "a"}, {Name: "b"}}}}}
	req := &model.Request{Messages: []model.Message{{Role: model.RoleAssistant}, {Role: model.RoleAssistant}}}
	r := collect(t.Context(), m, req)
	calls := r.chunks[len(r.chunks)-1].ToolCalls
	if len(calls) != 2 || calls[0].ID != "call_2_0" || calls[1].ID != "call_2_1" {
		t.Errorf("calls = %+v, want IDs call_2_0 and call_2_1", calls)
	}
	if m.Turns[0].ToolCalls[0].ID != "" || m.Turns[0].ToolCalls[0].Arguments != nil {
		t.Errorf("Stream modified the script: %+v", m.Turns[0].ToolCalls[0])
	}
}

func TestLastChunk(t *testing.T) {
	t.Parallel()
	calls := []model.ToolCall{{ID: "c1", Name: "search", Arguments: json.RawMessage(`{"q":"go"}`)}}
	tests := []struct {
		name       string
		turn       scripted.Turn
		wantChunks int
		wantText   string
		wantReason model.FinishReason
	}{
		{"text", scripted.Turn{Text: "one two three"}, 3, "three", model.FinishStop},
		{"empty", scripted.Turn{}, 1, "", model.FinishStop},
		{"tool calls", scripted.Turn{ToolCalls: calls}, 1, "", model.FinishToolCalls},
		{"text then tool calls", scripted.Turn{Text: "Let me look.", ToolCalls: calls}, 4, "", model.FinishToolCalls},
	}
	req := &model.Request{
		Instructions: "Be brief.",
		Messages: []model.Message{
			{Role: model.RoleUser, Content: "  find\tgo  docs "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := &scripted.Model{Turns: []scripted.Turn{tt.turn}}
			r := collect(t.Context(), m, req)
			if r.err != nil {
				t.Fatalf("err = %v", r.err)
			}
			if len(r.chunks) != tt.wantChunks {
				t.Fatalf("got %d chunks, want %d: %+v", len(r.chunks), tt.wantChunks, r.chunks)
			}
			for _, c := range r.chunks[:len(r.chunks)-1] {
				if c.Usage != nil || c.FinishReason != "" || c.ToolCalls != nil {
					t.Errorf("chunk before the last has %+v", c)
				}
			}
			last := r.chunks[len(r.chunks)-1]
			if last.Text != tt.wantText || last.FinishReason != tt.wantReason {
				t.Errorf("last chunk = %+v, want text %q, reason %q", last, tt.wantText, tt.wantReason)
			}
			if (tt.wantReason == model.FinishToolCalls) != (len(last.ToolCalls) > 0) {
				t.Errorf("last chunk tool calls = %+v with reason %q", last.ToolCalls, last.FinishReason)
			}
			// Input: "Be brief." and "find go docs" are 5 words; output: one per chunk.
			want := model.Usage{InputTokens: 5, OutputTokens: tt.wantChunks, TotalTokens: 5 + tt.wantChunks}
			if last.Usage == nil || *last.Usage != want {
				t.Errorf("usage = %+v, want %+v", last.Usage, want)
			}
		})
	}
}

func TestZeroValueAndNilRequest(t *testing.T) {
	t.Parallel()
	var m scripted.Model
	r := collect(t.Context(), &m, nil)
	want := []model.Chunk{{FinishReason: model.FinishStop, Model: "scripted", Usage: &model.Usage{OutputTokens: 1, TotalTokens: 1}}}
	if r.err != nil || !reflect.DeepEqual(r.chunks, want) {
		t.Errorf("got %+v, %v; want %+v", r.chunks, r.err, want)
	}
}

func TestDescriber(t *testing.T) {
	t.Parallel()
	tests := []struct {
		m      *scripted.Model
		wantID string
	}{
		{&scripted.Model{}, "scripted"},
		{scripted.New("hi"), "scripted"},
		{&scripted.Model{ID: "demo-1"}, "demo-1"},
	}
	for _, tt := range tests {
		if got := tt.m.Provider(); got != "scripted" {
			t.Errorf("Provider() = %q", got)
		}
		if got := tt.m.ModelID(); got != tt.wantID {
			t.Errorf("ModelID() = %q, want %q", got, tt.wantID)
		}
	}
}

func TestRespond(t *testing.T) {
	t.Parallel()
	m := &scripted.Model{
		Turns: []scripted.Turn{{Text: "ignored"}},
		Respond: func(req *model.Request) scripted.Turn {
			last := req.Messages[len(req.Messages)-1]
			return scripted.Turn{Text: "You said: " + last.Content}
		},
	}
	r := collect(t.Context(), m, userRequest("hello there"))
	if got := strings.Join(texts(r.chunks), ""); r.err != nil || got != "You said: hello there" {
		t.Errorf("got %q, %v", got, r.err)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	const long = time.Hour // a test that waited for it would time out
	errCause := errors.New("user pressed stop")
	tests := []struct {
		name string
		m    *scripted.Model
		// cancel is called after the given number of chunks; -1 means before Stream.
		after      int
		background bool // cancel from another goroutine rather than in the loop
		cause      error
		wantChunks int
	}{
		{"before stream, no pauses", &scripted.Model{Turns: []scripted.Turn{{Text: "a b c"}}}, -1, false, nil, 0},
		{"before stream, long stall", &scripted.Model{Turns: []scripted.Turn{{Text: "a b c"}}, Stall: long}, -1, false, nil, 0},
		{"during stall", &scripted.Model{Turns: []scripted.Turn{{Text: "a b c"}}, Stall: long}, -1, true, nil, 0},
		{"between chunks, no pauses", &scripted.Model{Turns: []scripted.Turn{{Text: "a b c"}}}, 1, false, nil, 1},
		{"during delay", &scripted.Model{Turns: []scripted.Turn{{Text: "a b c"}}, Delay: long}, 1, true, nil, 1},
		{"before tool calls", &scripted.Model{Turns: []scripted.Turn{{Text: "a", ToolCalls: []model.ToolCall{{Name: "t"}}}}, Delay: long}, 1, true, nil, 1},
		{"with a cause", &scripted.Model{Turns: []scripted.Turn{{Text: "a b c"}}, Delay: long}, 1, true, errCause, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancelCause(t.Context())
			defer cancel(nil)
			var wg sync.WaitGroup
			defer wg.Wait()
			stop := func() {
				if tt.background {
					wg.Go(func() { cancel(tt.cause) })
					return
				}
				cancel(tt.cause)
			}
			if tt.after < 0 {
				stop()
			}
			var r result
			for c, err := range tt.m.Stream(ctx, userRequest("hi")) {
				if r.errs > 0 {
					r.after++
				}
				if err != nil {
					r.err, r.errs = err, r.errs+1
					continue
				}
				r.chunks = append(r.chunks, c)
				if len(r.chunks) == tt.after {
					stop()
				}
			}
			if !errors.Is(r.err, context.Canceled) || r.errs != 1 || r.after != 0 {
				t.Errorf("err = %v (%d errors, %d values after it), want context.Canceled once", r.err, r.errs, r.after)
			}
			if len(r.chunks) != tt.wantChunks {
				t.Errorf("got %d chunks before the error, want %d", len(r.chunks), tt.wantChunks)
			}
			if tt.cause != nil && !errors.Is(context.Cause(ctx), tt.cause) {
				t.Errorf("cause = %v", context.Cause(ctx))
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithDeadline(t.Context(), time.Unix(0, 0))
	defer cancel()
	r := collect(ctx, &scripted.Model{Turns: []scripted.Turn{{Text: "a"}}, Stall: time.Hour}, nil)
	if !errors.Is(r.err, context.DeadlineExceeded) || len(r.chunks) != 0 {
		t.Errorf("got %d chunks, err %v; want context.DeadlineExceeded", len(r.chunks), r.err)
	}
}

func TestPauses(t *testing.T) {
	t.Parallel()
	// Short pauses end and the stream completes; no timing is asserted.
	m := &scripted.Model{Turns: []scripted.Turn{{Text: "a b c"}}, Stall: time.Microsecond, Delay: time.Microsecond}
	r := collect(t.Context(), m, nil)
	if got := strings.Join(texts(r.chunks), ""); r.err != nil || got != "a b c" {
		t.Errorf("got %q, %v", got, r.err)
	}
}

func TestStopEarly(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		turn scripted.Turn
	}{
		{"text", t.Context(), scripted.Turn{Text: "a b c"}},
		{"last text chunk", t.Context(), scripted.Turn{Text: "a"}},
		{"tool calls", t.Context(), scripted.Turn{ToolCalls: []model.ToolCall{{Name: "t"}}}},
		{"text then tool calls", t.Context(), scripted.Turn{Text: "a", ToolCalls: []model.ToolCall{{Name: "t"}}}},
		{"error", cancelled, scripted.Turn{Text: "a b c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := &scripted.Model{Turns: []scripted.Turn{tt.turn}, Delay: time.Hour}
			// A range loop that breaks panics if yield is called again; count the
			// calls too.
			calls := 0
			m.Stream(tt.ctx, nil)(func(model.Chunk, error) bool {
				calls++
				return false
			})
			if calls != 1 {
				t.Errorf("yield called %d times after returning false", calls-1)
			}
			for range m.Stream(tt.ctx, nil) {
				break
			}
		})
	}
}

func TestReplay(t *testing.T) {
	t.Parallel()
	seq := scripted.New("same every time").Stream(t.Context(), userRequest("hi"))
	var first []string
	for range 3 {
		var got []string
		for c, err := range seq {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, c.Text)
		}
		if first == nil {
			first = got
		} else if !reflect.DeepEqual(got, first) {
			t.Errorf("replay = %q, want %q", got, first)
		}
	}
}

func TestConcurrentStreams(t *testing.T) {
	t.Parallel()
	m := &scripted.Model{
		Turns: []scripted.Turn{
			{Text: "Calling.", ToolCalls: []model.ToolCall{{Name: "t"}}},
			{Text: "Done with the tool."},
		},
		ChunkSize: 3,
		Delay:     time.Microsecond,
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range cap(errs) {
		wg.Go(func() {
			req := userRequest("go")
			want := "Calling."
			if i%2 == 1 {
				req.Messages = append(req.Messages, model.Message{Role: model.RoleAssistant})
				want = "Done with the tool."
			}
			r := collect(t.Context(), m, req)
			if got := strings.Join(texts(r.chunks), ""); r.err != nil || got != want {
				errs <- fmt.Errorf("stream %d: got %q, %v; want %q", i, got, r.err, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestAllocationsDoNotGrowWithChunks(t *testing.T) {
	// Not parallel: AllocsPerRun measures the whole process.
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	allocs := func(text string) float64 {
		m := scripted.New(text)
		req := userRequest("hi")
		return testing.AllocsPerRun(100, func() {
			for _, err := range m.Stream(context.Background(), req) {
				if err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	one, many := allocs("word"), allocs(strings.Repeat("word ", 100))
	if many != one {
		t.Errorf("a 100-chunk stream allocates %v times, a 1-chunk stream %v times", many, one)
	}
}

func Example() {
	m := &scripted.Model{Turns: []scripted.Turn{
		{Text: "Let me check.", ToolCalls: []model.ToolCall{
			{Name: "weather", Arguments: json.RawMessage(`{"city":"Oslo"}`)},
		}},
		{Text: "It is -3°C in Oslo."},
	}}
	req := &model.Request{Messages: []model.Message{{Role: model.RoleUser, Content: "Weather in Oslo?"}}}
	for range 2 {
		answer := model.Message{Role: model.RoleAssistant}
		for c, err := range m.Stream(context.Background(), req) {
			if err != nil {
				fmt.Println("error:", err)
				return
			}
			if c.Text != "" {
				fmt.Printf("%q ", c.Text)
			}
			for _, call := range c.ToolCalls {
				fmt.Printf("%s:%s%s ", call.ID, call.Name, call.Arguments)
			}
			if c.Usage != nil {
				fmt.Printf("[%s, %d in, %d out]\n", c.FinishReason, c.Usage.InputTokens, c.Usage.OutputTokens)
			}
			answer.Content += c.Text
			answer.ToolCalls = append(answer.ToolCalls, c.ToolCalls...)
		}
		req.Messages = append(req.Messages, answer)
		for _, call := range answer.ToolCalls {
			req.Messages = append(req.Messages, model.Message{
				Role: model.RoleTool, ToolCallID: call.ID, ToolName: call.Name, Content: "-3°C",
			})
		}
	}
	// Output:
	// "Let " "me " "check." call_0_0:weather{"city":"Oslo"} [tool_calls, 3 in, 4 out]
	// "It " "is " "-3°C " "in " "Oslo." [stop, 7 in, 5 out]
}

func ExampleNew() {
	m := scripted.New("Hello from a scripted model.")
	for c, err := range m.Stream(context.Background(), &model.Request{}) {
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Printf("%q ", c.Text)
	}
	fmt.Println()
	// Output:
	// "Hello " "from " "a " "scripted " "model."
}

func BenchmarkStream(b *testing.B) {
	const chunks = 20
	m := scripted.New(strings.Repeat("word ", chunks))
	req := userRequest("benchmark the scripted model")
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, err := range m.Stream(ctx, req) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != chunks {
			b.Fatalf("got %d chunks, want %d", n, chunks)
		}
	}
	runtime.ReadMemStats(&after)
	total := float64(b.N * chunks)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/chunk")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/chunk")
}
