package agentos

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/kern-dev/kern/model"
)

// media is an image or a file as Agno's clients send it in the images and
// input_files fields (Image.to_dict, File.to_dict): by url, or its content in
// base64. Other fields of Agno's media (id, detail, ...) are ignored.
type media struct {
	URL      string  `json:"url"`
	Content  *string `json:"content"`
	MIMEType string  `json:"mime_type"`
	Format   string  `json:"format"`
	Filename string  `json:"filename"`
	Name     string  `json:"name"`
	Filepath string  `json:"filepath"`
}

// attachments gathers a run's attachments: the media of the images, files and
// input_files fields (JSON lists, or strings holding one, as form fields carry
// them), and, in a multipart body, the files uploaded as files.
type attachments struct {
	max      int   // how many at most
	maxBytes int64 // the bytes of each at most
	list     []model.Attachment
}

// media reads the JSON list raw (or a JSON string holding one) of field, whose
// media are of kind.
func (a *attachments) media(field string, kind model.AttachmentKind, raw []byte) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if raw[0] == '"' { // a form field's text, in a JSON body
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return badRequest(http.StatusUnprocessableEntity, "%s: %v", field, err)
		}
		raw = []byte(s)
	}
	var list []media
	if err := json.Unmarshal(raw, &list); err != nil {
		return badRequest(http.StatusUnprocessableEntity, "%s must be a JSON list of {url} or {content, mime_type} objects: %v", field, err)
	}
	for i, m := range list {
		att, err := m.attachment(kind, a.maxBytes)
		if err != nil {
			return wrapDetail(err, "%s[%d]: ", field, i)
		}
		if err := a.add(att); err != nil {
			return err
		}
	}
	return nil
}

// attachment returns m as an attachment of kind.
func (m *media) attachment(kind model.AttachmentKind, maxBytes int64) (model.Attachment, error) {
	att := model.Attachment{Kind: kind, URL: m.URL, MIMEType: m.MIMEType, Filename: m.Filename}
	if att.Filename == "" {
		att.Filename = m.Name
	}
	switch {
	case m.Filepath != "" && m.URL == "" && m.Content == nil:
		return att, badRequest(http.StatusUnprocessableEntity, "filepath %q is not read by the server: give a url or the content", m.Filepath)
	case m.Content != nil && m.URL != "":
		return att, badRequest(http.StatusUnprocessableEntity, "give a url or the content, not both")
	case m.Content != nil:
		if int64(base64.StdEncoding.DecodedLen(len(*m.Content))) > maxBytes+2 {
			return att, badRequest(http.StatusRequestEntityTooLarge, "content larger than %d bytes", maxBytes)
		}
		data, err := base64.StdEncoding.DecodeString(*m.Content)
		if err != nil {
			return att, badRequest(http.StatusUnprocessableEntity, "content is not base64: %v", err)
		}
		if int64(len(data)) > maxBytes {
			return att, badRequest(http.StatusRequestEntityTooLarge, "content larger than %d bytes", maxBytes)
		}
		att.Data = data
		if att.MIMEType == "" && m.Format != "" && kind == model.AttachmentImage {
			att.MIMEType = "image/" + strings.ToLower(m.Format)
		}
		if att.MIMEType == "" {
			att.MIMEType = http.DetectContentType(data)
		}
	}
	return att, nil
}

// upload reads a file uploaded in a multipart body: an image when its type (as
// sent, or sniffed) is image/*, a file otherwise.
func (a *attachments) upload(fh *multipart.FileHeader) error {
	if fh.Size > a.maxBytes {
		return badRequest(http.StatusRequestEntityTooLarge, "file %q is larger than %d bytes", fh.Filename, a.maxBytes)
	}
	f, err := fh.Open()
	if err != nil {
		return fmt.Errorf("agentos: open uploaded file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("agentos: read uploaded file: %w", err)
	}
	mt := fh.Header.Get("Content-Type")
	if mt == "" || mt == "application/octet-stream" {
		mt = http.DetectContentType(data)
	}
	mt, _, _ = strings.Cut(mt, ";") // text/plain; charset=utf-8
	att := model.FileData(fh.Filename, mt, data)
	if strings.HasPrefix(mt, "image/") {
		att = model.ImageData(mt, data)
	}
	return wrapDetail(a.add(att), "file %q: ", fh.Filename)
}

// add checks att and adds it, unless there are too many.
func (a *attachments) add(att model.Attachment) error {
	if len(a.list) == a.max {
		return badRequest(http.StatusUnprocessableEntity, "more than %d images and files", a.max)
	}
	if err := att.Validate(); err != nil {
		return badRequest(http.StatusUnprocessableEntity, "%v", err)
	}
	a.list = append(a.list, att)
	return nil
}

// wrapDetail prefixes the detail of an httpError; other errors pass as they are.
func wrapDetail(err error, format string, args ...any) error {
	var he *httpError
	if errors.As(err, &he) {
		return &httpError{code: he.code, detail: fmt.Sprintf(format, args...) + he.detail}
	}
	return err
}
