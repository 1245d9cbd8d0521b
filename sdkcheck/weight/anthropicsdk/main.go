// Command anthropicsdk streams one answer with the official Anthropic SDK; weight.sh
// measures what it costs to build.
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/anthropics/anthropic-sdk-go/v2"
)

func main() {
	client := anthropic.NewClient()
	stream := client.Messages.NewStreaming(context.Background(), anthropic.MessageNewParams{
		Model:     "claude-sonnet-4-5",
		MaxTokens: 1024,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hello."))},
	})
	defer stream.Close()
	for stream.Next() {
		if ev := stream.Current(); ev.Type == "content_block_delta" && ev.Delta.Type == "text_delta" {
			fmt.Print(ev.Delta.Text)
		}
	}
	if err := stream.Err(); err != nil {
		log.Fatal(err)
	}
}
