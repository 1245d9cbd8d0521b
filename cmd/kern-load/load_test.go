package main

import (
	"context"
	"strings"
	"testing"
	"time"
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
				"memory per stream:", "RSS per stream:", "SSE events per second:", "cancel latency idle:", "cancel latency under load:", "p99"} {
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
