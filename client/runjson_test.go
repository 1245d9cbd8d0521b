package client

import (
	"encoding/json"
	"testing"
)

func TestRunStructuredContent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body, content, contentType string
	}{
		{`{"run_id":"r","content":"hello","replica":"a"}`, "hello", ""},
		{`{"run_id":"r","content":{"city": "Paris"},"content_type":"Trip"}`, `{"city":"Paris"}`, "Trip"},
		{`{"run_id":"r","content":[1, 2]}`, `[1,2]`, "json"},
		{`{"run_id":"r"}`, "", ""},
		{`{"run_id":"r","content":null}`, "", ""},
	} {
		var r Run
		if err := json.Unmarshal([]byte(tc.body), &r); err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if r.RunID != "r" || r.Content != tc.content || r.ContentType != tc.contentType {
			t.Errorf("%s: run %q, content %q, type %q; want %q, %q", tc.body, r.RunID, r.Content, r.ContentType, tc.content, tc.contentType)
		}
	}
}
