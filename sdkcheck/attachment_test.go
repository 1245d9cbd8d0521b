package sdkcheck_test

import (
	"context"
	"encoding/base64"
	"testing"

	asdk "github.com/anthropics/anthropic-sdk-go/v2"
	osdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/anthropic"
	"github.com/kern-dev/kern/model/anthropic/anthropictest"
	"github.com/kern-dev/kern/model/openai"
	"github.com/kern-dev/kern/model/openai/openaitest"
)

// The images and files both clients send with the question.
var (
	pngBytes = []byte("\x89PNG\r\n\x1a\n")
	pdfBytes = []byte("%PDF-1.7")
	imageURL = "https://example.com/cat.jpg"
	pdfURL   = "https://example.com/report.pdf"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// withAttachments is a one-message request with attachments.
func withAttachments(atts ...model.Attachment) *model.Request {
	return &model.Request{Messages: []model.Message{{Role: model.RoleUser, Content: question, Attachments: atts}}}
}

// TestAttachmentBodies: the images and files kern sends with a user message are what
// the SDKs send for the same ones, field by field, on each API.
func TestAttachmentBodies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("responses", func(t *testing.T) {
		t.Parallel()
		sdkSrv := openaitest.NewServer(t)
		sdkSrv.Enqueue(openaitest.ResponsesText("A cat."))
		params := responses.ResponseNewParams{
			Model: "gpt-5.2",
			Store: osdk.Bool(false),
			Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
				responses.ResponseInputItemParamOfMessage(responses.ResponseInputMessageContentListParam{
					{OfInputText: &responses.ResponseInputTextParam{Text: question}},
					{OfInputImage: &responses.ResponseInputImageParam{Detail: responses.ResponseInputImageDetailAuto, ImageURL: osdk.String(imageURL)}},
					{OfInputImage: &responses.ResponseInputImageParam{Detail: responses.ResponseInputImageDetailAuto, ImageURL: osdk.String("data:image/png;base64," + b64(pngBytes))}},
					{OfInputFile: &responses.ResponseInputFileParam{FileURL: osdk.String(pdfURL)}},
					{OfInputFile: &responses.ResponseInputFileParam{Filename: osdk.String("report.pdf"), FileData: osdk.String("data:application/pdf;base64," + b64(pdfBytes))}},
				}, responses.EasyInputMessageRoleUser),
			}},
		}
		if r := streamResponsesSDK(ctx, openAISDK(sdkSrv, option.WithMaxRetries(0)), params); r.err != nil {
			t.Fatal(r.err)
		}
		kernSrv := openaitest.NewServer(t)
		kernSrv.Enqueue(openaitest.ResponsesText("A cat."))
		req := withAttachments(model.ImageURL(imageURL), model.ImageData("image/png", pngBytes),
			model.FileURL(pdfURL), model.FileData("report.pdf", "application/pdf", pdfBytes))
		if r := collectKern(ctx, openai.NewResponses("gpt-5.2", kernOpenAI(kernSrv, noRetry)...), req); r.err != nil {
			t.Fatal(r.err)
		}
		compareBodies(t, sdkSrv.Requests()[0].Body, kernSrv.Requests()[0].Body, nil)
	})
	t.Run("chat", func(t *testing.T) {
		t.Parallel()
		sdkSrv := openaitest.NewServer(t)
		sdkSrv.Enqueue(openaitest.ChatText("", "A cat."))
		params := osdk.ChatCompletionNewParams{
			Model: "gpt-4.1-mini",
			Messages: []osdk.ChatCompletionMessageParamUnion{osdk.UserMessage([]osdk.ChatCompletionContentPartUnionParam{
				osdk.TextContentPart(question),
				osdk.ImageContentPart(osdk.ChatCompletionContentPartImageImageURLParam{URL: imageURL}),
				osdk.ImageContentPart(osdk.ChatCompletionContentPartImageImageURLParam{URL: "data:image/png;base64," + b64(pngBytes)}),
				osdk.FileContentPart(osdk.ChatCompletionContentPartFileFileParam{Filename: osdk.String("report.pdf"), FileData: osdk.String("data:application/pdf;base64," + b64(pdfBytes))}),
			})},
			StreamOptions: osdk.ChatCompletionStreamOptionsParam{IncludeUsage: osdk.Bool(true)},
		}
		if r := streamChatSDK(ctx, openAISDK(sdkSrv, option.WithMaxRetries(0)), params); r.err != nil {
			t.Fatal(r.err)
		}
		kernSrv := openaitest.NewServer(t)
		kernSrv.Enqueue(openaitest.ChatText("", "A cat."))
		req := withAttachments(model.ImageURL(imageURL), model.ImageData("image/png", pngBytes),
			model.FileData("report.pdf", "application/pdf", pdfBytes))
		if r := collectKern(ctx, openai.NewChat("gpt-4.1-mini", kernOpenAI(kernSrv, noRetry)...), req); r.err != nil {
			t.Fatal(r.err)
		}
		compareBodies(t, sdkSrv.Requests()[0].Body, kernSrv.Requests()[0].Body, nil)
	})
	for _, version := range versions {
		t.Run("messages/"+version, func(t *testing.T) {
			t.Parallel()
			params := asdk.MessageNewParams{
				Model:     "claude-sonnet-4-5",
				MaxTokens: anthropic.DefaultMaxTokens,
				Messages: []asdk.MessageParam{asdk.NewUserMessage(
					asdk.NewTextBlock(question),
					asdk.NewImageBlockBase64("image/png", b64(pngBytes)),
					asdk.NewImageBlock(asdk.URLImageSourceParam{URL: imageURL}),
					asdk.NewDocumentBlock(asdk.Base64PDFSourceParam{Data: b64(pdfBytes)}),
					asdk.NewDocumentBlock(asdk.URLPDFSourceParam{URL: pdfURL}),
					asdk.NewDocumentBlock(asdk.PlainTextSourceParam{Data: "cats are nice"}),
				)},
			}
			sdkSrv := newAnthropicServer(t, anthropictest.Text("A cat."))
			if r := streamMessageSDK(ctx, anthropicSDK(sdkSrv, version), params); r.err != nil {
				t.Fatal(r.err)
			}
			kernSrv := newAnthropicServer(t, anthropictest.Text("A cat."))
			req := withAttachments(model.ImageData("image/png", pngBytes), model.ImageURL(imageURL),
				model.FileData("report.pdf", "application/pdf", pdfBytes), model.FileURL(pdfURL),
				model.FileData("notes.txt", "text/plain", []byte("cats are nice")))
			if r := collectKern(ctx, kernAnthropic(kernSrv, version), req); r.err != nil {
				t.Fatal(r.err)
			}
			compareBodies(t, normalizeMessages(t, sdkSrv.Requests()[0].Body), normalizeMessages(t, kernSrv.Requests()[0].Body), nil)
		})
	}
}
