package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	kernrun "github.com/kern-dev/kern/run"
)

func TestRunSmall(t *testing.T) {
	for _, st := range []string{"memory", "sqlite"} {
		t.Run(st, func(t *testing.T) {
			s, err := run(context.Background(), config{Store: st, Streams: 20, Cancels: 5, Openers: 4,
				Hold: 300 * time.Millisecond, ChunkDelay: 50 * time.Millisecond, Timeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if s.Opened != 20 || s.Failed != 0 || s.Held != 20 || !s.InProcess {
				t.Errorf("opened %d, failed %d (%s), held %d", s.Opened, s.Failed, s.FirstOpenErr, s.Held)
			}
			for _, l := range []latency{s.IdleCancel, s.Cancel} {
				if l.N != 5 || l.Failed != 0 || l.P50 <= 0 || l.P99 < l.P50 || l.Max < l.P99 {
					t.Errorf("cancel latency %v", l)
				}
			}
			if s.EventsPerSec <= 0 || s.FDLimit == 0 {
				t.Errorf("events/s %v, fd limit %d", s.EventsPerSec, s.FDLimit)
			}
			out := s.String()
			for _, field := range []string{"fd limit", "streams opened:", "concurrent streams held:", "goroutines per stream:",
				"memory per stream:", "RSS per stream:", "SSE events per second:", "cancel latency idle:", "cancel latency under load:", "p99",
				"cancel answered idle:", "cancel answered under load:"} {
				if !strings.Contains(out, field) {
					t.Errorf("summary lacks %q:\n%s", field, out)
				}
			}
		})
	}
}

func TestLoopbackOnly(t *testing.T) {
	for u, ok := range map[string]bool{"http://127.0.0.1:7777": true, "http://localhost:1": true, "http://[::1]:2": true,
		"http://example.com": false, "http://10.0.0.1:7777": false} {
		if err := loopback(u); (err == nil) != ok {
			t.Errorf("loopback(%q) = %v", u, err)
		}
	}
	if _, err := run(context.Background(), config{Server: "http://192.0.2.1:7777", Streams: 1, Timeout: time.Second}); err == nil {
		t.Error("a non-loopback server was accepted")
	}
}

// TestCancelServer sends the cancels to --cancel-server: here the same server by
// another URL, since replicas need PostgreSQL (cmd/kern's replica tests cover them).
func TestCancelServer(t *testing.T) {
	ls, err := startServer("memory", 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	other := strings.Replace(ls.url, "127.0.0.1", "localhost", 1)
	s, err := run(context.Background(), config{Server: ls.url, CancelServer: other, NoWait: true, Streams: 5, Cancels: 3,
		CancelEvery: 20 * time.Millisecond, Openers: 2, Hold: 100 * time.Millisecond, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if s.CancelTarget != other || s.Opened != 5 || s.IdleCancel.N != 3 || s.Cancel.N != 3 || s.Cancel.Failed != 0 {
		t.Errorf("cancel target %q, opened %d, cancels idle %v, under load %v", s.CancelTarget, s.Opened, s.IdleCancel, s.Cancel)
	}
	if !strings.Contains(s.String(), "(begun one every 20ms)") {
		t.Errorf("the summary does not say the cancels were spaced:\n%s", s)
	}
	if s.IdleAnswer.N != 3 || s.Answer.N != 3 || s.Answer.P50 <= 0 {
		t.Errorf("cancel answers idle %v, under load %v", s.IdleAnswer, s.Answer)
	}
	if out := s.String(); !strings.Contains(out, "cancels sent to:            "+other) || !strings.Contains(out, "wait=false") {
		t.Errorf("the summary does not say where cancels went, or how:\n%s", out)
	}
	if _, err := run(context.Background(), config{CancelServer: other, Streams: 1, Timeout: time.Second}); err == nil {
		t.Error("--cancel-server without --server was accepted")
	}
}

func TestThroughput(t *testing.T) {
	t.Run("in-process", func(t *testing.T) {
		s, err := runThroughput(context.Background(), config{Runs: 40, Concurrency: 4, Warmup: 1, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if !s.InProcess || s.Workflow != coreWorkflowID || len(s.Phases) != 1 {
			t.Fatalf("in-process %v, workflow %q, %d phases", s.InProcess, s.Workflow, len(s.Phases))
		}
		ph := s.Phases[0]
		if ph.completed() != 40 || ph.Failed != 0 || ph.PerServer[0] != 40 || ph.RunsPerSec <= 0 || ph.Duration.N != 40 {
			t.Errorf("phase %+v", ph)
		}
	})
	t.Run("background", func(t *testing.T) {
		s, err := runThroughput(context.Background(), config{Runs: 40, Concurrency: 4, Background: true, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if ph := s.Phases[0]; ph.completed() != 40 || ph.Failed != 0 {
			t.Errorf("phase %+v", ph)
		}
		if out := s.String(); !strings.Contains(out, "queued (background)") {
			t.Errorf("the summary does not say the runs were queued:\n%s", out)
		}
	})
	t.Run("two servers", func(t *testing.T) {
		var urls []string
		for range 2 {
			ls, err := startServer("memory", 0)
			if err != nil {
				t.Fatal(err)
			}
			defer ls.Close()
			urls = append(urls, ls.url)
		}
		s, err := runThroughput(context.Background(), config{Runs: 40, Concurrency: 2, Servers: urls, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Phases) != 2 || len(s.Phases[0].Servers) != 1 || len(s.Phases[1].Servers) != 2 {
			t.Fatalf("phases %+v", s.Phases)
		}
		for _, ph := range s.Phases {
			total := 0
			for _, n := range ph.PerServer {
				total += n
			}
			if ph.completed() != 40 || ph.Failed != 0 || total != 40 {
				t.Errorf("phase over %v: %d completed, %d failed, per server %v", ph.Servers, ph.completed(), ph.Failed, ph.PerServer)
			}
		}
		if s.Phases[1].PerServer[1] == 0 {
			t.Errorf("no run went to the second server: %v", s.Phases[1].PerServer)
		}
		out := s.String()
		for _, field := range []string{"completed runs per second:", "run duration:", "speed-up over 2 servers:"} {
			if !strings.Contains(out, field) {
				t.Errorf("summary lacks %q:\n%s", field, out)
			}
		}
	})
	t.Run("not loopback", func(t *testing.T) {
		if _, err := runThroughput(context.Background(), config{Runs: 1, Servers: []string{"http://192.0.2.1:7777"}, Timeout: time.Second}); err == nil {
			t.Error("a non-loopback server was accepted")
		}
	})
}

func TestParseServers(t *testing.T) {
	got, err := parseServers(" http://127.0.0.1:1, http://127.0.0.1:2,")
	if err != nil || len(got) != 2 || got[1] != "http://127.0.0.1:2" {
		t.Errorf("parseServers = %q, %v", got, err)
	}
	if _, err := parseServers(","); err == nil {
		t.Error("an empty list was accepted")
	}
}

// TestFloorServesTheLoadTest: the bare SSE floor speaks what the load test needs of
// a server (streams that name their run first, cancels that end them with
// WorkflowCancelled), so that kern and the floor are measured by the same client.
func TestFloorServesTheLoadTest(t *testing.T) {
	srv := httptest.NewServer(newFloorServer(20 * time.Millisecond).handler())
	defer srv.Close()
	s, err := run(context.Background(), config{Server: srv.URL, Streams: 10, Cancels: 3, Openers: 4,
		Hold: 200 * time.Millisecond, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if s.Opened != 10 || s.Held != 10 || s.Cancel.N != 3 || s.IdleCancel.N != 3 || s.EventsPerSec <= 0 {
		t.Errorf("opened %d, held %d, cancels %v / %v, events/s %v", s.Opened, s.Held, s.IdleCancel, s.Cancel, s.EventsPerSec)
	}
}

func TestFloorEventSize(t *testing.T) {
	ev := floorEvent(nil, kernrun.EventRunContent, "floor-123", "load", 1234, "word ")
	if n := len(ev); n < 200 || n > 300 {
		t.Errorf("a floor event is %d bytes, want about 250:\n%s", n, ev)
	}
}
