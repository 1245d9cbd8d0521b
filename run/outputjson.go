package run

import (
	"encoding/json"
	"strconv"
)

// AppendJSON appends the output's JSON (what encoding/json writes for it, byte for
// byte) to dst: the fast path for stores, which write a run's output at its start,
// at each checkpoint and at its end. The fields every run has are written by
// hand; an output with member responses, metadata or what a paused run waits for
// goes through encoding/json.
func (o *Output) AppendJSON(dst []byte) ([]byte, error) {
	if o.MemberResponses != nil || o.Metadata != nil || o.Tools != nil || o.Requirements != nil ||
		o.StepRequirements != nil || o.Paused != nil {
		b, err := json.Marshal(o)
		return append(dst, b...), err
	}
	dst = append(dst, `{"run_id":`...)
	dst = appendString(dst, o.RunID)
	dst = appendField(dst, "session_id", o.SessionID)
	dst = appendField(dst, "user_id", o.UserID)
	dst = appendField(dst, "parent_run_id", o.ParentRunID)
	dst = appendField(dst, "agent_id", o.AgentID)
	dst = appendField(dst, "agent_name", o.AgentName)
	dst = appendField(dst, "workflow_id", o.WorkflowID)
	dst = appendField(dst, "workflow_name", o.WorkflowName)
	dst = appendField(dst, "team_id", o.TeamID)
	dst = appendField(dst, "team_name", o.TeamName)
	dst = appendField(dst, "model", o.Model)
	dst = appendField(dst, "model_provider", o.ModelProvider)
	dst = append(dst, `,"status":`...)
	dst = appendString(dst, string(o.Status))
	dst = append(dst, `,"input":`...)
	dst = appendString(dst, o.Input)
	dst = append(dst, `,"content":`...)
	dst = appendString(dst, o.Content)
	dst = appendField(dst, "content_type", o.ContentType)
	dst = appendField(dst, "error", o.Error)
	dst = appendField(dst, "reason", o.Reason)
	var err error
	if len(o.StepResults) > 0 {
		dst = append(dst, `,"step_results":`...)
		if dst, err = appendStepResults(dst, o.StepResults); err != nil {
			return dst, err
		}
	}
	dst = append(dst, `,"metrics":{`...)
	if dst, err = appendMetrics(dst, &o.Metrics); err != nil {
		return dst, err
	}
	dst = append(dst, `},"created_at":`...)
	dst = strconv.AppendInt(dst, o.CreatedAt, 10)
	return append(dst, '}'), nil
}

// appendStepResults appends the JSON array of rs.
func appendStepResults(dst []byte, rs []StepResult) ([]byte, error) {
	dst = append(dst, '[')
	for i := range rs {
		if i > 0 {
			dst = append(dst, ',')
		}
		r := &rs[i]
		dst = append(dst, '{')
		if r.StepID != "" {
			dst = append(dst, `"step_id":`...)
			dst = appendString(dst, r.StepID)
			dst = append(dst, ',')
		}
		dst = append(dst, `"step_name":`...)
		dst = appendString(dst, r.StepName)
		dst = append(dst, `,"content":`...)
		dst = appendString(dst, r.Content)
		dst = appendField(dst, "status", string(r.Status))
		dst = appendField(dst, "error", r.Error)
		var err error
		if len(r.Steps) > 0 {
			dst = append(dst, `,"steps":`...)
			if dst, err = appendStepResults(dst, r.Steps); err != nil {
				return dst, err
			}
		}
		dst = appendInt(dst, "attempts", r.Attempts)
		if r.Stop {
			dst = append(dst, `,"stop":true`...)
		}
		dst = appendField(dst, "content_type", r.ContentType)
		if r.Metrics != (Metrics{}) {
			dst = append(dst, `,"metrics":{`...)
			if dst, err = appendMetrics(dst, &r.Metrics); err != nil {
				return dst, err
			}
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	return append(dst, ']'), nil
}
