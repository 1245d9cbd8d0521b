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
