package anthropic_test

import (
	"context"
	"fmt"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/anthropic"
	"github.com/kern-dev/kern/model/anthropic/anthropictest"
)

func ExampleNew() {
	// A fake Anthropic API that streams one answer in three deltas.
	srv := anthropictest.NewServer(anthropictest.Text("Hello", " there", "!"))
	defer srv.Close()

	m := anthropic.New("claude-sonnet-4-5",
		anthropic.WithBaseURL(srv.URL), // the default is ANTHROPIC_BASE_URL or api.anthropic.com
		anthropic.WithAPIKey("sk-ant-example"),
		anthropic.WithHTTPClient(srv.Client()),
	)
	req := &model.Request{
		Instructions: "Be brief.",
		Messages:     []model.Message{{Role: model.RoleUser, Content: "Say hello."}},
	}
	for chunk, err := range m.Stream(context.Background(), req) {
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		if chunk.Text != "" {
			fmt.Printf("%q\n", chunk.Text)
		}
		if chunk.FinishReason != "" {
			fmt.Println(chunk.FinishReason, chunk.Usage.InputTokens, chunk.Usage.OutputTokens)
		}
	}
	fmt.Println(srv.Requests()[0].Header.Get("anthropic-version"))
	// Output:
	// "Hello"
	// " there"
	// "!"
	// stop 11 4
	// 2023-06-01
}
