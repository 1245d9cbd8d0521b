package hackernews

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// StandInBaseURL is the base URL of the stand-in's answers (see StandIn): no
// request leaves the process.
const StandInBaseURL = "http://hackernews.stand-in.invalid/v0"

// standInStories are the stand-in's front page: made up, and labelled so.
var standInStories = []Story{
	{ID: 1, Title: "[stand-in] Show HN: A dragon that learned to code", By: "ember", Score: 321, Descendants: 42, Time: 1764547200, Type: "story", URL: "https://example.com/dragon"},
	{ID: 2, Title: "[stand-in] Small programs that work beat large ones that might", By: "ada", Score: 210, Descendants: 17, Time: 1764550800, Type: "story", URL: "https://example.com/small"},
	{ID: 3, Title: "[stand-in] Ask HN: How do you keep a long-running job cancellable?", By: "grace", Score: 99, Descendants: 63, Time: 1764554400, Type: "story",
		Text: "Offline demo data: kern's Hacker News stand-in, not the real front page."},
}

// StandIn returns a Client whose requests never leave the process: it answers
// from a few made-up stories whose titles start with "[stand-in]", so that an
// offline demo (kern's reference workflow without an API key) calls the tools as
// it would the real API, and nobody mistakes the answers for the news.
func StandIn() *Client {
	return &Client{BaseURL: StandInBaseURL, HTTPClient: &http.Client{Transport: standIn{}}}
}

// standIn is an http.RoundTripper that answers the Hacker News API's requests
// from standInStories.
type standIn struct{}

func (standIn) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	path := strings.TrimPrefix(r.URL.Path, "/v0")
	var body any
	switch {
	case path == "/topstories.json":
		ids := make([]int, len(standInStories))
		for i, s := range standInStories {
			ids[i] = s.ID
		}
		body = ids
	case strings.HasPrefix(path, "/item/"):
		id, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(path, "/item/"), ".json"))
		if err == nil && id >= 1 && id <= len(standInStories) {
			body = standInStories[id-1]
		}
	case strings.HasPrefix(path, "/user/"):
		name := strings.TrimSuffix(strings.TrimPrefix(path, "/user/"), ".json")
		body = userBody{ID: name, Created: 1700000000, Karma: 1, About: "[stand-in] offline demo user"}
	}
	b, _ := json.Marshal(body) // null for an unknown item or path, as the API answers
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(string(b))),
		ContentLength: int64(len(b)), Request: r}, nil
}
