package openai_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/openai/openaitest"
	"github.com/kern-dev/kern/run"
)

var png = []byte("\x89PNG\r\n\x1a\n")

// TestAttachmentsOnTheWire runs an agent with images and files against the fake,
// which checks the content parts as the API does.
func TestAttachmentsOnTheWire(t *testing.T) {
	t.Parallel()
	pngURL := "data:image/png;base64,iVBORw0KGgo="
	pdf := "data:application/pdf;base64,JVBERi0xLjc="
	cases := []struct {
		api   api
		atts  []model.Attachment
		reply openaitest.Reply
		want  []any
	}{
		{apis[0], []model.Attachment{model.ImageURL("https://example.com/cat.jpg"), model.ImageData("image/png", png),
			model.FileURL("https://example.com/a.pdf"), model.FileData("a.pdf", "application/pdf", []byte("%PDF-1.7"))},
			openaitest.ResponsesText("A cat."), []any{
				map[string]any{"type": "input_text", "text": "What is this?"},
				map[string]any{"type": "input_image", "detail": "auto", "image_url": "https://example.com/cat.jpg"},
				map[string]any{"type": "input_image", "detail": "auto", "image_url": pngURL},
				map[string]any{"type": "input_file", "file_url": "https://example.com/a.pdf"},
				map[string]any{"type": "input_file", "filename": "a.pdf", "file_data": pdf},
			}},
		{apis[1], []model.Attachment{model.ImageURL("https://example.com/cat.jpg"), model.ImageData("image/png", png),
			model.FileData("", "application/pdf", []byte("%PDF-1.7"))},
			openaitest.ChatText("", "A cat."), []any{
				map[string]any{"type": "text", "text": "What is this?"},
				map[string]any{"type": "image_url", "image_url": map[string]any{"url": "https://example.com/cat.jpg"}},
				map[string]any{"type": "image_url", "image_url": map[string]any{"url": pngURL}},
				map[string]any{"type": "file", "file": map[string]any{"filename": "file", "file_data": pdf}},
			}},
	}
	for _, c := range cases {
		t.Run(c.api.name, func(t *testing.T) {
			t.Parallel()
			srv, m := c.api.setup(t, c.reply)
			a := &agent.Agent{Name: "Eyes", Model: m}
			out, err := a.Run(t.Context(), "What is this?", agent.WithAttachments(c.atts...))
			if err != nil || out.Content != "A cat." {
				t.Fatalf("output %q, error %v", out.Content, err)
			}
			key := "input"
			if c.api.name == "chat" {
				key = "messages"
			}
			msgs := srv.Requests()[0].Body[key].([]any)
			got := msgs[len(msgs)-1].(map[string]any)["content"]
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("content = %#v\nwant %#v", got, c.want)
			}
		})
	}
}

func TestAttachmentsRefused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		api  api
		att  model.Attachment
		want error
	}{
		{apis[1], model.FileURL("https://example.com/a.pdf"), model.ErrUnsupported},
		{apis[0], model.ImageData("", png), model.ErrInvalidSettings},
		{apis[0], model.ImageURL("file:///etc/passwd"), model.ErrInvalidSettings},
		{apis[1], model.ImageData("application/pdf", png), model.ErrInvalidSettings},
		{apis[1], model.Attachment{Kind: model.AttachmentFile}, model.ErrInvalidSettings},
	}
	for _, c := range cases {
		srv, m := c.api.setup(t)
		a := &agent.Agent{Name: "Eyes", Model: m}
		_, err := a.Run(t.Context(), "What is this?", agent.WithAttachments(c.att))
		if !errors.Is(err, run.ErrInvalid) || !errors.Is(err, c.want) || len(srv.Requests()) != 0 {
			t.Errorf("%s %+v: error %v (want %v), %d requests", c.api.name, c.att, err, c.want, len(srv.Requests()))
		}
	}
}
