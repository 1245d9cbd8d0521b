package hackernews_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/kern-dev/kern/tools/hackernews"
)

// exampleServer stands in for https://hacker-news.firebaseio.com/v0: a top list of two
// stories, one of them deleted, and one user. Everything else is null, as on Firebase.
func exampleServer() *httptest.Server {
	bodies := map[string]string{
		"/v0/topstories.json": `[8863,9000002]`,
		"/v0/item/8863.json": `{"by":"dhouston","descendants":71,"id":8863,"score":111,"time":1175714200,` +
			`"title":"My YC app: Dropbox - Throw away your USB drive","type":"story","url":"http://www.getdropbox.com/u/2/screencast.html"}`,
		"/v0/item/9000002.json": `{"deleted":true,"id":9000002,"time":1175714300,"type":"story"}`,
		"/v0/user/jl.json":      `{"about":"This is a test","created":1173923446,"delay":0,"id":"jl","karma":2937,"submitted":[8265435,8168423]}`,
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := bodies[r.URL.Path]
		if !ok {
			body = "null"
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		io.WriteString(w, body)
	}))
}

func ExampleClient_TopStories() {
	srv := exampleServer()
	defer srv.Close()

	// A zero Client reads the real API; this one reads the stand-in.
	c := &hackernews.Client{BaseURL: srv.URL + "/v0", HTTPClient: srv.Client()}
	stories, err := c.TopStories(context.Background(), 10)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range stories {
		fmt.Printf("%s (%d points by %s, %d comments)\n", s.Title, s.Score, s.By, s.Descendants)
	}
	// Output:
	// My YC app: Dropbox - Throw away your USB drive (111 points by dhouston, 71 comments)
}

func ExampleClient_User() {
	srv := exampleServer()
	defer srv.Close()

	c := &hackernews.Client{BaseURL: srv.URL + "/v0", HTTPClient: srv.Client()}
	u, err := c.User(context.Background(), "jl")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s: karma %d, %d submissions\n", u.ID, u.Karma, u.SubmittedCount)

	_, err = c.User(context.Background(), "nobody")
	fmt.Println(errors.Is(err, hackernews.ErrNotFound))
	// Output:
	// jl: karma 2937, 2 submissions
	// true
}

func ExampleTools() {
	srv := exampleServer()
	defer srv.Close()

	// hackernews.New() gives the same tools, reading the real API.
	tools := hackernews.Tools(&hackernews.Client{BaseURL: srv.URL + "/v0", HTTPClient: srv.Client()})
	for _, t := range tools {
		fmt.Println(t.Definition().Name)
	}
	out, err := tools[1].Call(context.Background(), json.RawMessage(`{"username":"jl"}`))
	fmt.Println(out, err)
	// Output:
	// get_top_hackernews_stories
	// get_user_details
	// {"id":"jl","created":1173923446,"karma":2937,"about":"This is a test","submitted_count":2} <nil>
}
