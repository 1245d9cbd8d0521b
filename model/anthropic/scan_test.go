package anthropic

import (
	"encoding/json"
	"testing"
)

var deltaSeeds = []string{
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}`,
	`{"type":"content_block_delta","index":12,"delta":{"type":"input_json_delta","partial_json":"{\"locati"}}`,
	`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}`,
	`{ "index" : 3 , "delta" : { "text" : "a\nb" , "type" : "text_delta" } , "type" : "content_block_delta" }`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\"q\" \\ \/ \b\f\n\r\t \u00e9 \ud83d\ude00 \ud800 \udc00x \ud83d\u0041"}}`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"é ✓ 😀"}}`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}`,
	`{"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":{"type":"char_location","cited_text":"x","n":[1,2.5e3,{"a":null}],"t":true}}}`,
	`{"type":"content_block_delta","index":0,"extra":[[],{},"x"],"delta":{"type":"text_delta","text":"x","more":false}}`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\xff"}}`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a` + "\x01" + `"}}`,
	`{"type":"content_block_delta","index":01,"delta":{"type":"text_delta","text":"x"}}`,
	`{"type":"content_block_delta","index":1.5,"delta":{"type":"text_delta","text":"x"}}`,
	`{"type":"content_block_delta","index":-1,"delta":{"type":"text_delta","text":"x"}}`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}} x`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\x"}}`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\u12"}}`,
	`{"index":0,"delta":{"type":"text_delta","text":"x"}`,
	`{"index":0,"delta":null}`,
	`{}`,
	``,
}

// FuzzScanDelta checks that whenever the scanner takes an event, it reads what
// encoding/json reads from it.
func FuzzScanDelta(f *testing.F) {
	for _, s := range deltaSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, ok := scanDelta(data)
		if !ok {
			return
		}
		want, err := decodeDelta(data)
		if err != nil {
			t.Fatalf("scanner took %q, which encoding/json refuses: %v", data, err)
		}
		var got string
		if d.escaped {
			got = string(unescape(nil, d.value))
		} else {
			got = string(d.value)
		}
		if d.index != want.index || string(d.typ) != string(want.typ) || got != string(want.value) {
			t.Fatalf("scanner read index %d, type %q, value %q from %q; encoding/json %d, %q, %q",
				d.index, d.typ, got, data, want.index, want.typ, want.value)
		}
	})
}

func TestScanDeltaTakesCommonEvents(t *testing.T) {
	for _, s := range deltaSeeds[:9] {
		if _, ok := scanDelta([]byte(s)); !ok {
			t.Errorf("scanner refused %s", s)
		}
	}
}

func FuzzScanIndex(f *testing.F) {
	f.Add([]byte(`{"type":"content_block_stop","index":1}`))
	f.Add([]byte(`{"index":0 , "type":"content_block_stop"}`))
	f.Add([]byte(`{"type":"content_block_stop"}`))
	f.Add([]byte(`{"index":"1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		i, ok := scanIndex(data)
		if !ok {
			return
		}
		var ev struct{ Index int }
		if err := json.Unmarshal(data, &ev); err != nil || ev.Index != i {
			t.Fatalf("scanner read index %d from %q; encoding/json %d, %v", i, data, ev.Index, err)
		}
	})
}
