package model

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
)

// AttachmentKind tells an image from another file.
type AttachmentKind string

// Attachment kinds.
const (
	AttachmentImage AttachmentKind = "image"
	AttachmentFile  AttachmentKind = "file"
)

// Attachment is an image or a file given to a model with a user message: by URL, or
// its bytes with their MIME type. Providers take some kinds only (see their Check).
type Attachment struct {
	Kind AttachmentKind `json:"kind"`
	// URL is where the provider fetches it (http or https); empty when Data is set.
	URL string `json:"url,omitempty"`
	// Data are its bytes, sent inline (base64); MIMEType says what they are.
	Data     []byte `json:"data,omitempty"`
	MIMEType string `json:"mime_type,omitempty"`
	// Filename names a file (some providers require it with Data).
	Filename string `json:"filename,omitempty"`
}

// ImageURL returns an image attachment the provider fetches from u.
func ImageURL(u string) Attachment { return Attachment{Kind: AttachmentImage, URL: u} }

// ImageData returns an image attachment of the bytes data, of MIME type mimeType
// (such as image/png).
func ImageData(mimeType string, data []byte) Attachment {
	return Attachment{Kind: AttachmentImage, Data: data, MIMEType: mimeType}
}

// FileURL returns a file attachment the provider fetches from u.
func FileURL(u string) Attachment { return Attachment{Kind: AttachmentFile, URL: u} }

// FileData returns a file attachment named name, of the bytes data of MIME type
// mimeType (such as application/pdf).
func FileData(name, mimeType string, data []byte) Attachment {
	return Attachment{Kind: AttachmentFile, Data: data, MIMEType: mimeType, Filename: name}
}

// Validate reports an attachment no provider can send: an unknown kind, neither or
// both of URL and Data, a URL that is not http or https, bytes without a MIME type,
// an image whose MIME type is not image/*. The error wraps ErrInvalidSettings.
func (a *Attachment) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: attachment: %s", ErrInvalidSettings, fmt.Sprintf(format, args...))
	}
	switch {
	case a.Kind != AttachmentImage && a.Kind != AttachmentFile:
		return bad("kind %q is neither image nor file", a.Kind)
	case (a.URL == "") == (len(a.Data) == 0):
		return bad("needs a URL or data, and only one of them")
	case len(a.Data) > 0 && a.MIMEType == "":
		return bad("data without a MIME type")
	case len(a.Data) > 0 && a.Kind == AttachmentImage && !strings.HasPrefix(a.MIMEType, "image/"):
		return bad("an image of MIME type %q", a.MIMEType)
	}
	if a.URL != "" {
		u, err := url.Parse(a.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("URL %q is not an http or https URL", a.URL)
		}
	}
	return nil
}

// DataURL returns the attachment's bytes as a data: URL (RFC 2397), base64.
func (a *Attachment) DataURL() string {
	return "data:" + a.MIMEType + ";base64," + base64.StdEncoding.EncodeToString(a.Data)
}

// Base64 returns the attachment's bytes in base64.
func (a *Attachment) Base64() string { return base64.StdEncoding.EncodeToString(a.Data) }

// CheckAttachments validates the attachments of the messages of req.
func CheckAttachments(req *Request) error {
	for i := range req.Messages {
		m := &req.Messages[i]
		for j := range m.Attachments {
			if m.Role != RoleUser {
				return fmt.Errorf("%w: message %d: only user messages take attachments", ErrInvalidSettings, i)
			}
			if err := m.Attachments[j].Validate(); err != nil {
				return fmt.Errorf("message %d: %w", i, err)
			}
		}
	}
	return nil
}
