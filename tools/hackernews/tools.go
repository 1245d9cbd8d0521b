package hackernews

import (
	"context"

	"github.com/kern-dev/kern/tool"
)

// defaultNumStories is how many stories get_top_hackernews_stories returns when the
// model does not say.
const defaultNumStories = 10

// topStoriesArgs are the arguments of get_top_hackernews_stories.
type topStoriesArgs struct {
	NumStories int `json:"num_stories,omitempty" jsonschema:"how many stories to return, from 1 to 100; 10 if omitted"`
}

// userArgs are the arguments of get_user_details.
type userArgs struct {
	Username string `json:"username" jsonschema:"the user's Hacker News username (case-sensitive), e.g. pg"`
}

// Tools returns the Hacker News tools, which read the API through c (nil means a zero
// Client, which reads the real API):
//
//   - get_top_hackernews_stories takes num_stories (1 to 100, 10 if omitted) and returns
//     the top stories as a JSON array of [Story] objects, in front-page order.
//   - get_user_details takes a username and returns the user's profile as a JSON [User]
//     object; an unknown user is a tool error wrapping [ErrNotFound].
func Tools(c *Client) []tool.Tool {
	if c == nil {
		c = &Client{}
	}
	return []tool.Tool{
		tool.Func("get_top_hackernews_stories",
			"Get the top stories on Hacker News, in front-page order, as a JSON array. Each story has "+
				"id, title, url (empty for Ask HN), score, by (the author), descendants (the number of comments), "+
				"time (Unix seconds), text (HTML, for Ask HN and job posts) and type.",
			func(ctx context.Context, args topStoriesArgs) ([]Story, error) {
				n := args.NumStories
				if n == 0 {
					n = defaultNumStories
				}
				return c.TopStories(ctx, n)
			}),
		tool.Func("get_user_details",
			"Get a Hacker News user's profile as JSON: id, created (Unix seconds), karma, "+
				"about (HTML) and submitted_count (how many stories and comments they posted).",
			func(ctx context.Context, args userArgs) (*User, error) {
				return c.User(ctx, args.Username)
			}),
	}
}

// New returns the Hacker News tools reading the real API with default settings; it is
// Tools(nil). An agent takes them as Tools: hackernews.New().
func New() []tool.Tool {
	return Tools(nil)
}
