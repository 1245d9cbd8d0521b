package run

import (
	"strings"
	"unicode"
)

// Slug turns a name into an ID: lower case, letters and digits, words joined by "-".
// "Research Agent" becomes "research-agent".
func Slug(name string) string {
	if isSlug(name) {
		return name
	}
	var b strings.Builder
	b.Grow(len(name))
	dash := false
	for _, r := range name {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(unicode.ToLower(r))
		default:
			dash = true
		}
	}
	return b.String()
}

// isSlug reports whether Slug would return s unchanged, which is the common case for
// step names and saves an allocation per step.
func isSlug(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1 && s[i-1] != '-':
		default:
			return false
		}
	}
	return true
}
