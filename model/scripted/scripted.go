// Package scripted is a deterministic, offline implementation of model.Model for tests,
// examples and offline demos.
//
// A scripted Model is not a language model: it reads nothing of what it is asked except
// how many assistant turns the conversation already has, and answers with text and tool
// calls written in advance (or computed by a Go function). It streams them like a
// provider would, chunk by chunk, with optional pauses, and honours cancellation. It
// makes no network calls and logs nothing.
package scripted

import (
	"context"
	"encoding/json"
	"iter"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kern-dev/kern/model"
)

// Provider is the provider name a scripted Model reports.
const Provider = "scripted"

// Model is a scripted model.Model. Configure it as a struct literal; the zero value
// answers every request with an empty response.
//
// Turn selection is stateless: the answer to a request is Turns[n], where n is the
// number of assistant messages in the request, so after a tool round-trip the model
// answers with the next turn. Past the end of Turns the last turn repeats. One Model
// can therefore serve any number of concurrent streams, as long as its fields are not
// modified while they run.
//
// The last chunk of every response carries a Usage whose counts are made up, not
// measured by a tokenizer: InputTokens is the number of whitespace-separated words in
// the request's Instructions and in the Content of its messages; OutputTokens is the
// number of chunks the response yields.
type Model struct {
	// Turns are the answers, in conversation order.
	Turns []Turn
	// Respond, if set, computes the answer instead of Turns. It is called once per
	// range over a stream, with an empty request if Stream was given nil, and must be
	// safe for concurrent use if streams run concurrently.
	Respond func(req *model.Request) Turn
	// ChunkSize is the number of runes per streamed text chunk. Zero (or less) streams
	// one word per chunk: a word with the whitespace that follows it.
	ChunkSize int
	// Delay is the pause before each chunk after the first.
	Delay time.Duration
	// Stall is the pause before the first chunk.
	Stall time.Duration
	// ID is the model id ModelID reports; empty means "scripted".
	ID string
}

// Turn is one scripted answer: text, then tool calls. A tool call without an ID is
// given "call_<n>_<i>", where n is the number of assistant messages in the request and
// i the call's index in the turn; one without Arguments is given the empty object {}.
type Turn struct {
	Text      string
	ToolCalls []model.ToolCall
	// Reasoning, if set, is streamed in one chunk (Chunk.Reasoning) before the text.
	Reasoning string
	// Refusal, if set, is streamed in one chunk (Chunk.Refusal) after the text; the
	// finish reason is then model.FinishRefusal.
	Refusal string
}

// New returns a Model that answers every request with text.
func New(text string) *Model {
	return &Model{Turns: []Turn{{Text: text}}}
}

// Provider returns "scripted".
func (m *Model) Provider() string { return Provider }

// ModelID returns m.ID, or "scripted" if it is empty.
func (m *Model) ModelID() string {
	if m.ID == "" {
		return Provider
	}
	return m.ID
}

// Stream streams the turn chosen for req: its text in chunks, then, if it has tool
// calls, one chunk with all of them. The last chunk carries the usage and the finish
// reason (model.FinishToolCalls after tool calls, model.FinishStop otherwise).
//
// When ctx is cancelled, during a pause or between chunks, Stream yields ctx.Err() once
// and returns. Each range over the returned sequence replays the same response.
func (m *Model) Stream(ctx context.Context, req *model.Request) iter.Seq2[model.Chunk, error] {
	return func(yield func(model.Chunk, error) bool) {
		r := req
		if r == nil {
			r = &model.Request{}
		}
		n := assistantTurns(r)
		s := stream{ctx: ctx, yield: yield, stall: m.Stall, delay: m.Delay, input: inputWords(r), model: m.ModelID()}
		defer s.stopTimer()
		m.play(&s, n, m.turn(n, r))
	}
}

// turn returns the answer to the n-th assistant turn of req.
func (m *Model) turn(n int, req *model.Request) Turn {
	if m.Respond != nil {
		return m.Respond(req)
	}
	if len(m.Turns) == 0 {
		return Turn{}
	}
	return m.Turns[min(n, len(m.Turns)-1)]
}

// play sends t through s as the n-th assistant turn.
func (m *Model) play(s *stream, n int, t Turn) {
	if t.Reasoning != "" && !s.send(model.Chunk{Reasoning: t.Reasoning}) {
		return
	}
	var last model.Chunk
	reason := model.FinishStop
	switch {
	case t.Refusal != "":
		last.Refusal, reason = t.Refusal, model.FinishRefusal
	case len(t.ToolCalls) > 0:
		last.ToolCalls, reason = toolCalls(n, t.ToolCalls), model.FinishToolCalls
	}
	text := t.Text
	for text != "" {
		k := m.cut(text)
		c := model.Chunk{Text: text[:k]}
		text = text[k:]
		if text == "" && reason == model.FinishStop {
			s.finish(c, reason)
			return
		}
		if !s.send(c) {
			return
		}
	}
	s.finish(last, reason)
}

// cut returns the length in bytes of the first chunk of the non-empty text s.
func (m *Model) cut(s string) int {
	if m.ChunkSize <= 0 {
		return wordLen(s)
	}
	return runesLen(s, m.ChunkSize)
}

// stream is the state of one range over a Stream sequence.
type stream struct {
	model string // the model that answers, in the last chunk
	ctx   context.Context
	yield func(model.Chunk, error) bool
	stall time.Duration
	delay time.Duration
	timer *time.Timer // created on the first pause, reused for the others
	sent  int         // chunks yielded so far
	input int         // made-up input token count
}

// send pauses as configured, then yields c. It reports whether to go on: false once
// ctx is cancelled or the consumer stopped.
func (s *stream) send(c model.Chunk) bool {
	d := s.delay
	if s.sent == 0 {
		d = s.stall
	}
	if err := s.pause(d); err != nil {
		s.yield(model.Chunk{}, err)
		return false
	}
	s.sent++
	return s.yield(c, nil)
}

// finish sends c as the last chunk, with usage and finish reason.
func (s *stream) finish(c model.Chunk, reason model.FinishReason) {
	out := s.sent + 1
	c.FinishReason, c.Model = reason, s.model
	c.Usage = &model.Usage{InputTokens: s.input, OutputTokens: out, TotalTokens: s.input + out}
	s.send(c)
}

// pause waits d, or returns ctx's error as soon as ctx is cancelled. With d <= 0 it
// only checks ctx.
func (s *stream) pause(d time.Duration) error {
	done := s.ctx.Done()
	select {
	case <-done:
		return s.ctx.Err()
	default:
	}
	if d <= 0 {
		return nil
	}
	if s.timer == nil {
		s.timer = time.NewTimer(d)
	} else {
		s.timer.Reset(d)
	}
	select {
	case <-done:
		s.timer.Stop()
		return s.ctx.Err()
	case <-s.timer.C:
		return nil
	}
}

func (s *stream) stopTimer() {
	if s.timer != nil {
		s.timer.Stop()
	}
}

// toolCalls returns a copy of calls, the n-th assistant turn's, with IDs and
// Arguments filled in where missing.
func toolCalls(n int, calls []model.ToolCall) []model.ToolCall {
	out := make([]model.ToolCall, len(calls))
	for i, c := range calls {
		if c.ID == "" {
			c.ID = "call_" + strconv.Itoa(n) + "_" + strconv.Itoa(i)
		}
		if len(c.Arguments) == 0 {
			c.Arguments = json.RawMessage(`{}`)
		}
		out[i] = c
	}
	return out
}

// assistantTurns counts the assistant messages of req.
func assistantTurns(req *model.Request) int {
	n := 0
	for i := range req.Messages {
		if req.Messages[i].Role == model.RoleAssistant {
			n++
		}
	}
	return n
}

// inputWords is the made-up input token count of req: the whitespace-separated words
// of its instructions and message contents.
func inputWords(req *model.Request) int {
	n := countWords(req.Instructions)
	for i := range req.Messages {
		n += countWords(req.Messages[i].Content)
	}
	return n
}

func countWords(s string) int {
	n, inWord := 0, false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			inWord = false
		case !inWord:
			inWord = true
			n++
		}
	}
	return n
}

// wordLen returns the length in bytes of the first word chunk of s: any leading
// whitespace, one word, and the whitespace after it.
func wordLen(s string) int {
	i := skip(s, 0, true)
	i = skip(s, i, false)
	return skip(s, i, true)
}

// skip returns the index of the first rune at or after i in s that is whitespace if
// space is false, or not whitespace if space is true.
func skip(s string, i int, space bool) int {
	for i < len(s) {
		r, size := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		if unicode.IsSpace(r) != space {
			break
		}
		i += size
	}
	return i
}

// runesLen returns the length in bytes of the first n runes of s.
func runesLen(s string, n int) int {
	i := 0
	for ; n > 0 && i < len(s); n-- {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return i
}
