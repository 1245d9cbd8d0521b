package hackernews_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kern-dev/kern/tools/hackernews"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeHN fakes the Hacker News Firebase API under /v0: the JSON bodies it holds are
// served with status 200, and any other location under /v0 is answered with the body
// null, as Firebase does. Configure it, then call start; it must not be changed after.
type fakeHN struct {
	t     *testing.T
	top   string            // body of /v0/topstories.json
	items map[int]string    // body of /v0/item/<id>.json
	users map[string]string // body of /v0/user/<id>.json
	fail  map[string]reply  // replies that replace the above, by request path

	// hook, if set, is called for each request before it is answered.
	hook func(r *http.Request)

	itemRequests atomic.Int64 // item requests received
	userRequests atomic.Int64 // user requests received
	inFlight     atomic.Int64 // item requests being handled
	maxInFlight  atomic.Int64 // the most item requests handled at once
}

// reply is a canned response.
type reply struct {
	status int
	body   string
}

// newFake returns a fake serving the fixtures under testdata.
func newFake(t *testing.T) *fakeHN {
	t.Helper()
	f := &fakeHN{t: t, top: readFile(t, "topstories.json"), items: map[int]string{}, users: map[string]string{}, fail: map[string]reply{}}
	for _, name := range glob(t, "item/*.json") {
		id, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(name), ".json"))
		if err != nil {
			t.Fatal(err)
		}
		f.items[id] = readFile(t, name)
	}
	for _, name := range glob(t, "user/*.json") {
		f.users[strings.TrimSuffix(filepath.Base(name), ".json")] = readFile(t, name)
	}
	return f
}

// generated sets the top list to ids 1..n, each a story titled "story <id>".
func (f *fakeHN) generated(n int) {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = i + 1
		f.items[i+1] = fmt.Sprintf(`{"by":"u%d","descendants":0,"id":%d,"score":1,"time":1175714200,"title":"story %d","type":"story","url":"http://example.com/%d"}`, i+1, i+1, i+1, i+1)
	}
	b, _ := json.Marshal(ids)
	f.top = string(b)
}

// start serves f and returns a client of it with the given concurrency. The server is
// closed when the test ends, after t.Context is cancelled.
func (f *fakeHN) start(concurrency int) *hackernews.Client {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v0/topstories.json", func(w http.ResponseWriter, r *http.Request) {
		f.serve(w, r, f.top, true)
	})
	mux.HandleFunc("GET /v0/item/{file}", f.item)
	mux.HandleFunc("GET /v0/user/{file}", func(w http.ResponseWriter, r *http.Request) {
		f.userRequests.Add(1)
		name, _ := strings.CutSuffix(r.PathValue("file"), ".json")
		body, ok := f.users[name]
		f.serve(w, r, body, ok)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.t.Errorf("fake HN: unexpected request %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	})
	srv := httptest.NewServer(mux)
	f.t.Cleanup(srv.Close)
	return &hackernews.Client{BaseURL: srv.URL + "/v0", HTTPClient: srv.Client(), Concurrency: concurrency}
}

// item serves /v0/item/<id>.json, counting the requests in flight.
func (f *fakeHN) item(w http.ResponseWriter, r *http.Request) {
	f.itemRequests.Add(1)
	n := f.inFlight.Add(1)
	for {
		m := f.maxInFlight.Load()
		if n <= m || f.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	name, _ := strings.CutSuffix(r.PathValue("file"), ".json")
	id, _ := strconv.Atoi(name)
	body, ok := f.items[id]
	if f.hook != nil {
		f.hook(r)
	}
	// Leave before answering, so that the count never exceeds the client's.
	f.inFlight.Add(-1)
	f.respond(w, r, body, ok)
}

func (f *fakeHN) serve(w http.ResponseWriter, r *http.Request, body string, ok bool) {
	if f.hook != nil {
		f.hook(r)
	}
	f.respond(w, r, body, ok)
}

func (f *fakeHN) respond(w http.ResponseWriter, r *http.Request, body string, ok bool) {
	if rep, bad := f.fail[r.URL.Path]; bad {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(rep.status)
		w.Write([]byte(rep.body))
		return
	}
	if !ok {
		body = "null"
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write([]byte(body))
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func glob(t *testing.T, pattern string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(names) == 0 {
		t.Fatalf("no fixtures match %s: %v", pattern, err)
	}
	for i, name := range names {
		names[i], _ = filepath.Rel("testdata", name)
	}
	return names
}

// fixtureText returns the text of the fixture item id.
func fixtureText(t *testing.T, id int) string {
	t.Helper()
	var it struct{ Text string }
	if err := json.Unmarshal([]byte(readFile(t, fmt.Sprintf("item/%d.json", id))), &it); err != nil {
		t.Fatal(err)
	}
	return it.Text
}

// recv returns the next value from ch. It is a hang detector, not a timing assertion:
// the bound is far above anything a working client needs.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func ids(stories []hackernews.Story) []int {
	out := make([]int, len(stories))
	for i, s := range stories {
		out[i] = s.ID
	}
	return out
}

func TestTopStories(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := f.start(0)
	got, err := c.TopStories(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []hackernews.Story{
		{ID: 8863, Title: "My YC app: Dropbox - Throw away your USB drive", URL: "http://www.getdropbox.com/u/2/screencast.html",
			Score: 111, By: "dhouston", Descendants: 71, Time: 1175714200, Type: "story"},
		{ID: 121003, Title: "Ask HN: The Arc Effect", Score: 25, By: "tel", Descendants: 16, Time: 1203647620,
			Text: fixtureText(t, 121003), Type: "story"},
		{ID: 192327, Title: "Justin.tv is looking for a Lead Flash Engineer!", Score: 6, By: "justin", Time: 1210981217,
			Text: fixtureText(t, 192327), Type: "job"},
		{ID: 126809, Title: "Poll: What would happen if News.YC had explicit support for polls?", Score: 46, By: "pg",
			Descendants: 54, Time: 1204403652, Type: "poll"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("TopStories = %+v\nwant %+v", got, want)
	}
	if n := f.itemRequests.Load(); n != 7 {
		t.Errorf("%d item requests, want 7 (the whole list, shorter than n)", n)
	}
}

func TestTopStoriesFetchesOnlyN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n, listLen   int
		wantRequests int64
	}{
		{n: 1, listLen: 500, wantRequests: 1},
		{n: 30, listLen: 500, wantRequests: 30},
		{n: hackernews.MaxStories, listLen: 500, wantRequests: hackernews.MaxStories},
		{n: 1000, listLen: 500, wantRequests: hackernews.MaxStories}, // reduced to MaxStories
		{n: 10, listLen: 3, wantRequests: 3},
		{n: 10, listLen: 0, wantRequests: 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("n=%d,list=%d", tt.n, tt.listLen), func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.generated(tt.listLen)
			got, err := f.start(0).TopStories(t.Context(), tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Error("TopStories returned a nil slice, want empty")
			}
			if want := int(tt.wantRequests); !slices.Equal(ids(got), seq(want)) {
				t.Errorf("got ids %v, want 1..%d", ids(got), want)
			}
			if n := f.itemRequests.Load(); n != tt.wantRequests {
				t.Errorf("%d item requests, want %d", n, tt.wantRequests)
			}
		})
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i + 1
	}
	return s
}

func TestTopStoriesInvalidN(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := f.start(0)
	for _, n := range []int{0, -1} {
		if _, err := c.TopStories(t.Context(), n); err == nil {
			t.Errorf("TopStories(%d) succeeded", n)
		}
	}
	if n := f.itemRequests.Load(); n != 0 {
		t.Errorf("%d item requests for invalid n", n)
	}
}

// TestTopStoriesConcurrency checks that the client keeps Concurrency item requests in
// flight, no more and no fewer. The fake server holds every item request until the test
// releases it; the test releases one only when the client has as many in flight as it
// may, newest first, so that responses arrive out of order. A client more sequential
// than asked hangs (caught by recv); a less bounded one shows in maxInFlight, as its
// extra requests arrive while the others are held.
func TestTopStoriesConcurrency(t *testing.T) {
	t.Parallel()
	const total = 40
	for _, bound := range []int{1, 3, 8, 0} {
		t.Run(fmt.Sprintf("concurrency=%d", bound), func(t *testing.T) {
			t.Parallel()
			want := bound
			if want == 0 {
				want = hackernews.DefaultConcurrency
			}
			f := newFake(t)
			f.generated(total)
			arrivals := make(chan chan struct{}, total)
			f.hook = func(r *http.Request) {
				if !strings.HasPrefix(r.URL.Path, "/v0/item/") {
					return
				}
				release := make(chan struct{})
				arrivals <- release
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
			c := f.start(bound)
			done := make(chan error, 1)
			var got []hackernews.Story
			go func() {
				var err error
				got, err = c.TopStories(t.Context(), total)
				done <- err
			}()
			var held []chan struct{}
			for released := 0; released < total; released++ {
				for len(held) < min(want, total-released) {
					held = append(held, recv(t, arrivals, "an item request"))
				}
				close(held[len(held)-1])
				held = held[:len(held)-1]
			}
			if err := recv(t, done, "TopStories"); err != nil {
				t.Fatal(err)
			}
			if m := f.maxInFlight.Load(); m != int64(want) {
				t.Errorf("at most %d item requests in flight, want %d", m, want)
			}
			if !slices.Equal(ids(got), seq(total)) {
				t.Errorf("got ids %v, want 1..%d in order", ids(got), total)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		path     string
		reply    reply
		call     func(context.Context, *hackernews.Client) error
		wantText []string // in the error's message
	}{
		{
			name: "top list 500", path: "/v0/topstories.json",
			reply:    reply{http.StatusInternalServerError, `{"error":"internal"}`},
			call:     topStories,
			wantText: []string{"hackernews: top stories", "topstories.json", "500 Internal Server Error", `{"error":"internal"}`},
		},
		{
			name: "top list 401", path: "/v0/topstories.json",
			reply:    reply{http.StatusUnauthorized, `{"error" : "Permission denied"}`},
			call:     topStories,
			wantText: []string{"401 Unauthorized", "Permission denied"},
		},
		{
			name: "top list invalid JSON", path: "/v0/topstories.json",
			reply:    reply{http.StatusOK, `[8863, 121003`},
			call:     topStories,
			wantText: []string{"hackernews: top stories", "invalid JSON"},
		},
		{
			name: "top list not a list", path: "/v0/topstories.json",
			reply:    reply{http.StatusOK, `{"items":[1]}`},
			call:     topStories,
			wantText: []string{"invalid JSON"},
		},
		{
			name: "item 503", path: "/v0/item/121003.json",
			reply:    reply{http.StatusServiceUnavailable, ""},
			call:     topStories,
			wantText: []string{"hackernews: top stories: item 121003", "503 Service Unavailable"},
		},
		{
			name: "item invalid JSON", path: "/v0/item/8863.json",
			reply:    reply{http.StatusOK, `{"id":8863,"title":`},
			call:     topStories,
			wantText: []string{"item 8863", "invalid JSON"},
		},
		{
			name: "user 500", path: "/v0/user/jl.json",
			reply:    reply{http.StatusInternalServerError, "oops"},
			call:     userJL,
			wantText: []string{`hackernews: user "jl"`, "500 Internal Server Error", "oops"},
		},
		{
			name: "user invalid JSON", path: "/v0/user/jl.json",
			reply:    reply{http.StatusOK, `<html>`},
			call:     userJL,
			wantText: []string{`hackernews: user "jl"`, "invalid JSON"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.fail[tt.path] = tt.reply
			err := tt.call(t.Context(), f.start(0))
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, hackernews.ErrNotFound) {
				t.Errorf("error %q wraps ErrNotFound", err)
			}
			for _, s := range tt.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func topStories(ctx context.Context, c *hackernews.Client) error {
	_, err := c.TopStories(ctx, 10)
	return err
}

func userJL(ctx context.Context, c *hackernews.Client) error {
	_, err := c.User(ctx, "jl")
	return err
}

func TestUser(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := f.start(0)
	got, err := c.User(t.Context(), "jl")
	if err != nil {
		t.Fatal(err)
	}
	want := hackernews.User{ID: "jl", Created: 1173923446, Karma: 2937, About: "This is a test", SubmittedCount: 256}
	if *got != want {
		t.Errorf("User = %+v, want %+v", *got, want)
	}
}

func TestUserNotFound(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := f.start(0)
	for _, id := range []string{"nobody", "JL"} { // ids are case-sensitive
		_, err := c.User(t.Context(), id)
		if !errors.Is(err, hackernews.ErrNotFound) {
			t.Errorf("User(%q) error = %v, want ErrNotFound", id, err)
		}
	}
	if n := f.userRequests.Load(); n != 2 {
		t.Errorf("%d user requests, want 2", n)
	}
}

func TestUserInvalidID(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := f.start(0)
	for _, id := range []string{"", "jl/..", "../jl", "jl.json", "j l", "jl?x=1", "jl#", "%6Al", "jü", strings.Repeat("a", 65)} {
		_, err := c.User(t.Context(), id)
		if err == nil || errors.Is(err, hackernews.ErrNotFound) {
			t.Errorf("User(%q) error = %v, want an invalid-username error", id, err)
		}
	}
	if n := f.userRequests.Load(); n != 0 {
		t.Errorf("%d user requests for invalid ids, want 0", n)
	}
}

// TestUserPathEscaped checks that a username reaches the server as one path segment.
func TestUserPathEscaped(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.users["_a-Z9"] = `{"created":1,"id":"_a-Z9","karma":1}`
	got, err := f.start(0).User(t.Context(), "_a-Z9")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "_a-Z9" || got.SubmittedCount != 0 || got.About != "" {
		t.Errorf("User = %+v", got)
	}
}

// TestCancel cancels a call while the fake server holds its request, and checks that
// the call returns and the server sees the request cancelled.
func TestCancel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		path string // the path whose requests the server holds
		call func(context.Context, *hackernews.Client) error
	}{
		{"top list", "/v0/topstories.json", topStories},
		{"items", "/v0/item/", topStories},
		{"user", "/v0/user/", userJL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			held := make(chan struct{}, 100)
			sawCancel := make(chan struct{}, 100)
			f.hook = func(r *http.Request) {
				if !strings.HasPrefix(r.URL.Path, tt.path) {
					return
				}
				held <- struct{}{}
				<-r.Context().Done()
				sawCancel <- struct{}{}
			}
			c := f.start(2)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- tt.call(ctx, c) }()
			recv(t, held, "the request to reach the server")
			cancel()
			err := recv(t, done, "the call to return")
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error = %v, want context.Canceled", err)
			}
			recv(t, sawCancel, "the server to see the request cancelled")
		})
	}
}

// TestItemErrorCancelsOthers checks that a failed item request cancels the requests
// still in flight.
func TestItemErrorCancelsOthers(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.generated(10)
	f.fail["/v0/item/2.json"] = reply{http.StatusInternalServerError, ""}
	f.hook = func(r *http.Request) {
		if r.URL.Path == "/v0/item/1.json" {
			<-r.Context().Done() // answered only when cancelled, if it is sent at all
		}
	}
	c := f.start(2)
	done := make(chan error, 1)
	go func() {
		_, err := c.TopStories(t.Context(), 10)
		done <- err
	}()
	err := recv(t, done, "TopStories")
	if err == nil || !strings.Contains(err.Error(), "item 2:") {
		t.Errorf("error = %v, want one about item 2", err)
	}
}
