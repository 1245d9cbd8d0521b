package main

import (
	"strings"
	"testing"
	"time"
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
			if err := runExample(t.Context(), &out, "a dragon", tt.cancelAfter, 0); err != nil {
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
