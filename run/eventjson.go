package run

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends the event's JSON (what MarshalJSON writes, byte for byte) to dst.
// It is the fast path for stores and streams: the common fields are written by hand,
// the rare ones (metrics, step results) through encoding/json.
func (e *Event) AppendJSON(dst []byte) ([]byte, error) {
	dst = append(dst, `{"event":`...)
	dst = appendString(dst, string(e.Event))
	dst = append(dst, `,"run_id":`...)
	dst = appendString(dst, e.RunID)
	dst = append(dst, `,"created_at":`...)
	dst = strconv.AppendInt(dst, e.CreatedAt, 10)
	dst = append(dst, `,"event_index":`...)
	dst = strconv.AppendInt(dst, int64(e.EventIndex), 10)
	if o := e.Origin; o != nil {
		dst = appendField(dst, "agent_id", o.AgentID)
		dst = appendField(dst, "agent_name", o.AgentName)
		dst = appendField(dst, "workflow_id", o.WorkflowID)
		dst = appendField(dst, "workflow_name", o.WorkflowName)
		dst = appendField(dst, "workflow_run_id", o.WorkflowRunID)
		dst = appendField(dst, "team_id", o.TeamID)
		dst = appendField(dst, "team_name", o.TeamName)
		dst = appendField(dst, "parent_run_id", o.ParentRunID)
		dst = appendField(dst, "session_id", o.SessionID)
		dst = appendField(dst, "user_id", o.UserID)
		dst = appendField(dst, "step_id", o.StepID)
		dst = appendField(dst, "step_name", o.StepName)
		if o.StepIndex != nil {
			dst = append(dst, `,"step_index":`...)
			dst = strconv.AppendInt(dst, int64(*o.StepIndex), 10)
		}
		dst = appendField(dst, "parent_step_id", o.ParentStepID)
		if o.NestedDepth != 0 {
			dst = append(dst, `,"nested_depth":`...)
			dst = strconv.AppendInt(dst, int64(o.NestedDepth), 10)
		}
		if o.Attempt != 0 {
			dst = append(dst, `,"attempt":`...)
			dst = strconv.AppendInt(dst, int64(o.Attempt), 10)
		}
	}
	if raw, ok := e.jsonContent(); ok {
		dst = append(dst, `,"content":`...)
		dst = append(dst, raw...)
	} else {
		dst = appendField(dst, "content", e.Content)
	}
	dst = appendField(dst, "reason", e.Reason)
	dst = appendField(dst, "error", e.Error)
	var err error
	if e.Tool != nil {
		dst = append(dst, `,"tool":`...)
		if dst, err = appendValue(dst, e.Tool); err != nil {
			return dst, err
		}
	}
	flat := e.flatMetrics()
	if e.Metrics != nil && !flat {
		dst = append(dst, `,"metrics":{`...)
		if dst, err = appendMetrics(dst, e.Metrics); err != nil {
			return dst, err
		}
		dst = append(dst, '}')
	}
	if e.Detail != nil {
		// The detail's fields go at the top level.
		if dst, err = appendDetail(dst, e.Detail); err != nil {
			return dst, err
		}
	}
	if flat {
		dst = append(dst, ',')
		if dst, err = appendMetrics(dst, e.Metrics); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// appendDetail appends the fields of d, each after a comma, as encoding/json
// writes them. The fields most events carry (a model, a reason to finish, a
// content type, a loop's counts) are written by hand, the rest through
// encoding/json.
func appendDetail(dst []byte, d *Detail) ([]byte, error) {
	if d.ConditionResult != nil || d.SelectedSteps != nil || d.StepResults != nil || d.Tools != nil ||
		d.Requirements != nil || d.StepRequirements != nil || d.StepPause != nil {
		// Encode it and splice its object in.
		return appendSpliced(dst, d)
	}
	dst = appendField(dst, "model", d.Model)
	dst = appendField(dst, "model_provider", d.ModelProvider)
	dst = appendField(dst, "response_model", d.ResponseModel)
	dst = appendField(dst, "finish_reason", d.FinishReason)
	dst = appendField(dst, "content_type", d.ContentType)
	dst = appendField(dst, "reasoning_content", d.ReasoningContent)
	dst = appendInt(dst, "iteration", d.Iteration)
	dst = appendInt(dst, "max_iterations", d.MaxIterations)
	return appendInt(dst, "step_count", d.StepCount), nil
}

// appendInt appends `,"name":n`, or nothing for 0 (omitempty).
func appendInt(dst []byte, name string, n int) []byte {
	if n == 0 {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return strconv.AppendInt(dst, int64(n), 10)
}

// appendMetrics appends the fields of m's JSON object (what Metrics.MarshalJSON
// writes between its braces).
func appendMetrics(dst []byte, m *Metrics) ([]byte, error) {
	w := m.wire()
	dst = append(dst, `"input_tokens":`...)
	dst = strconv.AppendInt(dst, int64(w.InputTokens), 10)
	dst = append(dst, `,"output_tokens":`...)
	dst = strconv.AppendInt(dst, int64(w.OutputTokens), 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, int64(w.TotalTokens), 10)
	dst = appendInt(dst, "cache_read_tokens", w.CacheReadTokens)
	dst = appendInt(dst, "cache_write_tokens", w.CacheWriteTokens)
	dst = appendInt(dst, "reasoning_tokens", w.ReasoningTokens)
	var err error
	if w.Cost != 0 {
		dst = append(dst, `,"cost":`...)
		if dst, err = appendFloat(dst, w.Cost); err != nil {
			return dst, err
		}
	}
	dst = append(dst, `,"duration":`...)
	if dst, err = appendFloat(dst, w.Duration); err != nil {
		return dst, err
	}
	if w.TimeToFirstToken != nil {
		dst = append(dst, `,"time_to_first_token":`...)
		return appendFloat(dst, *w.TimeToFirstToken)
	}
	return dst, nil
}

// appendFloat appends f as encoding/json writes a float64: the shortest decimal
// that reads back as f, in exponent form only for the very small and very large.
func appendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, &json.UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-09 -> e-9, as encoding/json writes it.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// appendSpliced appends the fields of v's JSON object, which go at the top level
// of the event's.
func appendSpliced(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	if len(b) > 2 {
		dst = append(dst, ',')
		dst = append(dst, b[1:len(b)-1]...)
	}
	return dst, nil
}

func appendValue(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(dst, b...), err
}

// appendField appends `,"name":"value"`, or nothing for an empty value (omitempty).
func appendField(dst []byte, name, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return appendString(dst, value)
}

const hex = "0123456789abcdef"

// safeASCII holds the bytes appendString writes as they are: ASCII but control
// characters, '"', '\\' and the HTML-unsafe '<', '>', '&'.
var safeASCII = func() (t [256]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

// appendString appends s as a JSON string, escaped as encoding/json escapes it:
// HTML-safe, invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029 escaped.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if safeASCII[s[i]] {
			i++
			continue
		}
		if b := s[i]; b < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
