package mcp

import (
	"strings"
	"testing"
)

func TestModelName(t *testing.T) {
	taken := map[string]bool{}
	long := strings.Repeat("x", 100)
	for _, tt := range []struct{ in, want string }{
		{"get-sum", "get-sum"},
		{"github.search_issues", "github_search_issues"},
		{"github/search_issues", "github_search_issues_2"},
		{"", "tool"},
		{long, long[:64]},
		{long + "y", long[:62] + "_2"},
	} {
		if got := modelName(tt.in, taken); got != tt.want {
			t.Errorf("modelName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
