package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/agentos"
	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/telemetry"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

// TestTracePageRealTelemetry: on a server whose host has telemetry on, keeping
// recent traces in memory (as kern serve --keep-traces builds it), a run started
// from the console calls a tool; its page links to its trace, whose waterfall
// shows the workflow's, the step's, the agent's, the model's and the tool's spans,
// nested, from the server's own GET /runs/{run_id}/trace.
func TestTracePageRealTelemetry(t *testing.T) {
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.SetupConfig{Recent: 10, Replica: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	search := tool.Func("search", "Searches the news", func(ctx context.Context, q struct {
		Q string `json:"q"`
	}) (string, error) {
		return "found " + q.Q, nil
	})
	researcher := &agent.Agent{Name: "Researcher", Tools: []tool.Tool{search}, Model: &scripted.Model{Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{{Name: "search", Arguments: json.RawMessage(`{"q":"dragons"}`)}}}, {Text: "the news"}}}}
	wf := &workflow.Workflow{Name: "Research", Steps: []workflow.Step{
		workflow.AgentStep("research", researcher, ""),
		workflow.AgentStep("write", &agent.Agent{Name: "Writer", Model: scripted.New("the end")}, ""),
	}}
	h, err := host.New(st, host.Options{Workflows: []*workflow.Workflow{wf}, Telemetry: tel.Observer})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := agentos.New(agentos.Config{Host: h, Traces: tel.Recent})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		ts.Close()
		if err := tel.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		st.Close()
	})

	bctx := browser(t)
	do(t, bctx, chromedp.Navigate(ts.URL+"/#/start"), chromedp.WaitVisible(chromedp.CSS("#message")),
		chromedp.SendKeys(chromedp.CSS("#message"), "dragons"),
		chromedp.Click(chromedp.CSS("#start-form button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("#run")))
	id := eval[string](t, bctx, `document.querySelector('#run').dataset.runId`)
	waitFor(t, bctx, `document.querySelector('#run-status').textContent === 'COMPLETED' && document.querySelector('#run-content')`)
	if st, err := h.Wait(bctx, id); err != nil || st != run.StatusCompleted {
		t.Fatalf("run ended %s, %v", st, err)
	}
	tel.Observer.Wait() // every span of the run has ended, and is kept

	do(t, bctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#run a[href="#/trace/%s"]`, id))))
	waitFor(t, bctx, `document.querySelector('#main').dataset.loaded?.startsWith('trace/') && !!document.querySelector('#waterfall li')`)
	rows := eval[[]string](t, bctx, `[...document.querySelectorAll('#waterfall li')].map(li =>
		li.querySelector('.span-name').style.paddingLeft + '|' + li.querySelector('.span-name').textContent)`)
	t.Logf("waterfall:\n%s", strings.Join(rows, "\n"))
	// The root is the workflow's span; the tool's is nested deeper than the
	// step's, which is deeper than the root.
	depth := func(match string) int {
		for _, r := range rows {
			pad, name, _ := strings.Cut(r, "|")
			if strings.Contains(name, match) {
				var n int
				fmt.Sscanf(pad, "%drem", &n)
				return n
			}
		}
		t.Errorf("no span named like %q in %v", match, rows)
		return -1
	}
	if d := depth("invoke_workflow Research"); d != 0 {
		t.Errorf("the workflow's span at depth %d, want the root", d)
	}
	step, tl, chat := depth("step research"), depth("execute_tool search"), depth("chat ")
	if !(step > 0 && tl > step && chat > step) {
		t.Errorf("depths: step %d, tool %d, model %d: want the tool and the model under the step", step, tl, chat)
	}
	// Each bar within the track, none wider than the whole trace.
	bad := eval[[]string](t, bctx, `[...document.querySelectorAll('#waterfall .bar')].filter(b =>
		!(parseFloat(b.style.marginLeft) >= 0 && parseFloat(b.style.marginLeft) + parseFloat(b.style.width) <= 100.5)
	).map(b => b.style.marginLeft + ' ' + b.style.width)`)
	if len(bad) > 0 {
		t.Errorf("bars outside the track: %v", bad)
	}
	if got := eval[string](t, bctx, `document.querySelector('#main p.muted').textContent`); !strings.Contains(got, fmt.Sprintf("%d spans", len(rows))) {
		t.Errorf("trace summary %q", got)
	}
	// A span's details: its attributes, as text.
	do(t, bctx, chromedp.Click(chromedp.CSS(`#waterfall li summary`)))
	if got := eval[string](t, bctx, `document.querySelector('#waterfall li details pre').textContent`); !strings.Contains(got, id) {
		t.Errorf("the root span's details %q do not name the run", got)
	}
}
