package agent

import "strings"

// textBlock is the size of the blocks a long answer is kept in.
const textBlock = 1 << 10

// text is an answer as the model streams it. A strings.Builder keeps up to twice
// the answer's length and copies all of it at each doubling; text keeps a long
// answer in blocks of textBlock bytes, so that a run that streams for minutes
// holds its answer at about its length. The zero value is empty and ready to use.
type text struct {
	full []string        // the blocks filled, textBlock bytes each, or one joined by String
	n    int             // the bytes in full
	last strings.Builder // the block being filled
}

// WriteString appends s.
func (t *text) WriteString(s string) {
	for s != "" {
		if t.last.Len() >= textBlock {
			t.full = append(t.full, t.last.String())
			t.n += t.last.Len()
			t.last = strings.Builder{}
			t.last.Grow(textBlock)
		}
		k := min(textBlock-t.last.Len(), len(s))
		t.last.WriteString(s[:k])
		s = s[k:]
	}
}

// Len returns the length of the text in bytes.
func (t *text) Len() int { return t.n + t.last.Len() }

// Reset empties the text.
func (t *text) Reset() { *t = text{} }

// String returns the text. Joining the blocks costs a copy, which the text then
// keeps as its one block: asked again, with nothing written since, it costs none.
func (t *text) String() string {
	switch {
	case len(t.full) == 0:
		return t.last.String()
	case len(t.full) == 1 && t.last.Len() == 0:
		return t.full[0]
	}
	var b strings.Builder
	b.Grow(t.Len())
	for _, s := range t.full {
		b.WriteString(s)
	}
	b.WriteString(t.last.String())
	s := b.String()
	clear(t.full) // the blocks joined are not kept
	t.full = append(t.full[:0], s)
	t.n = len(s)
	t.last = strings.Builder{}
	return s
}
