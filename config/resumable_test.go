package config

import (
	"errors"
	"strings"
	"testing"
)

func TestResumable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key  string // the workflow's resumable line, "" for none
		want bool   // NotResumable
	}{
		{"", false},
		{"resumable: true", false},
		{"resumable: false", true},
	}
	for _, tt := range tests {
		src := base + "workflows:\n  w:\n    " + tt.key + "\n    steps: [{name: x, agent: a}]\n"
		cfg, err := Parse("kern.yaml", []byte(src))
		if err != nil {
			t.Errorf("%q: %v", tt.key, err)
			continue
		}
		if got := cfg.Workflows[0].NotResumable; got != tt.want {
			t.Errorf("%q: NotResumable = %v, want %v", tt.key, got, tt.want)
		}
	}
}

func TestResumableNotABoolean(t *testing.T) {
	t.Parallel()
	src := base + "workflows:\n  w:\n    resumable: no\n    steps: [{name: x, agent: a}]\n"
	_, err := Parse("kern.yaml", []byte(src))
	var es Errors
	if !errors.As(err, &es) || len(es) != 1 {
		t.Fatalf("error %v, want one Error", err)
	}
	if e := es[0]; e.Line != 7 || !strings.Contains(e.Msg, `workflow "w" resumable must be true or false, not a string`) {
		t.Errorf("error %v, want line 7 and a message about resumable", e)
	}
}
