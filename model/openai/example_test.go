package openai_test

import (
	"context"
	"fmt"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/openai"
	"github.com/kern-dev/kern/model/openai/openaitest"
)

func ExampleNewResponses() {
	// A fake OpenAI server stands in for https://api.openai.com/v1.
	srv := openaitest.New()
	defer srv.Close()
	srv.Enqueue(openaitest.Fixture("responses_text.sse"))

	m := openai.NewResponses("gpt-5.2",
		openai.WithBaseURL(srv.URL), openai.WithAPIKey(openaitest.APIKey), openai.WithHTTPClient(srv.Client()))
	req := &model.Request{
		Instructions: "Be brief.",
		Messages:     []model.Message{{Role: model.RoleUser, Content: "Hi!"}},
	}
	for chunk, err := range m.Stream(context.Background(), req) {
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Print(chunk.Text)
		if chunk.FinishReason != "" {
			fmt.Printf("\n%s, %d tokens\n", chunk.FinishReason, chunk.Usage.TotalTokens)
		}
	}
	// Output:
	// Hello! How can I help?
	// stop, 26 tokens
}
