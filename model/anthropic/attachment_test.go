package anthropic_test

import (
	"errors"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/anthropic/anthropictest"
	"github.com/kern-dev/kern/run"
)

// TestAttachmentsOnTheWire runs an agent with images and documents against the fake,
// which checks their sources as the API does.
func TestAttachmentsOnTheWire(t *testing.T) {
	t.Parallel()
	srv := newServer(t, anthropictest.Text("A cat."))
	a := &agent.Agent{Name: "Eyes", Model: newModel(srv)}
	atts := []model.Attachment{
		model.ImageData("image/png", []byte("\x89PNG\r\n\x1a\n")),
		model.ImageURL("https://example.com/cat.jpg"),
		model.FileData("a.pdf", "application/pdf", []byte("%PDF-1.7")),
		model.FileURL("https://example.com/a.pdf"),
		model.FileData("notes.txt", "text/plain", []byte("cats are nice")),
	}
	out, err := a.Run(t.Context(), "What is this?", agent.WithAttachments(atts...))
	if err != nil || out.Content != "A cat." {
		t.Fatalf("output %q, error %v", out.Content, err)
	}
	blocks := srv.Requests()[0].Params.Messages[0].Content
	want := []anthropictest.Block{
		{Type: "text", Text: "What is this?"},
		{Type: "image", Source: &anthropictest.Source{Type: "base64", MediaType: "image/png", Data: "iVBORw0KGgo="}},
		{Type: "image", Source: &anthropictest.Source{Type: "url", URL: "https://example.com/cat.jpg"}},
		{Type: "document", Source: &anthropictest.Source{Type: "base64", MediaType: "application/pdf", Data: "JVBERi0xLjc="}},
		{Type: "document", Source: &anthropictest.Source{Type: "url", URL: "https://example.com/a.pdf"}},
		{Type: "document", Source: &anthropictest.Source{Type: "text", MediaType: "text/plain", Data: "cats are nice"}},
	}
	if len(blocks) != len(want) {
		t.Fatalf("blocks = %+v", blocks)
	}
	for i, b := range blocks {
		w := want[i]
		if b.Type != w.Type || b.Text != w.Text || (w.Source != nil && (b.Source == nil || *b.Source != *w.Source)) {
			t.Errorf("block %d = %+v (source %+v), want %+v (source %+v)", i, b, b.Source, w, w.Source)
		}
	}
}

func TestAttachmentsRefused(t *testing.T) {
	t.Parallel()
	for _, att := range []model.Attachment{
		model.ImageData("image/bmp", []byte("BM")),
		model.FileData("a.zip", "application/zip", []byte("PK")),
	} {
		srv := newServer(t)
		a := &agent.Agent{Name: "Eyes", Model: newModel(srv)}
		_, err := a.Run(t.Context(), "What is this?", agent.WithAttachments(att))
		if !errors.Is(err, run.ErrInvalid) || !errors.Is(err, model.ErrUnsupported) || len(srv.Requests()) != 0 {
			t.Errorf("%s: error %v, %d requests", att.MIMEType, err, len(srv.Requests()))
		}
	}
}
