package main

import (
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/model/openai"
	"github.com/kern-dev/kern/model/openai/openaitest"
)

func TestReferenceProgram(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		cancelAfter time.Duration
		want        []string
	}{
		{"cancelled", 0, []string{"Model: scripted", "Workflow run was cancelled: ", "Status: cancelled",
			"Was Cancelled: true", "SUCCESS: Workflow run was successfully cancelled!"}},
		{"finished first", time.Hour, []string{"Status: completed", "Was Cancelled: false",
			"Content Preview: Once upon a time", "WARNING: Workflow run finished before it was cancelled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out strings.Builder
			if err := runExample(t.Context(), &out, scriptedModels(0), "a dragon", tt.cancelAfter); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestOnOpenAI runs the program's OpenAI path against a fake OpenAI server.
func TestOnOpenAI(t *testing.T) {
	t.Parallel()
	srv := openaitest.NewServer(t)
	srv.Enqueue(openaitest.Fixture("responses_text.sse"), openaitest.Fixture("responses_text.sse"))
	opts := []openai.Option{openai.WithBaseURL(srv.URL), openai.WithAPIKey(openaitest.APIKey), openai.WithHTTPClient(srv.Client())}
	m := openAIModels("gpt-5.2")
	m.research, m.write = openai.NewResponses("gpt-5.2", opts...), openai.NewResponses("gpt-5.2", opts...)
	var out strings.Builder
	if err := runExample(t.Context(), &out, m, "a dragon", time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Model: OpenAI gpt-5.2", "Hello! How can I help?", "Status: completed"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
	if n := len(srv.Requests()); n != 2 {
		t.Errorf("%d requests, want one per agent", n)
	}
}
