package client

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/kern-dev/kern/run"
)

// eventCorpus holds events as kern writes them and JSON that only encoding/json
// should read.
var eventCorpus = []string{
	`{"event":"WorkflowStarted","run_id":"w1","created_at":1764547200,"event_index":0,"workflow_id":"wf","workflow_name":"W","session_id":"s1","user_id":"u"}`,
	`{"event":"RunContent","run_id":"a1","created_at":1,"event_index":12,"agent_id":"writer","agent_name":"Writer","workflow_id":"wf","workflow_run_id":"w1","parent_run_id":"w1","session_id":"s1","step_id":"write","step_name":"write","step_index":0,"parent_step_id":"p","nested_depth":2,"content":"word "}`,
	`{"event":"RunContent","run_id":"a1","created_at":1,"event_index":3,"content":"line\nbreak \"quoted\" back\\slash \/ \b\f\r\t \u00e9\u4e2d \ud83d\ude00 \u003cb\u003e \u2028 \u0000"}`,
	`{"event":"RunContent","run_id":"a1","content":"déjà vu 中文 😀"}`,
	` { "event" : "StepStarted" , "run_id" : "w1" , "step_index" : 3 } `,
	`{"event":"WorkflowCancelled","run_id":"w1","created_at":1,"event_index":9,"reason":"cancelled by request"}`,
	`{"event":"WorkflowError","run_id":"w1","error":"boom","event_index":-1}`,
	`{}`,
	`{"event":"ToolCallCompleted","run_id":"a1","tool":{"tool_call_id":"c1","tool_name":"hn","tool_args":{"q":"a \"}\" b","n":[1,{"x":null}]},"result":"ok {]","tool_call_error":true}}`,
	`{"event":"RunCompleted","run_id":"a1","metrics":{"input_tokens":1,"output_tokens":2,"total_tokens":3,"duration":0.25,"time_to_first_token":0.01},"content":"done"}`,
	`{"event":"WorkflowCompleted","run_id":"w1","step_results":[{"step_id":"s","step_name":"a","content":"x","status":"COMPLETED","steps":[{"step_name":"b","content":"y"}]}],"metrics":{"duration":1}}`,
	`{"event":"ConditionExecutionStarted","run_id":"w1","condition_result":false}`,
	`{"event":"RouterExecutionStarted","run_id":"w1","selected_steps":[]}`,
	`{"event":"LoopExecutionStarted","run_id":"w1","max_iterations":0,"iteration":0,"step_count":0,"model":""}`,
	`{"event":"ParallelExecutionStarted","run_id":"w1","step_count":3}`,
	`{"event":"RunStarted","run_id":"a1","model":"gpt-5.2","model_provider":"OpenAI"}`,
	// For encoding/json: other fields, nulls, odd numbers, bad strings, odd keys.
	`{"event":"ToolCallStarted","run_id":"a1","tool":{"tool_call_id":"c1","tool_name":"hn","tool_args":{"n":3}}}`,
	`{"event":"WorkflowCompleted","run_id":"w1","metrics":{"input_tokens":1,"output_tokens":2,"total_tokens":3,"duration":0.5},"step_results":[{"step_name":"a","content":"x"}]}`,
	`{"event":"RunStarted","run_id":"a1","model":"gpt","model_provider":"openai"}`,
	`{"event":"LoopIterationStarted","run_id":"w1","iteration":2,"max_iterations":5,"condition_result":true}`,
	`{"event":"RunContent","run_id":null,"content":"x"}`,
	`{"event":"RunContent","created_at":1.5}`,
	`{"event":"RunContent","created_at":1e3}`,
	`{"event":"RunContent","event_index":007}`,
	`{"event":"RunContent","created_at":99999999999999999999}`,
	`{"event":"RunContent","content":"bad \xff byte"}`,
	`{"event":"RunContent","content":"lone \ud83d surrogate"}`,
	`{"event":"RunContent","content":"bad \x escape"}`,
	`{"Event":"RunContent","RUN_ID":"a1"}`,
	`{"event":"RunContent","extra":{"nested":[1,2]}}`,
	`{"event":"ToolCallStarted","tool":{"tool_name":"a"},"tool":{"tool_call_id":"b"}}`,
	`{"event":"ToolCallStarted","tool":null}`,
	`{"event":"RunCompleted","metrics":{"duration":"slow"}}`,
	`{"event":"RunCompleted","metrics":{"duration":1}`,
	`{"event":"RouterExecutionStarted","selected_steps":["a",}`,
	`{"event":"ConditionExecutionStarted","condition_result":tru}`,
	`{"event":"ConditionExecutionStarted","condition_result":"true"}`,
	`{"event":"RunCompleted","metrics":{"duration":1}}}`,
	`{"event":"RunContent",}`,
	`{"event":"RunContent"} trailing`,
	`{"event":"RunContent","content":"unterminated`,
	`{"event":"RunContent","event_index":"3"}`,
	`[1,2]`,
	``,
}

// TestDecodeEventMatchesEncodingJSON: the hand-written path gives what
// encoding/json gives, or leaves the event to it.
func TestDecodeEventMatchesEncodingJSON(t *testing.T) {
	fast := 0
	for _, data := range eventCorpus {
		checkDecode(t, []byte(data))
		if _, ok := fastEvent([]byte(data), new(recent)); ok {
			fast++
		}
	}
	// Read in a row, as a stream reads them, events share their repeated strings.
	var last recent
	for range 2 {
		for _, data := range eventCorpus {
			var want run.Event
			wantErr := json.Unmarshal([]byte(data), &want)
			got, err := decodeEvent([]byte(data), &last)
			if (err == nil) != (wantErr == nil) || (err == nil && !reflect.DeepEqual(got, &want)) {
				t.Errorf("%s, in a row: decodeEvent %+v (%v), encoding/json %+v (%v)", data, got, err, want, wantErr)
			}
		}
	}
	if fast < 16 {
		t.Errorf("only %d events of the corpus took the hand-written path, want the 16 kern writes", fast)
	}
}

func checkDecode(t *testing.T, data []byte) {
	t.Helper()
	var want run.Event
	wantErr := json.Unmarshal(data, &want)
	if got, ok := fastEvent(data, new(recent)); ok {
		if wantErr != nil || !reflect.DeepEqual(got, &want) {
			t.Errorf("%s: hand-written %+v %+v, encoding/json %+v %+v (%v)", data, got, got.Origin, want, want.Origin, wantErr)
		}
	}
	// After an event, as a stream reads it, and twice, so that it shares strings
	// and its origin with what came before.
	last := new(recent)
	decodeEvent([]byte(eventCorpus[1]), last)
	for range 2 {
		got, err := decodeEvent(data, last)
		if (err == nil) != (wantErr == nil) || (err == nil && !reflect.DeepEqual(got, &want)) {
			t.Errorf("%s: decodeEvent %+v (%v), encoding/json %+v (%v)", data, got, err, want, wantErr)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	for _, data := range eventCorpus {
		f.Add([]byte(data))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkDecode(t, data) })
}
