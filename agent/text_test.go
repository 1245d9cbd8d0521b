package agent

import (
	"strings"
	"testing"
)

func TestText(t *testing.T) {
	tests := []struct {
		name   string
		pieces []string
	}{
		{"empty", nil},
		{"one word", []string{"word"}},
		{"a block exactly", []string{strings.Repeat("a", textBlock)}},
		{"a block and a byte", []string{strings.Repeat("a", textBlock), "b"}},
		{"one piece over three blocks", []string{strings.Repeat("abc", textBlock)}},
		{"many words", strings.Split(strings.Repeat("word ", 2000), " ")},
		{"multi-byte", strings.Split(strings.Repeat("é ü 世界 ", 700), " ")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got text
			var want strings.Builder
			for i, p := range tt.pieces {
				got.WriteString(p)
				want.WriteString(p)
				if got.Len() != want.Len() {
					t.Fatalf("after piece %d: Len %d, want %d", i, got.Len(), want.Len())
				}
				if i%500 == 499 { // joined midway, then written on
					if s := got.String(); s != want.String() {
						t.Fatalf("after piece %d: String differs from what was written", i)
					}
				}
			}
			for range 2 { // a second String, with nothing written since, is the same
				if s := got.String(); s != want.String() {
					t.Fatalf("String: %d bytes differing from the %d written", len(s), want.Len())
				}
			}
			got.Reset()
			if got.Len() != 0 || got.String() != "" {
				t.Fatalf("after Reset: Len %d, String %q", got.Len(), got.String())
			}
			got.WriteString("again")
			if got.String() != "again" {
				t.Fatalf("written after Reset: %q", got.String())
			}
		})
	}
}

// TestTextHoldsItsLength: a long answer streamed a word at a time is held in about
// its own length, where a strings.Builder holds up to twice it.
func TestTextHoldsItsLength(t *testing.T) {
	var tx text
	for range 100_000 {
		tx.WriteString("word ")
	}
	held := tx.last.Cap() + cap(tx.full)*16 // a string header is 16 bytes
	for _, s := range tx.full {
		held += len(s)
	}
	if held > tx.Len()+tx.Len()/16+2*textBlock {
		t.Fatalf("%d bytes of text held in %d", tx.Len(), held)
	}
	t.Logf("%d bytes held in %d", tx.Len(), held)
}
