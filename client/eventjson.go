package client

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/kern-dev/kern/run"
)

// decodeEvent decodes one event's JSON. Most events (content, steps, starts) hold
// only strings and integers: those are read by hand, which costs a fraction of
// encoding/json's reflection and matters to a client reading thousands of chunks a
// second. Anything else — a tool, metrics, step results, a null, an unknown key, a
// number that is not a plain integer, invalid UTF-8 — goes to encoding/json, which
// gives the same event (checked by the tests) or the error.
//
// last is what the stream's earlier events held (nil: none): an event that repeats
// an id, a name or an origin shares it instead of allocating it again.
func decodeEvent(data []byte, last *recent) (*run.Event, error) {
	if last == nil {
		last = new(recent)
	}
	if ev, ok := fastEvent(data, last); ok {
		return ev, nil
	}
	ev := new(run.Event)
	if err := json.Unmarshal(data, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// recent holds what the last events held, for the next ones to share: the value
// of each repeated string field (event type, ids, names), by field, and the last
// origin. Events are immutable, and kern's own events share their origin too.
//
// It also holds the event being read's origin and detail, so that reading an
// event allocates only what the event keeps.
type recent struct {
	s      [numSlots]string
	origin *run.Origin

	cur          run.Origin // the event's origin, if it has one
	hasOrigin    bool
	stepIndex    int
	hasStepIndex bool
	detail       run.Detail // the rarer events' fields, kept unless all zero
}

// Slots of recent: the fields whose values repeat from event to event.
const (
	slotNone = iota - 1
	slotEvent
	slotRunID
	slotAgentID
	slotAgentName
	slotWorkflowID
	slotWorkflowName
	slotWorkflowRunID
	slotParentRunID
	slotSessionID
	slotUserID
	slotStepID
	slotStepName
	slotParentStepID
	numSlots
)

// eventParser reads an event's JSON object: strings and integers by hand, the
// values of rarer fields through encoding/json.
type eventParser struct {
	b      []byte
	i      int
	last   *recent
	nested uint8 // the fields read through encoding/json: bits of nestedKeys
}

// nestedKeys are the fields whose values encoding/json reads.
var nestedKeys = [...]string{"tool", "metrics", "step_results", "selected_steps", "condition_result"}

// fastEvent decodes data when it is an object whose keys are all common event
// fields; ok is false otherwise.
func fastEvent(data []byte, last *recent) (ev *run.Event, ok bool) {
	p := eventParser{b: data, last: last}
	last.cur, last.hasOrigin, last.hasStepIndex, last.detail = run.Origin{}, false, false, run.Detail{}
	ev = new(run.Event)
	if !p.byte('{') {
		return nil, false
	}
	if p.byte('}') {
		return ev, p.end()
	}
	for {
		key, ok := p.key()
		if !ok || !p.byte(':') || !p.field(ev, key) {
			return nil, false
		}
		if p.byte('}') {
			if p.last.hasOrigin {
				ev.Origin = p.sharedOrigin()
			}
			if d := p.last.detail; !(d.Model == "" && d.ModelProvider == "" && d.Iteration == 0 && d.MaxIterations == 0 &&
				d.ConditionResult == nil && d.SelectedSteps == nil && d.StepCount == 0 && d.StepResults == nil) {
				ev.Detail = &d // as run.Event's UnmarshalJSON keeps it
			}
			return ev, p.end()
		}
		if !p.byte(',') {
			return nil, false
		}
	}
}

// nestedField reads the value of a field in nestedKeys through encoding/json. A
// key seen twice is left to encoding/json, which merges the values.
func (p *eventParser) nestedField(ev *run.Event, key []byte) bool {
	k := -1
	for i, name := range nestedKeys {
		if string(key) == name {
			k = i
		}
	}
	if k < 0 || p.nested&(1<<k) != 0 {
		return false
	}
	p.nested |= 1 << k
	v, ok := p.value()
	if !ok {
		return false
	}
	var dst any
	switch k {
	case 0:
		ev.Tool = new(run.ToolExecution)
		dst = ev.Tool
	case 1:
		ev.Metrics = new(run.Metrics)
		dst = ev.Metrics
	case 2:
		dst = &p.last.detail.StepResults
	case 3:
		dst = &p.last.detail.SelectedSteps
	case 4:
		p.last.detail.ConditionResult = new(bool)
		dst = p.last.detail.ConditionResult
	}
	return json.Unmarshal(v, dst) == nil
}

// value returns the next value, an object, an array, a string or a literal other
// than null, without checking it: encoding/json does.
func (p *eventParser) value() ([]byte, bool) {
	p.space()
	start := p.i
	if p.i >= len(p.b) || p.b[p.i] == 'n' {
		return nil, false // null: encoding/json leaves the field as it is
	}
	if c := p.b[p.i]; c != '{' && c != '[' && c != '"' {
		for p.i < len(p.b) && !strings.ContainsRune(",}] \t\r\n", rune(p.b[p.i])) {
			p.i++
		}
		return p.b[start:p.i], p.i > start
	}
	depth := 0
	for p.i < len(p.b) {
		c := p.b[p.i]
		p.i++
		switch c {
		case '"':
			for p.i < len(p.b) && p.b[p.i] != '"' {
				if p.b[p.i] == '\\' {
					p.i++
				}
				p.i++
			}
			p.i++ // the closing quote
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
		if depth == 0 {
			return p.b[start:min(p.i, len(p.b))], p.i <= len(p.b)
		}
	}
	return nil, false
}

// orig returns the origin being read; an event with any of its fields has one, as
// encoding/json makes it.
func (p *eventParser) orig() *run.Origin {
	p.last.hasOrigin = true
	return &p.last.cur
}

// sharedOrigin returns the event's origin: the last event's when it is the same.
func (p *eventParser) sharedOrigin() *run.Origin {
	r := p.last
	if o := r.origin; o != nil && sameOrigin(o, &r.cur, r.hasStepIndex, r.stepIndex) {
		return o
	}
	o := new(run.Origin)
	*o = r.cur
	if r.hasStepIndex {
		i := r.stepIndex
		o.StepIndex = &i
	}
	r.origin = o
	return o
}

// sameOrigin reports whether o is n, whose step index is i when hasIndex.
func sameOrigin(o, n *run.Origin, hasIndex bool, i int) bool {
	if (o.StepIndex != nil) != hasIndex || (hasIndex && *o.StepIndex != i) {
		return false
	}
	c := *o
	c.StepIndex = nil
	return c == *n
}

// field reads the value of key into ev.
func (p *eventParser) field(ev *run.Event, key []byte) bool {
	var s *string
	slot := slotNone
	switch string(key) {
	case "event":
		v, ok := p.string(slotEvent)
		ev.Event = run.EventType(v)
		return ok
	case "run_id":
		s, slot = &ev.RunID, slotRunID
	case "content":
		s = &ev.Content
	case "reason":
		s = &ev.Reason
	case "error":
		s = &ev.Error
	case "created_at":
		n, ok := p.int()
		ev.CreatedAt = n
		return ok
	case "event_index":
		return p.intField(&ev.EventIndex)
	case "step_index":
		p.orig()
		p.last.hasStepIndex = true
		return p.intField(&p.last.stepIndex)
	case "nested_depth":
		return p.intField(&p.orig().NestedDepth)
	case "iteration":
		return p.intField(&p.last.detail.Iteration)
	case "max_iterations":
		return p.intField(&p.last.detail.MaxIterations)
	case "step_count":
		return p.intField(&p.last.detail.StepCount)
	case "model":
		s = &p.last.detail.Model
	case "model_provider":
		s = &p.last.detail.ModelProvider
	default:
		s, slot = p.originField(key)
	}
	if s == nil {
		return p.nestedField(ev, key)
	}
	v, ok := p.string(slot)
	*s = v
	return ok
}

// originField returns the string field of the origin named key and its slot;
// nil for a key that names none.
func (p *eventParser) originField(key []byte) (*string, int) {
	switch string(key) {
	case "agent_id":
		return &p.orig().AgentID, slotAgentID
	case "agent_name":
		return &p.orig().AgentName, slotAgentName
	case "workflow_id":
		return &p.orig().WorkflowID, slotWorkflowID
	case "workflow_name":
		return &p.orig().WorkflowName, slotWorkflowName
	case "workflow_run_id":
		return &p.orig().WorkflowRunID, slotWorkflowRunID
	case "parent_run_id":
		return &p.orig().ParentRunID, slotParentRunID
	case "session_id":
		return &p.orig().SessionID, slotSessionID
	case "user_id":
		return &p.orig().UserID, slotUserID
	case "step_id":
		return &p.orig().StepID, slotStepID
	case "step_name":
		return &p.orig().StepName, slotStepName
	case "parent_step_id":
		return &p.orig().ParentStepID, slotParentStepID
	}
	return nil, slotNone
}

func (p *eventParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// byte consumes c, after white space, if it is next.
func (p *eventParser) byte(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end reports whether nothing but white space is left.
func (p *eventParser) end() bool {
	p.space()
	return p.i == len(p.b)
}

// key reads an object key without escapes.
func (p *eventParser) key() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			return p.b[start : p.i-1], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// string reads a string value; slot, unless slotNone, is where its last value is
// kept for sharing.
func (p *eventParser) string(slot int) (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if slot != slotNone && p.last.s[slot] == string(s) {
				return p.last.s[slot], true
			}
			if !utf8.Valid(s) {
				return "", false // encoding/json replaces invalid bytes: let it
			}
			v := string(s)
			if slot != slotNone {
				p.last.s[slot] = v
			}
			return v, true
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return "", false
		}
		p.i++
	}
	return "", false
}

// escaped reads the rest of a string holding escapes, from its start.
func (p *eventParser) escaped(start int) (string, bool) {
	buf := make([]byte, 0, p.i-start+16)
	buf = append(buf, p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(buf) {
				return "", false
			}
			return string(buf), true
		case c < 0x20:
			return "", false
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			return "", false
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				// A pair makes one rune; a lone half is for encoding/json to replace.
				r2, ok := rune(-1), false
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					p.i += 2
					r2, ok = p.hex4()
				}
				if r = utf16.DecodeRune(r, r2); !ok || r == utf8.RuneError {
					return "", false
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", false
		}
	}
	return "", false
}

// hex4 reads the four hex digits of a \u escape.
func (p *eventParser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(n), true
}

// intField reads an integer value into an int.
func (p *eventParser) intField(dst *int) bool {
	n, ok := p.int()
	*dst = int(n)
	return ok && int64(*dst) == n
}

// int reads an integer value: an optional minus and digits, no fraction or
// exponent, within int64.
func (p *eventParser) int() (int64, bool) {
	p.space()
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	if p.i == digits || (p.b[digits] == '0' && p.i-digits > 1) {
		return 0, false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	n, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
	return n, err == nil
}
