package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// TestEndEventStructuredContent checks that the terminal event recovery writes for
// a completed structured run keeps its content a JSON value, with its type.
func TestEndEventStructuredContent(t *testing.T) {
	t.Parallel()
	r := &store.Run{ID: "r1", Kind: run.KindAgent, ComponentID: "extractor", Status: run.StatusCompleted,
		Output: run.Output{Content: `{"city":"Paris"}`, ContentType: "Trip"}}
	ev, err := store.EndEvent(r, 4, time.Unix(100, 0))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Event       string          `json:"event"`
		Content     json.RawMessage `json:"content"`
		ContentType string          `json:"content_type"`
	}
	if err := json.Unmarshal(ev.Data, &got); err != nil {
		t.Fatal(err)
	}
	if got.Event != string(run.EventRunCompleted) || string(got.Content) != `{"city":"Paris"}` || got.ContentType != "Trip" {
		t.Errorf("terminal event %s, want RunCompleted with the object as content and content_type Trip", ev.Data)
	}
	var back run.Event
	if err := json.Unmarshal(ev.Data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Content != `{"city":"Paris"}` || back.Detail == nil || back.Detail.ContentType != "Trip" {
		t.Errorf("decoded terminal event: content %q, detail %+v", back.Content, back.Detail)
	}
}
