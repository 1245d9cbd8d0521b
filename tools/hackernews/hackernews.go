// Package hackernews gives agents Hacker News tools: a client for the public Hacker News
// API (Firebase's REST interface at https://hacker-news.firebaseio.com/v0) and the tools
// built on it, get_top_hackernews_stories and get_user_details.
//
// The API needs no key. It serves lists of item ids, and each item on its own, so
// [Client.TopStories] makes one request for the list and one per story, a few at a time.
// A location that holds nothing (a missing item or user) is answered with status 200
// and the body null.
package hackernews

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultBaseURL is the root of the Hacker News API, used when [Client.BaseURL] is empty.
const DefaultBaseURL = "https://hacker-news.firebaseio.com/v0"

// DefaultConcurrency is how many item requests [Client.TopStories] has in flight at once
// when [Client.Concurrency] is not set.
const DefaultConcurrency = 8

// MaxStories is the most stories [Client.TopStories] returns; a larger n is reduced to it.
const MaxStories = 100

// ErrNotFound is wrapped by the error [Client.User] returns when the user does not exist.
var ErrNotFound = errors.New("not found")

// defaultHTTPClient sends requests for a Client without an HTTPClient.
var defaultHTTPClient = &http.Client{Timeout: 30 * time.Second}

// maxBody bounds the size of a response body. The largest real bodies are the
// profiles of prolific users, whose submitted lists run to a few hundred kilobytes.
const maxBody = 16 << 20

// maxUsername bounds the length of a username. Hacker News allows 2 to 15 characters
// today; the bound is looser so that no older account is refused.
const maxUsername = 64

// Client reads the Hacker News API. The zero value is ready to use. A Client is safe
// for concurrent use and must not be modified once in use.
type Client struct {
	// BaseURL is the root of the API, such as DefaultBaseURL; empty means DefaultBaseURL.
	BaseURL string
	// HTTPClient sends the requests; nil means a client whose requests time out after
	// 30 seconds.
	HTTPClient *http.Client
	// Concurrency bounds how many item requests TopStories has in flight at once; zero
	// or less means DefaultConcurrency.
	Concurrency int
}

// Story is a story (or a job or poll) on the Hacker News front page.
type Story struct {
	ID          int    `json:"id"`
	Title       string `json:"title"`
	URL         string `json:"url,omitempty"` // empty for Ask HN posts and most jobs
	Score       int    `json:"score"`
	By          string `json:"by"`          // the author's username
	Descendants int    `json:"descendants"` // the number of comments
	Time        int64  `json:"time"`        // when it was posted, in Unix seconds
	Text        string `json:"text,omitempty"`
	Type        string `json:"type"` // "story", "job" or "poll"
}

// User is a Hacker News user's profile.
type User struct {
	ID             string `json:"id"`      // the username; case-sensitive
	Created        int64  `json:"created"` // when the account was created, in Unix seconds
	Karma          int    `json:"karma"`
	About          string `json:"about,omitempty"` // the user's self-description, in HTML
	SubmittedCount int    `json:"submitted_count"` // how many stories, polls and comments the user posted
}

// item is an item as the API sends it.
type item struct {
	Story
	Deleted bool `json:"deleted"`
	Dead    bool `json:"dead"`
}

// userBody is a user as the API sends it.
type userBody struct {
	ID        string `json:"id"`
	Created   int64  `json:"created"`
	Karma     int    `json:"karma"`
	About     string `json:"about"`
	Submitted []int  `json:"submitted"`
}

// TopStories returns the stories at the top of the front page, in front-page order.
//
// It reads the first n ids of the top list (at most MaxStories; a larger n is reduced to
// MaxStories) and fetches them concurrently. Items that are missing, deleted or dead are
// left out, so fewer than n stories may be returned. If any request fails, TopStories
// cancels the others and returns the error. n must be at least 1.
func (c *Client) TopStories(ctx context.Context, n int) ([]Story, error) {
	if n < 1 {
		return nil, fmt.Errorf("hackernews: top stories: asked for %d stories, need at least 1", n)
	}
	n = min(n, MaxStories)
	var ids []int
	if _, err := c.get(ctx, "/topstories.json", &ids); err != nil {
		return nil, fmt.Errorf("hackernews: top stories: %w", err)
	}
	items, err := c.items(ctx, ids[:min(n, len(ids))])
	if err != nil {
		return nil, fmt.Errorf("hackernews: top stories: %w", err)
	}
	stories := make([]Story, 0, len(items))
	for _, it := range items {
		if it == nil || it.Deleted || it.Dead {
			continue
		}
		stories = append(stories, it.Story)
	}
	return stories, nil
}

// items fetches the items with the given ids, at most c.concurrency() at a time. The
// result is in the order of ids, with nil for a missing item. The first error cancels
// the other requests.
func (c *Client) items(ctx context.Context, ids []int) ([]*item, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	items := make([]*item, len(ids))
	sem := make(chan struct{}, c.concurrency())
	var wg sync.WaitGroup
	for i, id := range ids {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := c.get(ctx, "/item/"+strconv.Itoa(id)+".json", &items[i]); err != nil {
				cancel(fmt.Errorf("item %d: %w", id, err))
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return items, nil
}

// User returns the profile of the user with the given username. The error wraps
// ErrNotFound if there is no such user. A username is 1 to 64 ASCII letters, digits,
// '-' or '_'; others are refused without a request.
func (c *Client) User(ctx context.Context, id string) (*User, error) {
	if err := checkUsername(id); err != nil {
		return nil, fmt.Errorf("hackernews: user %q: %w", id, err)
	}
	var u userBody
	found, err := c.get(ctx, "/user/"+url.PathEscape(id)+".json", &u)
	if err != nil {
		return nil, fmt.Errorf("hackernews: user %q: %w", id, err)
	}
	if !found {
		return nil, fmt.Errorf("hackernews: user %q: %w", id, ErrNotFound)
	}
	return &User{ID: u.ID, Created: u.Created, Karma: u.Karma, About: u.About, SubmittedCount: len(u.Submitted)}, nil
}

// checkUsername reports why id cannot be a Hacker News username, or nil if it can.
func checkUsername(id string) error {
	if id == "" || len(id) > maxUsername {
		return fmt.Errorf("invalid username: must be 1 to %d characters long", maxUsername)
	}
	for _, r := range id {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("invalid username: %q is not a letter, digit, '-' or '_'", r)
		}
	}
	return nil
}

// get fetches path, relative to the base URL, and decodes the JSON body into v. It
// returns false, leaving v alone, if the body is null: the API's answer for a location
// that holds nothing.
func (c *Client) get(ctx context.Context, path string, v any) (found bool, err error) {
	u := c.baseURL() + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return false, err // a *url.Error, which names the method and URL
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return false, fmt.Errorf("GET %s: read body: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET %s: %s%s", u, resp.Status, excerpt(body))
	}
	if len(body) > maxBody {
		return false, fmt.Errorf("GET %s: body larger than %d bytes", u, maxBody)
	}
	if string(bytes.TrimSpace(body)) == "null" {
		return false, nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return false, fmt.Errorf("GET %s: invalid JSON: %w", u, err)
	}
	return true, nil
}

// excerpt returns the start of an error response's body, on one line and prefixed
// with ": ", or "" if the body is empty.
func excerpt(body []byte) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(body), "\uFFFD")), " ")
	if s == "" {
		return ""
	}
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return ": " + s
}

func (c *Client) baseURL() string {
	if c.BaseURL == "" {
		return DefaultBaseURL
	}
	return strings.TrimSuffix(c.BaseURL, "/")
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient == nil {
		return defaultHTTPClient
	}
	return c.HTTPClient
}

func (c *Client) concurrency() int {
	if c.Concurrency <= 0 {
		return DefaultConcurrency
	}
	return c.Concurrency
}
