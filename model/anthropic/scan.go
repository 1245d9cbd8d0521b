package anthropic

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// This file reads the few fields kern needs from the events that come once per
// token (content_block_delta, content_block_stop) without encoding/json, which costs
// several allocations and a microsecond per event. The scanner takes the common
// case, a well-formed object of valid UTF-8; for anything else it reports !ok and the
// caller decodes the event with encoding/json instead. Whatever the scanner takes,
// encoding/json reads the same way (FuzzScanDelta checks it); in particular, keys that
// match the wanted ones only when case is ignored, which encoding/json accepts, are
// left to it.

// deltaFields are the fields of a content_block_delta event kern uses.
type deltaFields struct {
	index   int
	typ     []byte // delta.type
	value   []byte // delta.text or delta.partial_json, still escaped unless !escaped
	escaped bool   // value holds backslash escapes
}

// scanDelta reads a content_block_delta's data. The returned slices alias data.
func scanDelta(data []byte) (d deltaFields, ok bool) {
	s := scanner{b: data}
	var text, partial field
	ok = s.object(func(key []byte) bool {
		switch string(key) {
		case "index":
			d.index, ok = s.integer()
			return ok
		case "delta":
			return s.object(func(key []byte) bool {
				switch string(key) {
				case "type":
					d.typ, _, ok = s.str()
					return ok
				case "text":
					return text.read(&s)
				case "partial_json":
					return partial.read(&s)
				}
				return !foldsTo(key, "type", "text", "partial_json") && s.skip()
			})
		}
		return !foldsTo(key, "index", "delta") && s.skip()
	})
	if !ok || !s.end() {
		return deltaFields{}, false
	}
	f := text
	if string(d.typ) == "input_json_delta" {
		f = partial
	}
	d.value, d.escaped = f.value, f.escaped
	return d, true
}

// scanIndex reads the index of a content_block_stop's data.
func scanIndex(data []byte) (index int, ok bool) {
	s := scanner{b: data}
	found := false
	ok = s.object(func(key []byte) bool {
		if string(key) != "index" {
			return !foldsTo(key, "index") && s.skip()
		}
		index, found = s.integer()
		return found
	})
	return index, ok && found && s.end()
}

// foldsTo reports whether key equals one of names when case is ignored.
func foldsTo(key []byte, names ...string) bool {
	for _, n := range names {
		if len(key) == len(n) && bytes.EqualFold(key, []byte(n)) {
			return true
		}
	}
	return false
}

// field is a string value read by the scanner.
type field struct {
	value   []byte
	escaped bool
}

func (f *field) read(s *scanner) bool {
	var ok bool
	f.value, f.escaped, ok = s.str()
	return ok
}

// scanner walks JSON text. Its methods report false for anything they do not take.
type scanner struct {
	b     []byte
	i     int
	depth int // of the skipped value being read
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips whitespace and consumes c if it comes next.
func (s *scanner) next(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end reports whether only whitespace is left.
func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// object reads an object, calling member for each key with the scanner before the
// value, which member must consume.
func (s *scanner) object(member func(key []byte) bool) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	for {
		s.ws()
		key, escaped, ok := s.str()
		if !ok || escaped || !s.next(':') {
			return false
		}
		s.ws()
		if !member(key) {
			return false
		}
		if s.next('}') {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}

// str reads a string and returns its contents without the quotes. It takes only
// valid UTF-8 and well-formed escapes.
func (s *scanner) str() (value []byte, escaped, ok bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false, false
	}
	start := s.i + 1
	ascii := true
	for i := start; i < len(s.b); i++ {
		c := s.b[i]
		switch {
		case c == '"':
			s.i = i + 1
			v := s.b[start:i]
			return v, escaped, ascii || utf8.Valid(v)
		case c == '\\':
			n := escapeLen(s.b[i:])
			if n == 0 {
				return nil, false, false
			}
			escaped = true
			i += n - 1
		case c < 0x20:
			return nil, false, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false, false
}

// escapeLen returns the length of the escape sequence b starts with, or 0 if it is
// not one.
func escapeLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if len(b) < 6 {
			return 0
		}
		for _, c := range b[2:6] {
			if hexVal(c) < 0 {
				return 0
			}
		}
		return 6
	}
	return 0
}

// integer reads a non-negative integer without fraction or exponent.
func (s *scanner) integer() (int, bool) {
	start, n := s.i, 0
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' && s.i-start < 9 {
		n = n*10 + int(s.b[s.i]-'0')
		s.i++
	}
	if s.i == start || (s.b[start] == '0' && s.i-start > 1) {
		return 0, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			return 0, false
		}
	}
	return n, true
}

// maxDepth bounds the nesting of the values the scanner skips.
const maxDepth = 64

// skip reads any value.
func (s *scanner) skip() bool {
	s.ws()
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"':
		_, _, ok := s.str()
		return ok
	case '{', '[':
		if s.depth == maxDepth {
			return false
		}
		s.depth++
		defer func() { s.depth-- }()
		if s.b[s.i] == '{' {
			return s.object(func([]byte) bool { return s.skip() })
		}
		return s.array()
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	return s.number()
}

// array reads an array, skipping its elements.
func (s *scanner) array() bool {
	if !s.next('[') {
		return false
	}
	if s.next(']') {
		return true
	}
	for {
		if !s.skip() {
			return false
		}
		if s.next(']') {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// number reads a JSON number.
func (s *scanner) number() bool {
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case !s.digits():
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if !s.digits() {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits reads one or more digits.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// unescape appends the contents of a JSON string, checked by scanner.str, to dst
// with its escapes decoded. A lone surrogate becomes U+FFFD, as encoding/json makes
// it.
func unescape(dst, src []byte) []byte {
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		switch src[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(src[i+1:])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 < len(src) && src[i+1] == '\\' && src[i+2] == 'u' {
					r2 = hex4(src[i+3:])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					i += 6
					r = dec
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, src[i])
		}
	}
	return dst
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r = r<<4 | rune(hexVal(c))
	}
	return r
}

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
