package hackernews

import "testing"

// TestZeroClientDefaults checks what a zero Client uses; no request is sent.
func TestZeroClientDefaults(t *testing.T) {
	t.Parallel()
	var c Client
	if got := c.baseURL(); got != DefaultBaseURL {
		t.Errorf("base URL = %q, want %q", got, DefaultBaseURL)
	}
	if hc := c.httpClient(); hc == nil || hc.Timeout <= 0 {
		t.Errorf("HTTP client %+v has no timeout", hc)
	}
	if got := c.concurrency(); got != DefaultConcurrency {
		t.Errorf("concurrency = %d, want %d", got, DefaultConcurrency)
	}
	c = Client{BaseURL: "http://localhost:1/v0/", Concurrency: -3}
	if got := c.baseURL(); got != "http://localhost:1/v0" {
		t.Errorf("base URL = %q, want the trailing slash removed", got)
	}
	if got := c.concurrency(); got != DefaultConcurrency {
		t.Errorf("concurrency = %d, want %d", got, DefaultConcurrency)
	}
}
