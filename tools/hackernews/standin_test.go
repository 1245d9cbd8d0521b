package hackernews

import (
	"context"
	"strings"
	"testing"
)

func TestStandIn(t *testing.T) {
	c := StandIn()
	stories, err := c.TopStories(context.Background(), 2)
	if err != nil || len(stories) != 2 || !strings.HasPrefix(stories[0].Title, "[stand-in] ") {
		t.Fatalf("top stories: %+v %v", stories, err)
	}
	u, err := c.User(context.Background(), "ember")
	if err != nil || u.ID != "ember" || !strings.Contains(u.About, "stand-in") {
		t.Fatalf("user: %+v %v", u, err)
	}
	if _, err := c.TopStories(context.Background(), 100); err != nil {
		t.Fatalf("more stories than the stand-in has: %v", err)
	}
}
