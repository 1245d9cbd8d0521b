package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/agentos"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

// answerer is a scripted model that calls name with args, then answers "done: "
// and the call's result (or the rejection's note).
func answerer(name, args string) *scripted.Model {
	return &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		for i := len(req.Messages) - 1; i >= 0; i-- {
			if msg := req.Messages[i]; msg.Role == model.RoleTool {
				return scripted.Turn{Text: "done: " + msg.Content}
			}
		}
		return scripted.Turn{Text: "Calling. ", ToolCalls: []model.ToolCall{{ID: "call_1", Name: name, Arguments: json.RawMessage(args)}}}
	}}
}

// startBackground starts a background run of an agent over HTTP; it returns the
// run's id.
func startBackground(t *testing.T, base, agentID, message string) string {
	t.Helper()
	resp, err := http.PostForm(base+"/agents/"+agentID+"/runs", url.Values{"message": {message}, "background": {"true"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct {
		RunID string `json:"run_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("background run: %d %v", resp.StatusCode, err)
	}
	return a.RunID
}

// TestConsoleApprovals: a run pauses on a tool that requires confirmation; it
// appears on the Approvals page by itself, the person approves it there, and the
// run completes with the tool's result. Another, started from the console, shows
// on its own page what it waits for; the person rejects it there with a note, and
// the run completes with the note as the call's result, the tool never run.
func TestConsoleApprovals(t *testing.T) {
	var sent atomic.Int32
	send := tool.Func("send_mail", "Sends a mail.", func(ctx context.Context, args struct {
		To string `json:"to"`
	}) (string, error) {
		sent.Add(1)
		return "sent to " + args.To, nil
	}, tool.RequiresConfirmation())
	mailer := &agent.Agent{Name: "Mailer", Model: answerer("send_mail", `{"to":"<b>ada</b>"}`), Tools: []tool.Tool{send}}
	s := newServer(t, agentos.Config{Agents: []*agent.Agent{mailer}})
	ctx := browser(t)

	do(t, ctx, chromedp.Navigate(s.ts.URL+"/#/approvals"))
	waitFor(t, ctx, `document.querySelector('#main').dataset.loaded === 'approvals' && !document.querySelector('#approvals-empty').hidden`)

	// Listed live: the page was open before the run paused.
	id := startBackground(t, s.ts.URL, "mailer", "mail ada")
	card := fmt.Sprintf(`document.querySelector('#approvals li[data-run-id=%q]')`, id)
	waitFor(t, ctx, "!!"+card)
	if got := eval[string](t, ctx, card+`.textContent`); !strings.Contains(got, "send_mail") || !strings.Contains(got, `"<b>ada</b>"`) ||
		!strings.Contains(got, "Mailer") {
		t.Errorf("approval card %q lacks the tool, its arguments or the agent", got)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#main b').length`); n != 0 {
		t.Errorf("the tool's arguments ran as markup")
	}
	do(t, ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#approvals li[data-run-id=%q] button.approve`, id))))
	waitFor(t, ctx, card+`.querySelector('form').dataset.resolved === 'approved'`)
	if st, err := s.srv.Host().Wait(ctx, id); err != nil || st != run.StatusCompleted {
		t.Fatalf("approved run ended %s, %v", st, err)
	}
	do(t, ctx, chromedp.Navigate(s.ts.URL+"/#/run/"+id))
	waitFor(t, ctx, `document.querySelector('#run-status').textContent === 'COMPLETED' && document.querySelector('#run-content')`)
	if got := eval[string](t, ctx, `document.querySelector('#run-content').textContent`); got != "Calling. done: sent to <b>ada</b>" {
		t.Errorf("approved run's content %q", got)
	}
	// Gone from the approvals once resolved (a new page load).
	do(t, ctx, chromedp.Navigate(s.ts.URL+"/#/approvals"))
	waitFor(t, ctx, `document.querySelector('#main').dataset.loaded === 'approvals'`)
	if eval[bool](t, ctx, "!!"+card) {
		t.Errorf("a resolved approval is still listed")
	}

	// Rejected on the run's own page, which it was started from.
	do(t, ctx, chromedp.Navigate(s.ts.URL+"/#/start?kind=agent&id=mailer"), chromedp.WaitVisible(chromedp.CSS("#message")),
		chromedp.SendKeys(chromedp.CSS("#message"), "mail ada again"),
		chromedp.Click(chromedp.CSS("#start-form button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("#run")))
	id2 := eval[string](t, ctx, `document.querySelector('#run').dataset.runId`)
	waitFor(t, ctx, `document.querySelector('#run-status').textContent === 'PAUSED' && !document.querySelector('#run-approval').hidden &&
		!!document.querySelector('#run-approval button.reject')`)
	if got := eval[string](t, ctx, `document.querySelector('#run-approval').textContent`); !strings.Contains(got, "send_mail") {
		t.Errorf("the run page's approval %q does not name the tool", got)
	}
	note := eval[string](t, ctx, `document.querySelector('#run-approval input[name=note]').id`)
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#"+note), "not <i>today</i>"),
		chromedp.Click(chromedp.CSS("#run-approval button.reject")))
	waitFor(t, ctx, `document.querySelector('#run-status').textContent === 'COMPLETED' && document.querySelector('#run-content')`)
	if got := eval[string](t, ctx, `document.querySelector('#run-content').textContent`); got != "Calling. done: not <i>today</i>" {
		t.Errorf("rejected run's content %q", got)
	}
	if got := eval[string](t, ctx, `document.querySelector('#run .lane .text').textContent`); got != "Calling. done: not <i>today</i>" {
		t.Errorf("the run page's streamed text %q: the stream did not go on after the decision", got)
	}
	if n := sent.Load(); n != 1 {
		t.Errorf("the tool ran %d times, want once (the rejected call never)", n)
	}
	rec, err := s.store.GetRun(context.Background(), id2)
	if err != nil || rec.Status != run.StatusCompleted {
		t.Fatalf("rejected run stored %+v, %v", rec, err)
	}
	ds := eval[map[string]string](t, ctx, `Object.assign({}, document.querySelector('#run').dataset)`)
	if ds["dupes"] != "0" || ds["gaps"] != "0" {
		t.Errorf("the run page saw %v", ds)
	}

	// A paused run cancelled from its page ends CANCELLED there, its form gone.
	id3 := startBackground(t, s.ts.URL, "mailer", "mail ada once more")
	do(t, ctx, chromedp.Navigate(s.ts.URL+"/#/run/"+id3))
	waitFor(t, ctx, `document.querySelector('#run-status').textContent === 'PAUSED' && !!document.querySelector('#run-approval button.approve')`)
	do(t, ctx, chromedp.Click(chromedp.CSS("#cancel-run")))
	waitFor(t, ctx, `document.querySelector('#run-status').textContent === 'CANCELLED' && document.querySelector('#run-content') &&
		document.querySelector('#run-approval').hidden && document.querySelector('#run-connection').textContent === 'ended'`)
	if n := sent.Load(); n != 1 {
		t.Errorf("the tool ran %d times, want once", n)
	}
}

// TestConsoleWorkflowStepApproval: a workflow step that asks for a confirmation
// before it runs pauses the workflow run; its page says what the step asks, and
// approved there, the step runs and the workflow completes.
func TestConsoleWorkflowStepApproval(t *testing.T) {
	wf := &workflow.Workflow{Name: "Reviewed", Steps: []workflow.Step{
		workflow.AgentStep("draft", &agent.Agent{Name: "Drafter", Model: scripted.New("a draft")}, ""),
		workflow.AgentStep("publish", &agent.Agent{Name: "Publisher", Model: scripted.New("published")}, "").
			WithConfirmation("Publish <the> draft?", workflow.OnRejectCancel),
	}}
	s := newServer(t, agentos.Config{Workflows: []*workflow.Workflow{wf}})
	ctx := browser(t)
	id := startRun(t, ctx, s.ts.URL, "write and publish")
	waitFor(t, ctx, `document.querySelector('#run-status').textContent === 'PAUSED' && !!document.querySelector('#run-approval button.approve')`)
	if got := eval[string](t, ctx, `document.querySelector('#run-approval').textContent`); !strings.Contains(got, "Publish <the> draft?") ||
		!strings.Contains(got, "step publish") {
		t.Errorf("the paused workflow's page shows %q", got)
	}
	if got := eval[string](t, ctx, laneText("draft")); got != "a draft" {
		t.Errorf("the first step's text %q", got)
	}
	do(t, ctx, chromedp.Click(chromedp.CSS("#run-approval button.approve")))
	waitFor(t, ctx, `document.querySelector('#run-status').textContent === 'COMPLETED' && document.querySelector('#run-content')`)
	if got := eval[string](t, ctx, laneText("publish")); got != "published" {
		t.Errorf("the confirmed step's text %q", got)
	}
	if st, err := s.srv.Host().Wait(ctx, id); err != nil || st != run.StatusCompleted {
		t.Fatalf("workflow run ended %s, %v", st, err)
	}
}

// TestConsoleApprovalInputs: a call that waits for a person's values, and one
// executed outside kern, each get the fields they ask for on the Approvals page;
// the values reach the tool, the result the model.
func TestConsoleApprovalInputs(t *testing.T) {
	book := tool.Func("book", "Books a trip.", func(ctx context.Context, args struct {
		City   string `json:"city"`
		Nights int    `json:"nights"`
	}) (string, error) {
		return fmt.Sprintf("booked %d nights in %s", args.Nights, args.City), nil
	}, tool.RequiresUserInput(run.UserInputField{Name: "city", FieldType: "str", Description: "Where to"},
		run.UserInputField{Name: "nights", FieldType: "int"}))
	lookup := tool.Func("lookup", "Looks up a price outside.", func(ctx context.Context, args struct {
		Item string `json:"item"`
	}) (string, error) {
		return "", fmt.Errorf("runs outside kern")
	}, tool.ExternalExecution())
	s := newServer(t, agentos.Config{Agents: []*agent.Agent{
		{Name: "Booker", Model: answerer("book", `{}`), Tools: []tool.Tool{book}},
		{Name: "Pricer", Model: answerer("lookup", `{"item":"tea"}`), Tools: []tool.Tool{lookup}},
	}})
	ctx := browser(t)
	booked := startBackground(t, s.ts.URL, "booker", "book")
	priced := startBackground(t, s.ts.URL, "pricer", "price")
	do(t, ctx, chromedp.Navigate(s.ts.URL+"/#/approvals"))
	bookCard := fmt.Sprintf(`#approvals li[data-run-id=%q]`, booked)
	priceCard := fmt.Sprintf(`#approvals li[data-run-id=%q]`, priced)
	waitFor(t, ctx, fmt.Sprintf(`!!document.querySelector('%s input[name=nights]') && !!document.querySelector('%s textarea[name=result]')`, bookCard, priceCard))
	unnamed := eval[[]string](t, ctx, `[...document.querySelectorAll('#main input, #main select, #main textarea, #main button')].filter(c =>
		!(c.labels && c.labels.length) && !c.getAttribute('aria-label') && !(c.tagName === 'BUTTON' && c.textContent.trim())
	).map(c => c.outerHTML.slice(0, 80))`)
	if len(unnamed) > 0 {
		t.Errorf("approvals: controls without a name: %v", unnamed)
	}
	if eval[bool](t, ctx, fmt.Sprintf(`!!document.querySelector('%s button.reject') || !!document.querySelector('%s button.reject')`, bookCard, priceCard)) {
		t.Errorf("a call that waits for values or a result offers Reject")
	}
	do(t, ctx, chromedp.EmulateViewport(375, 800))
	if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > 375 {
		t.Errorf("the approvals page is %d px wide on a 375 px screen", w)
	}
	do(t, ctx, chromedp.EmulateViewport(1280, 800))
	do(t, ctx,
		chromedp.SendKeys(chromedp.CSS(bookCard+" input[name=city]"), "Lisbon"),
		chromedp.SendKeys(chromedp.CSS(bookCard+" input[name=nights]"), "3"),
		chromedp.Click(chromedp.CSS(bookCard+" button.approve")),
		chromedp.SendKeys(chromedp.CSS(priceCard+" textarea[name=result]"), "2 EUR"),
		chromedp.Click(chromedp.CSS(priceCard+" button.approve")))
	for id, want := range map[string]string{booked: "Calling. done: booked 3 nights in Lisbon", priced: "Calling. done: 2 EUR"} {
		if st, err := s.srv.Host().Wait(ctx, id); err != nil || st != run.StatusCompleted {
			t.Fatalf("run %s ended %s, %v", id, st, err)
		}
		rec, err := s.store.GetRun(context.Background(), id)
		if err != nil || rec.Output.Content != want {
			t.Errorf("run %s content %q, want %q (%v)", id, rec.Output.Content, want, err)
		}
	}
}
