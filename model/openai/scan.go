package openai

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// The functions below read one field of a JSON object without decoding all of it. They
// are the fast path for the frequent delta events; whatever they do not recognise
// with certainty, they report as not found, and the caller decodes the event with
// encoding/json instead.

// leadingType returns the value of the "type" key when it is the first key of the
// object in data, as OpenAI writes its events.
func leadingType(data []byte) ([]byte, bool) {
	const prefix = `{"type":"`
	if !bytes.HasPrefix(data, []byte(prefix)) {
		return nil, false
	}
	rest := data[len(prefix):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return nil, false
	}
	return rest[:end], true
}

// stringField returns the string value of the first occurrence of key (given with its
// quotes and colon, such as `"delta":`) in data. A key in quotes followed by a colon
// cannot occur inside a JSON string, where quotes are escaped, so the match is a key;
// the caller must know that no earlier nested object has a key of that name.
func stringField(data []byte, key string) (string, bool) {
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return "", false
	}
	s, _, ok := jsonString(data[i+len(key):])
	return s, ok
}

// jsonString decodes the JSON string at the start of v and returns it with its length
// in v. It fails for anything but a string, including a string after whitespace.
func jsonString(v []byte) (s string, n int, ok bool) {
	if len(v) == 0 || v[0] != '"' {
		return "", 0, false
	}
	for j := 1; j < len(v); j++ {
		switch c := v[j]; {
		case c == '"':
			if !utf8.Valid(v[1:j]) {
				return decodeString(v)
			}
			return string(v[1:j]), j + 1, true
		case c == '\\':
			return decodeString(v)
		case c < 0x20:
			return "", 0, false
		}
	}
	return "", 0, false
}

// decodeString decodes the JSON string at the start of v, which needs encoding/json:
// it has escapes or invalid UTF-8.
func decodeString(v []byte) (string, int, bool) {
	for end := 1; end < len(v); end++ {
		switch v[end] {
		case '\\':
			end++
		case '"':
			var s string
			if json.Unmarshal(v[:end+1], &s) != nil {
				return "", 0, false
			}
			return s, end + 1, true
		}
	}
	return "", 0, false
}

// chatContent returns the text of a Chat Completions chunk that holds nothing but a
// text delta of choice 0, as most chunks of an answer do:
//
//	{"id":…,"choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":null,…}
//
// It fails for any other chunk, or any other layout of this one.
func chatContent(data []byte) (string, bool) {
	if bytes.Contains(data, []byte(`"error":`)) {
		return "", false
	}
	if i := bytes.Index(data, []byte(`"usage":`)); i >= 0 && !bytes.HasPrefix(data[i+len(`"usage":`):], []byte("null")) {
		return "", false
	}
	const choices = `"choices":[{`
	i := bytes.Index(data, []byte(choices))
	if i < 0 {
		return "", false
	}
	c := cursor{b: data, i: i + len(choices)}
	var text string
	for first := true; !c.lit("}"); first = false {
		if !first && !c.lit(",") {
			return "", false
		}
		var ok bool
		switch string(c.key()) {
		case `"index":`:
			ok = c.lit("0")
		case `"logprobs":`, `"finish_reason":`:
			ok = c.lit("null")
		case `"delta":`:
			text, ok = c.delta()
		}
		if !ok {
			return "", false
		}
	}
	if !c.lit("]") {
		return "", false
	}
	return text, true
}

// cursor reads JSON tokens from b at i.
type cursor struct {
	b []byte
	i int
}

// lit consumes s if it comes next.
func (c *cursor) lit(s string) bool {
	if !bytes.HasPrefix(c.b[c.i:], []byte(s)) {
		return false
	}
	c.i += len(s)
	return true
}

// key consumes and returns the next key with its quotes and colon, if it has no
// escapes; else it returns nil.
func (c *cursor) key() []byte {
	rest := c.b[c.i:]
	if len(rest) < 3 || rest[0] != '"' {
		return nil
	}
	end := bytes.IndexByte(rest[1:], '"') + 2
	if end < 2 || end >= len(rest) || rest[end] != ':' || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return nil
	}
	c.i += end + 1
	return rest[:end+1]
}

// delta consumes a delta object of only role, content and a null refusal, and returns
// its content.
func (c *cursor) delta() (string, bool) {
	if !c.lit("{") {
		return "", false
	}
	var text string
	for first := true; !c.lit("}"); first = false {
		if !first && !c.lit(",") {
			return "", false
		}
		switch k := c.key(); string(k) {
		case `"role":`, `"content":`:
			if c.lit("null") {
				continue
			}
			s, n, ok := jsonString(c.b[c.i:])
			if !ok {
				return "", false
			}
			c.i += n
			if string(k) == `"content":` {
				text = s
			}
		case `"refusal":`:
			if !c.lit("null") {
				return "", false
			}
		default:
			return "", false
		}
	}
	return text, true
}
