package run

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestMetricsJSON(t *testing.T) {
	t.Parallel()
	m := Metrics{Duration: 1500 * time.Millisecond, TimeToFirstToken: 250 * time.Millisecond, InputTokens: 100, OutputTokens: 20,
		TotalTokens: 120, CacheReadTokens: 64, CacheWriteTokens: 8, ReasoningTokens: 12, Cost: 0.0042}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"input_tokens":100,"output_tokens":20,"total_tokens":120,"cache_read_tokens":64,"cache_write_tokens":8,"reasoning_tokens":12,"cost":0.0042,"duration":1.5,"time_to_first_token":0.25}`
	if string(b) != want {
		t.Errorf("JSON %s\nwant %s", b, want)
	}
	var back Metrics
	if err := json.Unmarshal(b, &back); err != nil || back != m {
		t.Errorf("read back %+v (%v), want %+v", back, err, m)
	}
	plain, _ := json.Marshal(Metrics{InputTokens: 1, OutputTokens: 1, TotalTokens: 2})
	if strings.Contains(string(plain), "cache") || strings.Contains(string(plain), "cost") || strings.Contains(string(plain), "reasoning") {
		t.Errorf("zero details are written: %s", plain)
	}
	sum := Metrics{InputTokens: 1, CacheReadTokens: 1, Cost: 0.5}
	sum.Add(m)
	if sum.InputTokens != 101 || sum.CacheReadTokens != 65 || sum.CacheWriteTokens != 8 || sum.ReasoningTokens != 12 || sum.Cost != 0.5042 || sum.Duration != 0 {
		t.Errorf("sum %+v", sum)
	}
}

// TestStepResultMetricsJSON: a step result's metrics are written only when the step
// used some, and read back; Tokens falls back to input plus output.
func TestStepResultMetricsJSON(t *testing.T) {
	t.Parallel()
	b, _ := json.Marshal(StepResult{StepName: "f", Content: "x"})
	if strings.Contains(string(b), "metrics") {
		t.Errorf("a step without metrics writes them: %s", b)
	}
	res := StepResult{StepName: "a", Metrics: Metrics{InputTokens: 7, OutputTokens: 3, Duration: time.Second}}
	b, _ = json.Marshal(res)
	var back StepResult
	if err := json.Unmarshal(b, &back); err != nil || back.Metrics != res.Metrics || back.Metrics.Tokens() != 10 {
		t.Errorf("%s read back as %+v (%v)", b, back.Metrics, err)
	}
	if m := (Metrics{InputTokens: 7, OutputTokens: 3, TotalTokens: 12}); m.Tokens() != 12 {
		t.Errorf("Tokens = %d, want the total", m.Tokens())
	}
}
