package hackernews_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/tools/hackernews"
)

// toolByName returns the tool of tools named name.
func toolByName(t *testing.T, tools []tool.Tool, name string) tool.Tool {
	t.Helper()
	for _, tl := range tools {
		if tl.Definition().Name == name {
			return tl
		}
	}
	t.Fatalf("no tool named %q", name)
	return nil
}

func TestToolDefinitions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		property     string
		propertyType string
		required     []string
	}{
		{"get_top_hackernews_stories", "num_stories", "integer", nil},
		{"get_user_details", "username", "string", []string{"username"}},
	}
	tools := hackernews.New()
	if len(tools) != len(tests) {
		t.Fatalf("New returned %d tools, want %d", len(tools), len(tests))
	}
	for _, tt := range tests {
		tl := toolByName(t, tools, tt.name)
		if err := tool.Validate(tl); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		d := tl.Definition()
		if d.Description == "" {
			t.Errorf("%s has no description", tt.name)
		}
		var schema struct {
			Properties map[string]struct {
				Type        string `json:"type"`
				Description string `json:"description"`
			} `json:"properties"`
			Required []string `json:"required"`
		}
		if err := json.Unmarshal(d.Parameters, &schema); err != nil {
			t.Fatalf("%s: parameters: %v", tt.name, err)
		}
		p, ok := schema.Properties[tt.property]
		if !ok || p.Type != tt.propertyType || p.Description == "" {
			t.Errorf("%s: property %s = %+v (present %v), want a described %s", tt.name, tt.property, p, ok, tt.propertyType)
		}
		if len(schema.Properties) != 1 {
			t.Errorf("%s: properties %v, want only %s", tt.name, schema.Properties, tt.property)
		}
		if !slices.Equal(schema.Required, tt.required) {
			t.Errorf("%s: required %v, want %v", tt.name, schema.Required, tt.required)
		}
	}
}

func TestToolsCall(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		tool    string
		args    string
		want    string // the exact result, if not empty
		wantIDs []int  // the ids of the stories returned, for get_top_hackernews_stories
	}{
		{
			name: "one story", tool: "get_top_hackernews_stories", args: `{"num_stories":1}`,
			want: `[{"id":8863,"title":"My YC app: Dropbox - Throw away your USB drive",` +
				`"url":"http://www.getdropbox.com/u/2/screencast.html","score":111,"by":"dhouston",` +
				`"descendants":71,"time":1175714200,"type":"story"}]`,
		},
		{
			name: "skips missing, deleted and dead", tool: "get_top_hackernews_stories", args: `{"num_stories":7}`,
			wantIDs: []int{8863, 121003, 192327, 126809},
		},
		{
			name: "default number", tool: "get_top_hackernews_stories", args: `{}`,
			wantIDs: []int{8863, 121003, 192327, 126809},
		},
		{
			name: "user", tool: "get_user_details", args: `{"username":"jl"}`,
			want: `{"id":"jl","created":1173923446,"karma":2937,"about":"This is a test","submitted_count":256}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			tl := toolByName(t, hackernews.Tools(f.start(0)), tt.tool)
			got, err := tl.Call(t.Context(), json.RawMessage(tt.args))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("Call = %s\nwant %s", got, tt.want)
			}
			if tt.wantIDs != nil {
				var stories []hackernews.Story
				if err := json.Unmarshal([]byte(got), &stories); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids(stories), tt.wantIDs) {
					t.Errorf("got ids %v, want %v", ids(stories), tt.wantIDs)
				}
			}
		})
	}
}

func TestToolsDefaultNumStories(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.generated(50)
	tl := toolByName(t, hackernews.Tools(f.start(0)), "get_top_hackernews_stories")
	for _, args := range []string{`{}`, `{"num_stories":0}`, ``} {
		got, err := tl.Call(t.Context(), json.RawMessage(args))
		if err != nil {
			t.Fatalf("Call(%s): %v", args, err)
		}
		var stories []hackernews.Story
		if err := json.Unmarshal([]byte(got), &stories); err != nil {
			t.Fatal(err)
		}
		if len(stories) != 10 {
			t.Errorf("Call(%s) returned %d stories, want 10", args, len(stories))
		}
	}
}

func TestToolsCallErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		tool        string
		args        string
		wantInvalid bool // the error wraps tool.ErrInvalidArguments
		wantMissing bool // the error wraps hackernews.ErrNotFound
	}{
		{name: "not JSON", tool: "get_top_hackernews_stories", args: `ten`, wantInvalid: true},
		{name: "string number", tool: "get_top_hackernews_stories", args: `{"num_stories":"ten"}`, wantInvalid: true},
		{name: "fraction", tool: "get_top_hackernews_stories", args: `{"num_stories":2.5}`, wantInvalid: true},
		{name: "unknown property", tool: "get_top_hackernews_stories", args: `{"n":3}`, wantInvalid: true},
		{name: "negative", tool: "get_top_hackernews_stories", args: `{"num_stories":-1}`},
		{name: "no username", tool: "get_user_details", args: `{}`, wantInvalid: true},
		{name: "username not a string", tool: "get_user_details", args: `{"username":7}`, wantInvalid: true},
		{name: "empty username", tool: "get_user_details", args: `{"username":""}`},
		{name: "username with slash", tool: "get_user_details", args: `{"username":"../item/8863"}`},
		{name: "unknown user", tool: "get_user_details", args: `{"username":"nobody"}`, wantMissing: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			tl := toolByName(t, hackernews.Tools(f.start(0)), tt.tool)
			_, err := tl.Call(t.Context(), json.RawMessage(tt.args))
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, tool.ErrInvalidArguments); got != tt.wantInvalid {
				t.Errorf("error %q: wraps ErrInvalidArguments = %v, want %v", err, got, tt.wantInvalid)
			}
			if got := errors.Is(err, hackernews.ErrNotFound); got != tt.wantMissing {
				t.Errorf("error %q: wraps ErrNotFound = %v, want %v", err, got, tt.wantMissing)
			}
			if !tt.wantMissing && (f.userRequests.Load() != 0 || f.itemRequests.Load() != 0) {
				t.Errorf("error %q, but the server was asked for items or users", err)
			}
		})
	}
}
