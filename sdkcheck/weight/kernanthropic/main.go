// Command kernanthropic streams one answer with kern's Anthropic client; weight.sh
// measures what it costs to build.
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/anthropic"
)

func main() {
	m := anthropic.New("claude-sonnet-4-5")
	req := &model.Request{Messages: []model.Message{{Role: model.RoleUser, Content: "Say hello."}}}
	for c, err := range m.Stream(context.Background(), req) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(c.Text)
	}
}
