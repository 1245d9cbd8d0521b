package openai_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/openai"
	"github.com/kern-dev/kern/model/openai/openaitest"
	"github.com/kern-dev/kern/tool"
)

// TestReasoningReplayedWithoutStore runs a tool loop of a reasoning model on the
// Responses API, which keeps nothing ("store": false): with a reasoning effort, the
// first request asks for the reasoning's encrypted content and the second sends the
// reasoning item back, unchanged and before the call it led to, which the fake
// server verifies as the API does. Without an effort, nothing is asked or replayed.
func TestReasoningReplayedWithoutStore(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		effort   string
		replayed bool
	}{{"effort", "low", true}, {"no effort", "", false}, {"effort none", "none", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := openaitest.NewServer(t)
			srv.Enqueue(openaitest.NewResponsesStream().Reasoning("The user wants ", "the weather.").FunctionCall("get_weather", `{"city":"Paris"}`).Reply(),
				openaitest.ResponsesText("Sunny in Paris."))
			m := openai.NewResponses("gpt-5.2", openai.WithBaseURL(srv.URL), openai.WithAPIKey(openaitest.APIKey), openai.WithHTTPClient(srv.Client()))
			weather := tool.Func("get_weather", "Get the weather in a city", func(ctx context.Context, args cityArgs) (string, error) { return "sunny", nil })
			a := &agent.Agent{Name: "Weather", Model: m, Tools: []tool.Tool{weather}, Settings: &model.Settings{ReasoningEffort: tc.effort}}
			out, err := a.Run(t.Context(), "weather in Paris?")
			if err != nil || out.Content != "Sunny in Paris." {
				t.Fatalf("output %q, error %v", out.Content, err)
			}
			reqs := srv.Requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests", len(reqs))
			}
			for i, r := range reqs {
				include, _ := r.Body["include"].([]any)
				if asked := len(include) == 1 && include[0] == "reasoning.encrypted_content"; asked != tc.replayed || r.Body["store"] != false {
					t.Errorf("request %d: include %v, store %v", i, r.Body["include"], r.Body["store"])
				}
			}
			input := reqs[1].Body["input"].([]any)
			var types []string
			for _, x := range input {
				item := x.(map[string]any)
				typ, _ := item["type"].(string)
				types = append(types, typ)
				if typ == "reasoning" {
					want := `{"id":"rs_openaitest0","type":"reasoning","summary":[{"type":"summary_text","text":"The user wants the weather."}],"encrypted_content":"` +
						openaitest.EncryptedContent("rs_openaitest0") + `"}`
					if got, _ := json.Marshal(item); !jsonEqual(t, got, []byte(want)) {
						t.Errorf("replayed item %s, want %s", got, want)
					}
				}
			}
			want := "[ function_call function_call_output]" // the user's message has no type
			if tc.replayed {
				want = "[ reasoning function_call function_call_output]"
			}
			if got := fmt.Sprint(types); got != want {
				t.Errorf("second request's input: %s, want %s", got, want)
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}
