// Command openaisdk streams one answer with the official OpenAI SDK; weight.sh
// measures what it costs to build.
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
)

func main() {
	client := openai.NewClient()
	stream := client.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{
		Model: "gpt-5.2",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Say hello.")},
	})
	defer stream.Close()
	for stream.Next() {
		if ev := stream.Current(); ev.Type == "response.output_text.delta" {
			fmt.Print(ev.Delta)
		}
	}
	if err := stream.Err(); err != nil {
		log.Fatal(err)
	}
}
