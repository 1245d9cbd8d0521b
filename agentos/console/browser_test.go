package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/agentos"
	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// chromium is Debian's browser, which the browser tests drive; KERN_CHROMIUM
// names another. Without one the tests skip, loudly, except in CI, where they
// fail.
func chromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("KERN_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(path); err != nil {
		if pgtest.InCI() {
			t.Fatalf("chromium is required in CI: %v (apt-get install chromium)", err)
		}
		t.Skipf("!!! BROWSER TESTS SKIPPED: %v; apt-get install chromium, or set KERN_CHROMIUM", err)
	}
	return path
}

// browser opens a headless chromium tab for t, closed when t ends. On a failure
// a screenshot of the page is saved under KERN_TEST_ARTIFACTS (or the system's
// temporary folder).
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	// A bound on the whole test, so that a broken page fails rather than hangs;
	// no assertion is timed.
	ctx, cancelTimeout := context.WithTimeout(context.Background(), 2*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancelTimeout()
	})
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dir := os.Getenv("KERN_TEST_ARTIFACTS")
		if dir == "" {
			dir = filepath.Join(os.TempDir(), "kern-test-artifacts")
		}
		shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(90))
		if err != nil {
			t.Logf("no screenshot: %v", err)
			return
		}
		name := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+".jpg")
		if err := os.MkdirAll(dir, 0o755); err == nil && os.WriteFile(name, shot, 0o644) == nil {
			t.Logf("screenshot of the page: %s", name)
		}
	})
	return bctx
}

// fedModel is a fake model whose text the test feeds, a chunk at a time: each
// send on chunks returns once the model has yielded the chunk; closing chunks ends
// the answer. It stops at once when its run is cancelled.
type fedModel struct {
	chunks chan string
}

func newFedModel() *fedModel { return &fedModel{chunks: make(chan string)} }

func (m *fedModel) Stream(ctx context.Context, req *model.Request) iter.Seq2[model.Chunk, error] {
	return func(yield func(model.Chunk, error) bool) {
		for {
			select {
			case <-ctx.Done():
				yield(model.Chunk{}, ctx.Err())
				return
			case s, ok := <-m.chunks:
				if !ok {
					yield(model.Chunk{FinishReason: model.FinishStop, Usage: &model.Usage{InputTokens: 1, OutputTokens: 1, TotalTokens: 2}}, nil)
					return
				}
				if !yield(model.Chunk{Text: s}, nil) {
					return
				}
			}
		}
	}
}

// feed sends chunks to m, failing t if the run stops taking them.
func (m *fedModel) feed(t *testing.T, ctx context.Context, chunks ...string) {
	t.Helper()
	for _, c := range chunks {
		select {
		case m.chunks <- c:
		case <-ctx.Done():
			t.Fatalf("the model was not asked for %q: %v", c, ctx.Err())
		}
	}
}

// server is a kern server under test, on SQLite, over HTTP.
type server struct {
	srv   *agentos.Server
	ts    *httptest.Server
	conns *conns
	store store.Store
}

// conns tracks every connection the test server accepted, also those a stream
// took over from net/http, which httptest.Server.CloseClientConnections no longer
// knows of.
type conns struct {
	net.Listener
	mu  sync.Mutex
	all []net.Conn
}

func (l *conns) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.all = append(l.all, c)
		l.mu.Unlock()
	}
	return c, err
}

// cut closes every connection to the server, as a network failure would.
func (l *conns) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.all {
		c.Close()
	}
	l.all = nil
}

func newServer(t *testing.T, cfg agentos.Config) *server {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	rec := store.NewRecorder(st, store.RecorderOptions{})
	cfg.Store, cfg.Recorder = st, rec
	srv, err := agentos.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	cs := &conns{Listener: ts.Listener}
	ts.Listener = cs
	ts.Start()
	s := &server{srv: srv, ts: ts, conns: cs, store: st}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		s.ts.Close()
		rec.Close()
		st.Close()
	})
	return s
}

// storyWorkflow is the reference workflow's shape: one agent step, "write",
// whose model the test feeds.
func storyWorkflow(m model.Model) *workflow.Workflow {
	writer := &agent.Agent{Name: "Writing Agent", Model: m}
	return &workflow.Workflow{Name: "Story", Description: "Writes a story",
		Steps: []workflow.Step{workflow.AgentStep("write", writer, "Write the story")}}
}

// do runs actions, failing t on an error.
func do(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := inPage(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitFor waits until a JavaScript expression is true in the page.
func waitFor(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	if _, err := inPage(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(0))); err != nil {
		t.Fatalf("waiting for %s: %v", expr, err)
	}
}

// inPage runs an action in the page, again when the page's JavaScript context
// was replaced under it (a page just loaded: the DevTools protocol then answers
// "Cannot find context with specified id" for the context it had).
func inPage[T any](ctx context.Context, a chromedp.Action[T]) (T, error) {
	for {
		v, err := chromedp.Run(ctx, a)
		if err == nil || !strings.Contains(err.Error(), "Cannot find context with specified id") || ctx.Err() != nil {
			return v, err
		}
	}
}

// laneText is the text shown for a step.
func laneText(step string) string {
	return fmt.Sprintf(`(document.querySelector('#run .lane[data-step=%q] .text') || {}).textContent`, step)
}

// startRun starts a run of the Story workflow from the Start page and waits for
// its page; it returns the run's id.
func startRun(t *testing.T, ctx context.Context, base, message string) string {
	t.Helper()
	do(t, ctx,
		chromedp.Navigate(base+"/#/start"),
		chromedp.WaitVisible(chromedp.CSS("#message")),
		chromedp.SendKeys(chromedp.CSS("#message"), message),
		chromedp.Click(chromedp.CSS("#start-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#run")),
	)
	return eval[string](t, ctx, `document.querySelector('#run').dataset.runId`)
}

func TestConsoleCancelRun(t *testing.T) {
	m := newFedModel()
	s := newServer(t, agentos.Config{Workflows: []*workflow.Workflow{storyWorkflow(m)}})
	ctx := browser(t)

	// Home lists the workflow and its steps.
	do(t, ctx, chromedp.Navigate(s.ts.URL+"/"))
	waitFor(t, ctx, `document.querySelector('.cards .card h3')?.textContent === 'Story'`)
	if got := eval[string](t, ctx, `document.querySelector('.diagram').textContent`); !strings.Contains(got, "write") {
		t.Fatalf("diagram %q lacks the step", got)
	}

	id := startRun(t, ctx, s.ts.URL, "Write a story about a dragon who learns to code.")
	m.feed(t, ctx, "Once ", "upon ", "a ", "time")
	waitFor(t, ctx, laneText("write")+` === 'Once upon a time'`)
	if got := eval[string](t, ctx, `document.querySelector('#run-status').textContent`); got != "RUNNING" {
		t.Fatalf("status %q while the run streams", got)
	}

	do(t, ctx, chromedp.Click(chromedp.CSS("#cancel-run")))
	waitFor(t, ctx, `document.querySelector('#run-status').textContent === 'CANCELLED' && document.querySelector('#run-content')`)
	waitFor(t, ctx, `document.querySelector('#cancel-outcome').textContent.includes('CANCELLED')`)
	outcome := eval[string](t, ctx, `document.querySelector('#cancel-outcome').textContent`)
	if !strings.Contains(outcome, "took") {
		t.Errorf("outcome %q does not say how long the cancel took", outcome)
	}
	if got := eval[string](t, ctx, laneText("write")); got != "Once upon a time" {
		t.Errorf("lane text after the cancel %q", got)
	}
	if got := eval[string](t, ctx, `document.querySelector('#run-content').textContent`); got != "Once upon a time" {
		t.Errorf("stored content %q, want the partial text", got)
	}
	t.Logf("cancel shown after %s ms (browser clock)", eval[string](t, ctx, `document.querySelector('#run').dataset.cancelMs`))
	rec, err := s.store.GetRun(context.Background(), id)
	if err != nil || rec.Status != "CANCELLED" || rec.Output.Content != "Once upon a time" {
		t.Fatalf("stored run %+v, %v", rec, err)
	}

	// The runs table lists it, CANCELLED, also filtered by status.
	do(t, ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(s.ts.URL+"/#/runs?status=CANCELLED"))
	waitFor(t, ctx, fmt.Sprintf(`document.querySelector('#runs-table tr[data-run-id=%q]')?.dataset.status === 'CANCELLED'`, id))

	// Every control of every page has an accessible name.
	for _, page := range []string{"/#/run/" + id, "/#/runs", "/#/start", "/#/", "/#/sessions", "/#/replicas"} {
		do(t, ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(s.ts.URL+page))
		waitFor(t, ctx, `document.querySelector('#main').dataset.loaded !== undefined`)
		unnamed := eval[[]string](t, ctx, `[...document.querySelectorAll('input, select, textarea, button')].filter(c =>
			!(c.labels && c.labels.length) && !c.getAttribute('aria-label') && !(c.tagName === 'BUTTON' && c.textContent.trim())
		).map(c => c.outerHTML.slice(0, 80))`)
		if len(unnamed) > 0 {
			t.Errorf("%s: controls without a name: %v", page, unnamed)
		}
	}

	// At a phone's width nothing is wider than the screen.
	do(t, ctx, chromedp.EmulateViewport(375, 800))
	for _, page := range []string{"/#/run/" + id, "/#/runs", "/#/start", "/#/"} {
		do(t, ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(s.ts.URL+page))
		waitFor(t, ctx, `document.querySelector('#main').dataset.loaded !== undefined`) // loaded
		if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > 375 {
			t.Errorf("%s is %d px wide on a 375 px screen", page, w)
		}
	}
	do(t, ctx, chromedp.EmulateViewport(1280, 800))

	// A new page load shows the finished run from the store.
	do(t, ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(s.ts.URL+"/#/run/"+id))
	waitFor(t, ctx, `document.querySelector('#run-status').textContent === 'CANCELLED' && document.querySelector('#run-content')`)
	if got := eval[string](t, ctx, laneText("write")); got != "Once upon a time" {
		t.Errorf("replayed lane text %q", got)
	}
	if got := eval[string](t, ctx, `document.querySelector('#run-content').textContent`); got != "Once upon a time" {
		t.Errorf("replayed content %q", got)
	}
}

func TestConsoleStreamSurvivesCutConnection(t *testing.T) {
	m := newFedModel()
	s := newServer(t, agentos.Config{Workflows: []*workflow.Workflow{storyWorkflow(m)}, StreamGrace: time.Minute})
	ctx := browser(t)

	id := startRun(t, ctx, s.ts.URL, "Tell a story")
	var want strings.Builder
	for i := range 10 {
		c := fmt.Sprintf("w%d ", i)
		m.feed(t, ctx, c)
		want.WriteString(c)
	}
	waitFor(t, ctx, laneText("write")+fmt.Sprintf(` === %q`, want.String()))

	// Cut every connection to the server: the page's stream with it.
	s.conns.cut()
	waitFor(t, ctx, `Number(document.querySelector('#run').dataset.connects) >= 2`)

	for i := 10; i < 20; i++ {
		c := fmt.Sprintf("w%d ", i)
		m.feed(t, ctx, c)
		want.WriteString(c)
	}
	close(m.chunks)
	waitFor(t, ctx, `document.querySelector('#run-status').textContent === 'COMPLETED' && document.querySelector('#run-content')`)
	if got := eval[string](t, ctx, laneText("write")); got != want.String() {
		t.Errorf("text after the reconnect:\n got %q\nwant %q", got, want.String())
	}
	stored, err := s.store.Events(context.Background(), id, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	ds := eval[map[string]string](t, ctx, `Object.assign({}, document.querySelector('#run').dataset)`)
	if ds["events"] != fmt.Sprint(len(stored)) || ds["lastIndex"] != fmt.Sprint(len(stored)-1) || ds["dupes"] != "0" || ds["gaps"] != "0" {
		t.Errorf("page saw %v; the store holds %d events", ds, len(stored))
	}
}

func TestConsoleSecurityKey(t *testing.T) {
	const key = "s3cret-key"
	m := newFedModel()
	s := newServer(t, agentos.Config{Workflows: []*workflow.Workflow{storyWorkflow(m)}, SecurityKey: key})
	// The assets are public; the API is not.
	for path, want := range map[string]int{"/": 200, "/console/app.js": 200, "/config": 401, "/console/nope.js": 404} {
		resp, err := http.Get(s.ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); want != 401 && !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
	}
	ctx := browser(t)
	do(t, ctx, chromedp.Navigate(s.ts.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#key-form")),
		chromedp.SendKeys(chromedp.CSS("#security-key"), "wrong"),
		chromedp.Click(chromedp.CSS("#key-form button[type=submit]")))
	waitFor(t, ctx, `document.querySelector('#key-form [role=alert]').textContent.includes('refused')`)
	eval[string](t, ctx, `document.querySelector('#security-key').value = ''`)
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#security-key"), key),
		chromedp.Click(chromedp.CSS("#key-form button[type=submit]")))
	waitFor(t, ctx, `document.querySelector('.cards .card h3')?.textContent === 'Story'`)
	if got := eval[string](t, ctx, `sessionStorage.getItem('kern.securityKey')`); got != key {
		t.Errorf("sessionStorage holds %q", got)
	}
	if u := eval[string](t, ctx, `location.href`); strings.Contains(u, key) {
		t.Errorf("the key is in the URL %q", u)
	}
	// The key reaches the stream too (fetch, with the header).
	startRun(t, ctx, s.ts.URL, "hello")
	m.feed(t, ctx, "secured ")
	close(m.chunks)
	waitFor(t, ctx, `document.querySelector('#run-status').textContent === 'COMPLETED' && document.querySelector('#run-content')`)
	if got := eval[string](t, ctx, laneText("write")); got != "secured " {
		t.Errorf("text %q", got)
	}
}

func TestConsoleRendersModelOutputAsText(t *testing.T) {
	m := newFedModel()
	s := newServer(t, agentos.Config{Workflows: []*workflow.Workflow{storyWorkflow(m)}})
	ctx := browser(t)
	startRun(t, ctx, s.ts.URL, `<img src=x onerror="window.__xss=3">`)
	evil := []string{`<script>window.__xss=1</script>`, ` <img src=x onerror="window.__xss=2">`, ` <b>bold</b>`}
	m.feed(t, ctx, evil...)
	close(m.chunks)
	waitFor(t, ctx, `document.querySelector('#run-status').textContent === 'COMPLETED' && document.querySelector('#run-content')`)
	do(t, ctx, chromedp.Click(chromedp.CSS("#events summary")))
	if got := eval[string](t, ctx, laneText("write")); got != strings.Join(evil, "") {
		t.Errorf("text %q, want the markup as text", got)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#main script, #main img, #main b').length`); n != 0 {
		t.Errorf("%d elements made of the model's output", n)
	}
	if got := eval[string](t, ctx, `document.querySelector('#run-input').textContent`); got != `<img src=x onerror="window.__xss=3">` {
		t.Errorf("input shown %q", got)
	}
	if v := eval[string](t, ctx, `String(window.__xss)`); v != "undefined" {
		t.Errorf("the model's script ran: window.__xss = %s", v)
	}
}

// TestNoHTMLParsing keeps the console's code free of the DOM calls that parse
// markup: text from runs is only ever set as text.
func TestNoHTMLParsing(t *testing.T) {
	entries, err := os.ReadDir("assets")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".js") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("assets", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "createContextualFragment", "DOMParser"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s uses %s", e.Name(), bad)
			}
		}
	}
}

func TestConsoleRunsTableCancelsBackgroundRuns(t *testing.T) {
	slow := &agent.Agent{Name: "Slow", Model: &scripted.Model{Turns: []scripted.Turn{{Text: "Once upon a time"}}, Delay: time.Hour}}
	wf := &workflow.Workflow{Name: "Slow", Steps: []workflow.Step{workflow.AgentStep("write", slow, "")}}
	s := newServer(t, agentos.Config{Workflows: []*workflow.Workflow{wf}, Replica: "alpha"})
	var ids []string
	for _, user := range []string{"ann", "bob"} {
		resp, err := http.PostForm(s.ts.URL+"/workflows/slow/runs", url.Values{"message": {"go"}, "background": {"true"}, "user_id": {user}})
		if err != nil {
			t.Fatal(err)
		}
		var a struct {
			RunID string `json:"run_id"`
		}
		err = json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("background run: %d %v", resp.StatusCode, err)
		}
		ids = append(ids, a.RunID)
	}
	ctx := browser(t)

	// A background run started from the console, followed on its page.
	do(t, ctx, chromedp.Navigate(s.ts.URL+"/#/start"), chromedp.WaitVisible(chromedp.CSS("#message")),
		chromedp.SendKeys(chromedp.CSS("#message"), "in the background"),
		chromedp.Click(chromedp.CSS("#mode-background")),
		chromedp.Click(chromedp.CSS("#start-form button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("#run")))
	waitFor(t, ctx, laneText("write")+` === 'Once ' && document.querySelector('#run-status').textContent === 'RUNNING'`)
	ids = append(ids, eval[string](t, ctx, `document.querySelector('#run').dataset.runId`))

	// The table updates by itself as the runs start.
	do(t, ctx, chromedp.Navigate(s.ts.URL+"/#/runs"))
	for _, id := range ids {
		waitFor(t, ctx, fmt.Sprintf(`document.querySelector('#runs-table tr[data-run-id=%q]')?.dataset.status === 'RUNNING'`, id))
	}
	// Filtered by user on the server.
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#f-user"), "bob"), chromedp.Click(chromedp.CSS("#run-filters button[type=submit]")))
	waitFor(t, ctx, fmt.Sprintf(`document.querySelectorAll('#runs-table tbody tr').length === 1 && document.querySelector('#runs-table tr[data-run-id=%q]')`, ids[1]))
	do(t, ctx, chromedp.Navigate(s.ts.URL+"/#/runs?status=RUNNING"))
	waitFor(t, ctx, `document.querySelectorAll('#runs-table tbody tr').length === 3`)

	// The replicas page shows this replica with its three runs.
	do(t, ctx, chromedp.Navigate(s.ts.URL+"/#/replicas"))
	waitFor(t, ctx, `document.querySelector('#replicas-table tr[data-replica="alpha"] td:nth-child(2)')?.textContent === '3'`)
	do(t, ctx, chromedp.Navigate(s.ts.URL+"/#/runs?status=RUNNING"))
	waitFor(t, ctx, `document.querySelectorAll('#runs-table tbody tr').length === 3`)

	do(t, ctx, chromedp.Click(chromedp.CSS("#select-all")), chromedp.Click(chromedp.CSS("#cancel-selected")))
	waitFor(t, ctx, `document.querySelectorAll('#cancel-results li[data-run-id] .st-cancelled').length === 3`)
	for _, id := range ids {
		rec, err := s.store.GetRun(context.Background(), id)
		if err != nil || rec.Status != "CANCELLED" {
			t.Errorf("run %s stored %v, %v", id, rec.Status, err)
		}
	}
	// Cancelled, they leave the RUNNING filter's table.
	waitFor(t, ctx, `document.querySelectorAll('#runs-table tbody tr').length === 0`)

	// A session's page lists its run.
	rec, err := s.store.GetRun(context.Background(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	do(t, ctx, chromedp.Navigate(s.ts.URL+"/#/sessions"))
	waitFor(t, ctx, fmt.Sprintf(`!!document.querySelector('#sessions-table a[href="#/sessions/%s"]')`, rec.SessionID))
	do(t, ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#sessions-table a[href="#/sessions/%s"]`, rec.SessionID))))
	waitFor(t, ctx, fmt.Sprintf(`!!document.querySelector('.runs a[href="#/run/%s"]') && !!document.querySelector('#session-state')`, ids[0]))
}

func TestConsoleParallelLanesAndTools(t *testing.T) {
	a, b := newFedModel(), newFedModel()
	type query struct {
		Q string `json:"q"`
	}
	search := tool.Func("search", "Searches the news", func(ctx context.Context, q query) (string, error) {
		return "<b>found</b> " + q.Q, nil
	})
	hn := &agent.Agent{Name: "HN", Tools: []tool.Tool{search}, Model: &scripted.Model{Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{{Name: "search", Arguments: []byte(`{"q":"dragons"}`)}}}, {Text: "news done"}}}}
	wf := &workflow.Workflow{Name: "Research", Steps: []workflow.Step{
		&workflow.Parallel{Name: "research", Steps: []workflow.Step{
			workflow.AgentStep("left", &agent.Agent{Name: "Left", Model: a}, ""),
			workflow.AgentStep("right", &agent.Agent{Name: "Right", Model: b}, ""),
			workflow.AgentStep("news", hn, ""),
		}},
		workflow.AgentStep("write", &agent.Agent{Name: "Writer", Model: scripted.New("the end")}, ""),
	}}
	s := newServer(t, agentos.Config{Workflows: []*workflow.Workflow{wf}})
	ctx := browser(t)
	do(t, ctx, chromedp.Navigate(s.ts.URL+"/#/start"), chromedp.WaitVisible(chromedp.CSS("#message")),
		chromedp.SendKeys(chromedp.CSS("#message"), "dragons"),
		chromedp.Click(chromedp.CSS("#start-form button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("#run")))

	// The branches' chunks arrive interleaved; each lane holds its own.
	for i := range 3 {
		a.feed(t, ctx, fmt.Sprintf("a%d ", i))
		b.feed(t, ctx, fmt.Sprintf("b%d ", i))
	}
	waitFor(t, ctx, laneText("left")+` === 'a0 a1 a2 ' && `+laneText("right")+` === 'b0 b1 b2 '`)
	if n := eval[int](t, ctx, `document.querySelectorAll('#lanes .group[data-parent="research"] > .lane').length`); n != 3 {
		t.Errorf("%d lanes in the Parallel's group, want 3", n)
	}
	// The tool call, with its arguments and its result, as text.
	waitFor(t, ctx, `document.querySelector('#run .lane[data-step="news"] .tool .result')?.textContent === '<b>found</b> dragons'`)
	if args := eval[string](t, ctx, `document.querySelector('#run .lane[data-step="news"] .tool .args').textContent`); !strings.Contains(args, `"dragons"`) {
		t.Errorf("tool arguments shown %q", args)
	}
	close(a.chunks)
	close(b.chunks)
	waitFor(t, ctx, `document.querySelector('#run-status').textContent === 'COMPLETED' && document.querySelector('#run-content')`)
	if got := eval[string](t, ctx, laneText("write")); got != "the end" {
		t.Errorf("last step's text %q", got)
	}
	// The timeline: every step, each with a duration.
	steps := eval[[]string](t, ctx, `[...document.querySelectorAll('#timeline li')].map(li => li.dataset.step + ':' + (li.querySelector('.dur').textContent !== ''))`)
	slices.Sort(steps) // the branches start in any order
	if strings.Join(steps, " ") != "left:true news:true research:true right:true write:true" {
		t.Errorf("timeline %v", steps)
	}
	// The events, filtered by type.
	do(t, ctx, chromedp.Click(chromedp.CSS("#events summary")))
	eval[string](t, ctx, `(() => { const s = document.querySelector('#event-type'); s.value = 'ToolCallCompleted'; s.dispatchEvent(new Event('change')); return '' })()`)
	if n := eval[int](t, ctx, `document.querySelectorAll('#events tbody tr').length`); n != 1 {
		t.Errorf("%d ToolCallCompleted rows, want 1", n)
	}
}

// TestBrowserEventSourceResumes follows a run with the browser's own EventSource
// on the resume route: after the server's connection is cut, EventSource
// reconnects by itself with Last-Event-ID, and every event arrives once, in
// order. (The console reads streams with fetch, which can send the security
// key; any page without one can use EventSource.)
func TestBrowserEventSourceResumes(t *testing.T) {
	m := newFedModel()
	s := newServer(t, agentos.Config{Workflows: []*workflow.Workflow{storyWorkflow(m)}})
	resp, err := http.PostForm(s.ts.URL+"/workflows/story/runs", url.Values{"message": {"go"}, "background": {"true"}})
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		RunID string `json:"run_id"`
	}
	err = json.NewDecoder(resp.Body).Decode(&a)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	ctx := browser(t)
	do(t, ctx, chromedp.Navigate(s.ts.URL+"/#/"))
	types := []string{"WorkflowStarted", "StepStarted", "RunStarted", "ModelRequestStarted", "RunContent", "ModelRequestCompleted",
		"RunContentCompleted", "RunCompleted", "StepCompleted", "WorkflowCompleted"}
	typesJSON, _ := json.Marshal(types)
	eval[string](t, ctx, fmt.Sprintf(`(() => {
		window.__ids = []; window.__opens = 0; window.__text = '';
		const es = new EventSource('/workflows/story/runs/' + %q + '/resume');
		es.onopen = () => window.__opens++;
		for (const type of %s) es.addEventListener(type, (e) => {
			window.__ids.push(Number(e.lastEventId));
			const ev = JSON.parse(e.data);
			if (ev.event === 'RunContent') window.__text += ev.content;
			if (ev.event === 'WorkflowCompleted') { es.close(); window.__done = true; }
		});
		return '';
	})()`, a.RunID, typesJSON))
	m.feed(t, ctx, "one ", "two ")
	waitFor(t, ctx, `window.__text === 'one two '`)
	s.conns.cut()
	waitFor(t, ctx, `window.__opens >= 2`)
	m.feed(t, ctx, "three")
	close(m.chunks)
	waitFor(t, ctx, `window.__done === true`)
	ids := eval[[]int](t, ctx, `window.__ids`)
	for i, id := range ids {
		if id != i {
			t.Fatalf("event ids %v: want 0..%d once each", ids, len(ids)-1)
		}
	}
	if text := eval[string](t, ctx, `window.__text`); text != "one two three" {
		t.Errorf("text %q", text)
	}
	stored, err := s.store.Events(context.Background(), a.RunID, 0, 1000)
	if err != nil || len(stored) != len(ids) {
		t.Errorf("EventSource saw %d events, the store holds %d (%v)", len(ids), len(stored), err)
	}
}

// TestLeavingTheRunPageClosesItsStream: the run page's stream is closed when the
// viewer leaves the page, so that the server counts one client less: a streamed
// run with no client left is cancelled after the grace period (here at once).
func TestLeavingTheRunPageClosesItsStream(t *testing.T) {
	m := newFedModel()
	s := newServer(t, agentos.Config{Workflows: []*workflow.Workflow{storyWorkflow(m)}, StreamGrace: agentos.CancelAtOnce})
	ctx := browser(t)
	id := startRun(t, ctx, s.ts.URL, "Write a story")
	m.feed(t, ctx, "Once ")
	waitFor(t, ctx, laneText("write")+` === 'Once '`)
	do(t, ctx, chromedp.Navigate(s.ts.URL+"/#/runs"))
	st, err := s.srv.Host().Wait(ctx, id)
	if err != nil || st != run.StatusCancelled {
		t.Fatalf("run %s after its page was left: %s, %v", id, st, err)
	}
	rec, err := s.store.GetRun(context.Background(), id)
	if err != nil || rec.Output.Reason != agentos.ReasonClientDisconnected {
		t.Fatalf("stored run: %+v, %v", rec, err)
	}
}

// TestTracePage draws a run's trace as a waterfall from GET /runs/{run_id}/trace
// in the telemetry's shape (served here by the test: this server has no
// telemetry), span names as text; a run without a trace says so.
func TestTracePage(t *testing.T) {
	s := newServer(t, agentos.Config{Workflows: []*workflow.Workflow{storyWorkflow(newFedModel())}})
	mux := http.NewServeMux()
	mux.Handle("/", s.srv.Handler())
	mux.HandleFunc("GET /runs/traced/trace", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","run_id":"traced","spans":[
			{"span_id":"a","name":"workflow Story","kind":"internal","start_time":"2026-12-02T10:00:00Z","end_time":"2026-12-02T10:00:02Z","duration_ms":2000,"status":"OK",
			 "children":[
				{"span_id":"b","name":"step <img src=x onerror=\"window.__xss=1\">","kind":"internal","start_time":"2026-12-02T10:00:00.5Z","end_time":"2026-12-02T10:00:01.5Z","duration_ms":1000,"status":"OK",
				 "children":[{"span_id":"c","name":"chat scripted","kind":"client","start_time":"2026-12-02T10:00:00.6Z","end_time":"2026-12-02T10:00:01.4Z","duration_ms":800,"status":"ERROR","status_message":"boom","attributes":{"gen_ai.usage.input_tokens":3}}]}]}]}`)
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	ctx := browser(t)
	do(t, ctx, chromedp.Navigate(ts.URL+"/#/trace/traced"))
	waitFor(t, ctx, `document.querySelectorAll('#waterfall li').length === 3`)
	names := eval[[]string](t, ctx, `[...document.querySelectorAll('#waterfall .span-name')].map(n => n.textContent)`)
	if strings.Join(names, "|") != `workflow Story|step <img src=x onerror="window.__xss=1">|chat scripted` {
		t.Errorf("span names %q", names)
	}
	// The step's bar starts a quarter in and spans half the trace.
	bar := eval[[]string](t, ctx, `(b => [b.style.marginLeft, b.style.width])(document.querySelector('#waterfall li[data-span="b"] .bar'))`)
	if bar[0] != "25%" || bar[1] != "50%" {
		t.Errorf("step bar at %v, want 25%% wide 50%%", bar)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#waterfall .bar.error').length`); n != 1 {
		t.Errorf("%d failed spans shown, want 1", n)
	}
	if v := eval[string](t, ctx, `String(window.__xss) + document.querySelectorAll('#main img').length`); v != "undefined0" {
		t.Errorf("a span name ran as markup: %s", v)
	}
	do(t, ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(ts.URL+"/#/trace/untraced"))
	waitFor(t, ctx, `!!document.querySelector('#trace-none')`)
}
