package run

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func eventSamples() []*Event {
	zero, two, yes := 0, 2, true
	return []*Event{
		{Event: EventRunStarted, RunID: "r"},
		{Event: EventRunContent, RunID: "r", CreatedAt: 1700000000, EventIndex: 7, Content: "hello <b>&</b> \"q\" \\ \n\t\r\x00\x1f é 日本 \u2028\u2029 \xff end",
			Origin: &Origin{AgentID: "a", AgentName: "A", WorkflowID: "w", WorkflowName: "W", WorkflowRunID: "wr", ParentRunID: "p",
				SessionID: "s", UserID: "u", StepID: "st", StepName: "St", StepIndex: &zero, ParentStepID: "ps", NestedDepth: 2, Attempt: 3}},
		{Event: EventToolCallCompleted, RunID: "r", Origin: &Origin{StepIndex: &two},
			Tool: &ToolExecution{ToolCallID: "c", ToolName: "t", ToolArgs: json.RawMessage(`{"a": 1}`), Result: "ok", IsError: true}},
		{Event: EventRunCompleted, RunID: "r", Reason: "why", Error: "err",
			Metrics: &Metrics{Duration: 1500 * time.Millisecond, TimeToFirstToken: time.Millisecond, InputTokens: 3, OutputTokens: 4, TotalTokens: 7}},
		{Event: EventConditionExecutionStarted, RunID: "r", Detail: &Detail{Model: "m", ModelProvider: "p", Iteration: 1, MaxIterations: 3,
			ConditionResult: &yes, SelectedSteps: []string{"a", "b"}, StepCount: 2,
			StepResults: []StepResult{{StepName: "a", Content: "x", Steps: []StepResult{{StepName: "b"}}}}}},
		{Event: EventLoopExecutionStarted, RunID: "r", Detail: &Detail{}},
		{Event: EventRunCompleted, RunID: "r", Content: "{\"title\": \"<Go>\",\n \"n\": [1, 2]}", Detail: &Detail{ContentType: "Article"}},
		{Event: EventRunContent, RunID: "r", Content: "not json", Detail: &Detail{ContentType: "Article"}},
		{Event: EventReasoningContentDelta, RunID: "r", Detail: &Detail{ReasoningContent: "thinking…"}},
		{Event: EventModelRequestStarted, RunID: "r", Detail: &Detail{Model: "gpt", ModelProvider: "openai"}},
		{Event: EventModelRequestCompleted, RunID: "r", Detail: &Detail{Model: "gpt", ModelProvider: "openai"},
			Metrics: &Metrics{Duration: 2 * time.Second, TimeToFirstToken: 250 * time.Millisecond, InputTokens: 10, OutputTokens: 5,
				TotalTokens: 15, CacheReadTokens: 4, ReasoningTokens: 2, Cost: 0.25}},
		{Event: EventModelRequestCompleted, RunID: "r", Metrics: &Metrics{}},
		{Event: EventModelRequestCompleted, RunID: "r", Detail: &Detail{Model: "m", ModelProvider: "p", ResponseModel: "m-1",
			FinishReason: "stop"}, Metrics: &Metrics{Duration: 3, TimeToFirstToken: 1, Cost: 1e-7, CacheWriteTokens: 9}},
		{Event: EventLoopIterationCompleted, RunID: "r", Detail: &Detail{Iteration: 2, MaxIterations: 5, StepCount: 3,
			ContentType: "T", ReasoningContent: "r"}, Metrics: &Metrics{Cost: 2.5e21, Duration: time.Hour}},
		{Event: EventRunCompleted, RunID: "r", Detail: &Detail{StepPause: &StepPause{Status: StatusPaused}}},
	}
}

// FuzzAppendJSONMetrics checks that metrics, nested or at the top level, are
// written as encoding/json writes them.
func FuzzAppendJSONMetrics(f *testing.F) {
	f.Add(int64(1500000000), int64(1000000), 3, 0.25, true)
	f.Add(int64(1), int64(0), 0, 1e-9, false)
	f.Fuzz(func(t *testing.T, d, ttft int64, tokens int, cost float64, flat bool) {
		ev := &Event{Event: EventRunCompleted, RunID: "r", Metrics: &Metrics{Duration: time.Duration(d), TimeToFirstToken: time.Duration(ttft),
			InputTokens: tokens, TotalTokens: 2 * tokens, ReasoningTokens: tokens / 2, Cost: cost}}
		if flat {
			ev.Event = EventModelRequestCompleted
		}
		want, werr := ev.marshalReflect()
		got, err := ev.AppendJSON(nil)
		if (err != nil) != (werr != nil) || err == nil && !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON:\n got %s (%v)\nwant %s (%v)", got, err, want, werr)
		}
	})
}

// TestModelRequestCompletedJSON checks that a model request's metrics sit at the top
// level of its event, as Agno sends them, and read back into Metrics.
func TestModelRequestCompletedJSON(t *testing.T) {
	ev := &Event{Event: EventModelRequestCompleted, RunID: "r", Detail: &Detail{Model: "gpt", ModelProvider: "openai"},
		Metrics: &Metrics{Duration: 2 * time.Second, TimeToFirstToken: 250 * time.Millisecond, InputTokens: 10, OutputTokens: 5,
			TotalTokens: 15, CacheReadTokens: 4, CacheWriteTokens: 1, ReasoningTokens: 2}}
	b, err := ev.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	var wire map[string]any
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"model": "gpt", "model_provider": "openai", "input_tokens": 10.0, "output_tokens": 5.0, "total_tokens": 15.0,
		"cache_read_tokens": 4.0, "cache_write_tokens": 1.0, "reasoning_tokens": 2.0, "duration": 2.0, "time_to_first_token": 0.25}
	for k, v := range want {
		if wire[k] != v {
			t.Errorf("%s = %v, want %v in %s", k, wire[k], v, b)
		}
	}
	if _, nested := wire["metrics"]; nested {
		t.Errorf("metrics nested: %s", b)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil || back.Metrics == nil || *back.Metrics != *ev.Metrics || back.Detail.Model != "gpt" {
		t.Fatalf("read back %+v %+v (%v)", back, back.Metrics, err)
	}
	// Other events keep their metrics nested, and read none from the top level.
	done := &Event{Event: EventRunCompleted, RunID: "r", Metrics: ev.Metrics}
	b, _ = done.AppendJSON(nil)
	back = Event{}
	if err := json.Unmarshal(b, &back); err != nil || !bytes.Contains(b, []byte(`"metrics":{`)) || *back.Metrics != *ev.Metrics {
		t.Fatalf("RunCompleted: %s read back %+v (%v)", b, back.Metrics, err)
	}
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, ev := range eventSamples() {
		want, err := ev.marshalReflect()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ev.AppendJSON(nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("AppendJSON:\n got %s\nwant %s (%v)", got, want, err)
		}
	}
}

func TestStructuredContentJSON(t *testing.T) {
	ev := &Event{Event: EventRunCompleted, RunID: "r", Content: `{"title":"Go","n":[1,2]}`, Detail: &Detail{ContentType: "Article"}}
	b, err := ev.AppendJSON(nil)
	if err != nil || !bytes.Contains(b, []byte(`"content":{"title":"Go","n":[1,2]}`)) || !bytes.Contains(b, []byte(`"content_type":"Article"`)) {
		t.Fatalf("structured content not written as an object: %s (%v)", b, err)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil || back.Content != ev.Content || back.Detail == nil || back.Detail.ContentType != "Article" {
		t.Fatalf("read back %+v %+v (%v)", back, back.Detail, err)
	}
	// Agno's clients send an object without content_type too.
	if err := json.Unmarshal([]byte(`{"event":"RunCompleted","run_id":"r","content":{"a": 1}}`), &back); err != nil ||
		back.Content != `{"a":1}` || back.Detail.ContentType != ContentTypeJSON {
		t.Fatalf("object content read as %q %+v (%v)", back.Content, back.Detail, err)
	}

	out := Output{RunID: "r", Status: StatusCompleted, Content: "{\"title\": \"Go\"}", ContentType: "Article"}
	if raw, ok := out.StructuredContent(); !ok || string(raw) != `{"title": "Go"}` {
		t.Fatalf("StructuredContent = %s, %v", raw, ok)
	}
	b, err = json.Marshal(out)
	if err != nil || !bytes.Contains(b, []byte(`"content_type":"Article"`)) {
		t.Fatalf("output: %s (%v)", b, err)
	}
	text := Output{RunID: "r", Content: `{"looks":"like json"}`}
	if _, ok := text.StructuredContent(); ok {
		t.Fatal("text content that looks like JSON is not structured")
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("plain", "<&>\u2028\xff\x00")
	f.Fuzz(func(t *testing.T, content, name string) {
		ev := &Event{Event: EventRunContent, RunID: name, Content: content, Origin: &Origin{StepName: name}}
		want, _ := ev.marshalReflect()
		got, err := ev.AppendJSON(nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON(%q):\n got %s\nwant %s", content, got, want)
		}
	})
}

func BenchmarkEventJSON(b *testing.B) {
	ev := eventSamples()[1]
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = ev.AppendJSON(buf[:0])
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(ev)
		}
	})
	b.Run("reflect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ev.marshalReflect()
		}
	})
}

func outputSamples() []*Output {
	m := Metrics{Duration: 1500 * time.Millisecond, TimeToFirstToken: time.Millisecond, InputTokens: 3, OutputTokens: 4, TotalTokens: 7, Cost: 0.5}
	return []*Output{
		{},
		{RunID: "r", Status: StatusRunning, Input: "go <now> & \"then\"\n"},
		{RunID: "r", SessionID: "s", UserID: "u", ParentRunID: "p", AgentID: "a", AgentName: "A", WorkflowID: "w", WorkflowName: "W",
			TeamID: "t", TeamName: "T", Model: "m", ModelProvider: "mp", Status: StatusCompleted, Input: "in", Content: "out \u2028",
			ContentType: "Article", Error: "e", Reason: "why", Metrics: m, CreatedAt: 1700000000,
			StepResults: []StepResult{
				{StepName: "a", Content: "x"},
				{StepID: "b", StepName: "b", Content: "y", Status: StatusError, Error: "boom", Attempts: 2, Stop: true, ContentType: "T", Metrics: m,
					Steps: []StepResult{{StepName: "c", Content: ""}, {StepName: "d", Metrics: Metrics{Cost: 1e-9}}}},
			}},
		{RunID: "r", StepResults: []StepResult{}},
		{RunID: "r", Metadata: map[string]string{"b": "2", "a": "1"}},
		{RunID: "r", MemberResponses: []*Output{{RunID: "m"}}},
		{RunID: "r", Paused: &Paused{}},
	}
}

func TestOutputAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, o := range outputSamples() {
		want, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := o.AppendJSON(nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("AppendJSON:\n got %s\nwant %s (%v)", got, want, err)
		}
	}
}

func FuzzOutputAppendJSON(f *testing.F) {
	f.Add("r", "content", "step", int64(5), 0.5, 2, true)
	f.Fuzz(func(t *testing.T, id, content, step string, d int64, cost float64, attempts int, stop bool) {
		o := &Output{RunID: id, Content: content, Input: step, Metrics: Metrics{Duration: time.Duration(d), Cost: cost},
			StepResults: []StepResult{{StepName: step, Content: content, Attempts: attempts, Stop: stop, Metrics: Metrics{Cost: cost}}}}
		want, werr := json.Marshal(o)
		got, err := o.AppendJSON(nil)
		if (err != nil) != (werr != nil) || err == nil && !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON:\n got %s (%v)\nwant %s (%v)", got, err, want, werr)
		}
	})
}
