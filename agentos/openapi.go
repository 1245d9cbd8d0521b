package agentos

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// obj is a JSON object of the OpenAPI document.
type obj = map[string]any

// pathParam finds the {name} wildcards of a pattern.
var pathParam = regexp.MustCompile(`\{([^}.]+)(\.\.\.)?\}`)

// openAPI builds the OpenAPI 3.1 document of the route table.
func (s *Server) openAPI() ([]byte, error) {
	paths := obj{}
	for _, rt := range s.table {
		item, _ := paths[rt.pattern].(obj)
		if item == nil {
			item = obj{}
			paths[rt.pattern] = item
		}
		item[strings.ToLower(rt.method)] = s.operation(rt)
	}
	components := obj{"schemas": schemas()}
	doc := obj{
		"openapi": "3.1.0",
		"info": obj{"title": "kern AgentOS API", "version": "1",
			"description": "Workflows and agents served over HTTP, compatible with Agno's AgentOS: runs started by form or JSON, " +
				"streamed as server-sent events (event: <Name>, id: <event_index>, data: <JSON>), resumed, cancelled. " +
				`Every error is JSON {"detail": "..."}.`},
		"paths":      paths,
		"components": components,
	}
	if s.cfg.SecurityKey != "" {
		components["securitySchemes"] = obj{"bearer": obj{"type": "http", "scheme": "bearer",
			"description": "The server's security key: Authorization: Bearer <key>."}}
		doc["security"] = []obj{{"bearer": []string{}}}
	}
	return json.MarshalIndent(doc, "", "  ")
}

// operationID names an operation after its method and path: GET
// /workflows/{workflow_id}/runs is get_workflows_workflow_id_runs.
func operationID(rt route) string {
	id := strings.ToLower(rt.method)
	for _, f := range strings.FieldsFunc(rt.pattern, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_')
	}) {
		id += "_" + f
	}
	return id
}

func (s *Server) operation(rt route) obj {
	op := obj{"operationId": operationID(rt), "summary": rt.summary, "tags": []string{tag(rt.pattern)}}
	if rt.description != "" {
		op["description"] = rt.description
	}
	var params []obj
	for _, m := range pathParam.FindAllStringSubmatch(rt.pattern, -1) {
		params = append(params, obj{"name": m[1], "in": "path", "required": true, "schema": obj{"type": "string"}})
	}
	for _, p := range rt.params {
		params = append(params, obj{"name": p.name, "in": p.in, "description": p.description, "schema": obj{"type": p.typ}})
	}
	if params != nil {
		op["parameters"] = params
	}
	if body := requestBody(rt.body); body != nil {
		op["requestBody"] = body
	}
	resps := obj{}
	for _, r := range rt.responses {
		resps[strconv.Itoa(r.code)] = responseObject(r)
	}
	for _, r := range guardResponses(rt) {
		code := strconv.Itoa(r.code)
		if o, ok := resps[code].(obj); ok {
			o["description"] = o["description"].(string) + "; or " + r.description
			continue
		}
		resps[code] = responseObject(r)
	}
	if s.cfg.SecurityKey != "" {
		if rt.public {
			op["security"] = []obj{}
		} else {
			resps["401"] = responseObject(fail(http.StatusUnauthorized, "Missing or wrong security key"))
		}
	}
	op["responses"] = resps
	return op
}

// guardResponses are the refusals of the server's guard (guard.go) a route may
// get besides its own answers.
func guardResponses(rt route) []response {
	var rs []response
	if strings.Contains(rt.pattern, "{") {
		rs = append(rs, fail(http.StatusUnprocessableEntity, "An id in the path over 1024 bytes, not UTF-8, or holding NUL"))
	}
	if rt.method != http.MethodGet {
		rs = append(rs, fail(http.StatusForbidden, "A browser's request from an origin this server does not allow"))
	}
	if rt.body != bodyNone {
		rs = append(rs, fail(http.StatusRequestTimeout, "Request body not received in time"))
	}
	return rs
}

// tag groups operations by the first segment of their path.
func tag(pattern string) string {
	first, _, _ := strings.Cut(strings.TrimPrefix(pattern, "/"), "/")
	return first
}

func ref(schema string) obj { return obj{"$ref": "#/components/schemas/" + schema} }

func responseObject(r response) obj {
	o := obj{"description": r.description}
	content := obj{}
	if r.sse {
		content["text/event-stream"] = obj{"schema": obj{"type": "string",
			"description": "Server-sent events: each is `event: <EventName>`, `id: <event_index>`, `data: <one-line JSON of the event>`; " +
				"`: ping` comments keep idle streams open; the stream ends after the run's terminal event."}}
	}
	if r.schema != "" {
		content["application/json"] = obj{"schema": ref(r.schema)}
	}
	if len(content) > 0 {
		o["content"] = content
	}
	if r.retry {
		o["headers"] = obj{"Retry-After": obj{"description": "Seconds to wait before trying again.",
			"schema": obj{"type": "integer"}}}
	}
	return o
}

func requestBody(k bodyKind) obj {
	var form obj
	switch k {
	case bodyRun:
		form = ref("RunRequest")
	case bodyResume:
		form = ref("ResumeRequest")
	case bodyContinue:
		form = ref("ContinueRequest")
	case bodyResolve:
		form = ref("ApprovalResolve")
	default:
		return nil
	}
	content := obj{"application/x-www-form-urlencoded": obj{"schema": form}, "multipart/form-data": obj{"schema": form}}
	if k == bodyRun || k == bodyContinue || k == bodyResolve {
		content["application/json"] = obj{"schema": form}
	}
	return obj{"required": k == bodyRun, "content": content}
}

func str(description string) obj { return obj{"type": "string", "description": description} }

// mediaList is a list of Media, or a string holding its JSON (as a form field does).
func mediaList(description string) obj {
	o := obj{"oneOf": []obj{{"type": "array", "items": ref("Media")}, {"type": "string", "description": "The list's JSON."}}}
	if description != "" {
		o["description"] = description
	}
	return o
}

func object(required []string, props obj) obj {
	o := obj{"type": "object", "properties": props}
	if required != nil {
		o["required"] = required
	}
	return o
}

var statuses = []string{"PENDING", "RUNNING", "COMPLETED", "PAUSED", "CANCELLED", "ERROR"}

// schemas are the JSON bodies the routes take and answer.
func schemas() obj {
	summary := object([]string{"id"}, obj{"id": str("Stable id, a slug of the name by default."),
		"name": str(""), "description": str("")})
	list := obj{"type": "array", "items": summary}
	status := obj{"type": "string", "enum": statuses}
	return obj{
		"Error":  object([]string{"detail"}, obj{"detail": str("What went wrong.")}),
		"Health": object([]string{"status"}, obj{"status": obj{"const": "ok"}}),
		"Config": object([]string{"os_id", "databases", "agents", "teams", "workflows", "interfaces"}, obj{
			"os_id": str("This server's name."), "replica_id": str("This process among the replicas sharing the database."), "databases": obj{"type": "array", "items": obj{"type": "string"}},
			"agents": list, "teams": list, "workflows": list, "interfaces": obj{"type": "array"}}),
		"ComponentSummaries": list,
		"Workflow": object([]string{"id", "steps"}, obj{"id": str(""), "name": str(""), "description": str(""),
			"steps": obj{"type": "array", "items": obj{"type": "object"}}}),
		"Agent": object([]string{"id", "tools"}, obj{"id": str(""), "name": str(""), "instructions": str(""),
			"model": object(nil, obj{"provider": str(""), "model": str("")}),
			"tools": obj{"type": "array", "items": obj{"type": "string"}}}),
		schemaTeam: teamSchema(),
		"RunRequest": object([]string{"message"}, obj{
			"message":     obj{"type": "string", "minLength": 1, "description": "The run's input: not empty, and without NUL bytes (PostgreSQL's text cannot hold them)."},
			"stream":      obj{"type": "boolean", "default": true, "description": "Answer with server-sent events."},
			"session_id":  str("The session the run belongs to; a new one if empty."),
			"user_id":     str(""),
			"background":  obj{"type": "boolean", "default": false, "description": "Queue the run and answer 202 at once (not with images or files)."},
			"images":      mediaList("Images given to the run, as Agno's Image.to_dict: {url} or {content (base64), mime_type}; a form field holds the list as a JSON string."),
			"input_files": mediaList("Files given to the run, as Agno's File.to_dict: {url} or {content (base64), mime_type, filename}; a form field holds the list as a JSON string."),
			"files": obj{"description": "Files uploaded in a multipart body (an image when its type is image/*), or a list of media as input_files.",
				"oneOf": []obj{{"type": "array", "items": obj{"type": "string", "format": "binary"}}, mediaList("")}}}),
		"Media": object(nil, obj{"url": str("An http or https URL the provider fetches."), "content": str("The bytes, in base64."),
			"mime_type": str("The bytes' type; sniffed when missing."), "filename": str("A file's name."), "format": str("An image's format (png, jpeg...).")}),
		"ContinueRequest": object(nil, obj{
			"tools": obj{"description": "The tool executions the run waits for, each with its decision (confirmed, confirmation_note, " +
				"user_input_schema values, result), matched by tool_call_id: a JSON array, or a string holding it (a form field).",
				"oneOf": []obj{{"type": "array", "items": obj{"type": "object"}}, {"type": "string"}}},
			"step_requirements": obj{"description": "A workflow run's step requirements, each with its decision (confirmed, user_input), " +
				"matched by step_id: a JSON array, or a string holding it (a form field).",
				"oneOf": []obj{{"type": "array", "items": obj{"type": "object"}}, {"type": "string"}}},
			"stream":     obj{"type": "boolean", "default": true, "description": "Answer with server-sent events."},
			"background": obj{"type": "boolean", "default": false, "description": "Answer 202 at once; the run goes on."},
			"session_id": str(""), "user_id": str("")}),
		"ApprovalResolve": object([]string{"status"}, obj{
			"status": obj{"type": "string", "enum": []string{"approved", "rejected"}}, "resolved_by": str(""),
			"resolution_data": object(nil, obj{"note": str("A rejection's note, which the model reads."),
				"values": obj{"type": "object", "description": "A user input's values, by field name."},
				"result": str("An external execution's result.")})}),
		"Approval": object([]string{"id", "run_id", "status"}, obj{"id": str("The paused run's id."), "run_id": str(""),
			"session_id": str(""), "status": str("pending, approved or rejected"), "source_type": str("agent or workflow"),
			"pause_type": str("confirmation, user_input or external_execution"), "tool_name": str("The tool, or the workflow step."),
			"tool_args": obj{"type": "object"}, "agent_id": str(""), "workflow_id": str(""), "user_id": str(""),
			"requirements": obj{"type": "array", "items": obj{"type": "object"}}, "run_status": status,
			"created_at": obj{"type": "integer"}, "updated_at": obj{"type": "integer"}}),
		"ApprovalPage": object([]string{"data", "meta"}, obj{"data": obj{"type": "array", "items": ref("Approval")},
			"meta": object(nil, obj{"page": obj{"type": "integer"}, "limit": obj{"type": "integer"},
				"total_pages": obj{"type": "integer"}, "total_count": obj{"type": "integer"}})}),
		"ResumeRequest": object(nil, obj{
			"last_event_index": obj{"type": "integer", "minimum": -1, "description": "The last event index received (0-based)."},
			"session_id":       str("")}),
		"RunOutput": object([]string{"run_id", "status"}, obj{
			"run_id": str(""), "session_id": str(""), "user_id": str(""), "workflow_id": str(""), "workflow_name": str(""),
			"agent_id": str(""), "agent_name": str(""), "status": status,
			"content": obj{"type": []string{"string", "object", "null"}, "description": "The output; a cancelled run's partial output."},
			"error":   str(""), "reason": str("Why the run was cancelled."),
			"step_results": obj{"type": "array", "items": obj{"type": "object"}}, "metrics": obj{"type": "object"},
			"created_at":   obj{"type": "integer", "description": "Unix seconds."},
			"tools":        obj{"type": "array", "items": obj{"type": "object"}, "description": "What a PAUSED run waits for: its tool executions."},
			"requirements": obj{"type": "array", "items": obj{"type": "object"}, "description": "What a PAUSED run waits for, as Agno's RunRequirement."},
			"replica":      str("The replica that executes, or executed, the run.")}),
		"RunOutputs":   obj{"type": "array", "items": ref("RunOutput")},
		"CancelAnswer": object([]string{"run_id", "status"}, obj{"run_id": str(""), "status": status, "known": obj{"type": "boolean"}}),
		"RunAccepted":  object([]string{"run_id", "session_id", "status"}, obj{"run_id": str(""), "session_id": str(""), "status": status}),
		"Session": object([]string{"session_id", "session_name", "session_type"}, obj{"session_id": str(""),
			"session_name": str("The input of the session's first run."), "user_id": str(""),
			"session_type": str("agent or workflow."), "component_id": str("The agent's or workflow's id."),
			"agent_id": str("An agent session's component_id."), "workflow_id": str("A workflow session's component_id."),
			"session_state": obj{"type": "object"},
			"created_at":    obj{"type": "integer", "description": "Unix seconds."},
			"updated_at":    obj{"type": "integer", "description": "Unix seconds: the session's last run or state."}}),
		"Replicas": object([]string{"replicas", "complete"}, obj{
			"replicas": obj{"type": "array", "items": object([]string{"replica", "this", "live_runs"}, obj{
				"replica": str(""), "this": obj{"type": "boolean", "description": "The replica answering."},
				"live_runs":      obj{"type": "integer"},
				"lease_until":    obj{"type": "integer", "description": "Unix seconds: the end of its latest lease."},
				"last_heartbeat": obj{"type": "integer", "description": "Unix seconds: about when it last renewed its leases."}})},
			"complete":      obj{"type": "boolean", "description": "Every RUNNING run was read (under 1000)."},
			"lease_seconds": obj{"type": "number"}}),
		"Queue": object([]string{"depth", "capped", "shared"}, obj{
			"depth": obj{"type": "integer"}, "capped": obj{"type": "boolean", "description": "More runs wait than were counted."},
			"shared":            obj{"type": "boolean", "description": "The store's queue, shared by the replicas on its database."},
			"oldest_created_at": obj{"type": "integer", "description": "Unix seconds: when the oldest waiting run was queued."},
			"workers":           obj{"type": "integer"}, "size": obj{"type": "integer"}}),
		"SessionPage": object([]string{"data", "meta"}, obj{"data": obj{"type": "array", "items": ref("Session")},
			"meta": object([]string{"page", "limit", "total_pages", "total_count"}, obj{"page": obj{"type": "integer"},
				"limit": obj{"type": "integer"}, "total_pages": obj{"type": "integer"}, "total_count": obj{"type": "integer"}})}),
	}
}

func (s *Server) getOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(s.apiDoc)
}

// docsPage is GET /docs: the route table as a self-contained HTML page.
var docsPage = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kern AgentOS API</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ddd;margin-top:2rem}
.route{margin:1rem 0;padding:.5rem 1rem;border-left:4px solid #888;background:#f8f8f8}
.GET{border-color:#2a7}.POST{border-color:#27c}.DELETE{border-color:#c33}
code{font:14px ui-monospace,monospace}.m{font-weight:bold;display:inline-block;min-width:4.5rem}
.auth{font-size:12px;color:#666}ul{margin:.2rem 0}
</style></head><body>
<h1>kern AgentOS API</h1>
<p>Runs are started by form or JSON, streamed as server-sent events, resumed and cancelled.
Every error is JSON <code>{"detail": "..."}</code>. The machine-readable description is
<a href="/openapi.json"><code>/openapi.json</code></a> (OpenAPI 3.1).{{if .Secured}}
Every route but the public ones requires <code>Authorization: Bearer &lt;key&gt;</code>.{{end}}</p>
{{range .Groups}}<h2>/{{.Name}}</h2>
{{range .Routes}}<div class="route {{.Method}}" id="{{.ID}}">
<div><span class="m">{{.Method}}</span> <code>{{.Pattern}}</code>{{if .Public}} <span class="auth">public</span>{{end}}</div>
<div><b>{{.Summary}}</b>{{with .Description}} — {{.}}{{end}}</div>
{{with .Params}}<div>Parameters:<ul>{{range .}}<li><code>{{.Name}}</code> ({{.In}}, {{.Type}}){{with .Description}} {{.}}{{end}}</li>{{end}}</ul></div>{{end}}
{{with .Body}}<div>Body: {{.}}</div>{{end}}
<div>Answers:<ul>{{range .Responses}}<li><code>{{.Code}}</code> {{.Description}}{{with .Schema}} (<code>{{.}}</code>){{end}}{{if .SSE}} (<code>text/event-stream</code>){{end}}</li>{{end}}</ul></div>
</div>
{{end}}{{end}}</body></html>
`))

type docsParam struct{ Name, In, Type, Description string }

type docsResponse struct {
	Code                int
	Description, Schema string
	SSE                 bool
}

type docsRoute struct {
	ID, Method, Pattern, Summary, Description, Body string
	Public                                          bool
	Params                                          []docsParam
	Responses                                       []docsResponse
}

type docsGroup struct {
	Name   string
	Routes []docsRoute
}

// docsData is the route table as the docs page shows it, grouped by tag.
func (s *Server) docsData() any {
	var groups []docsGroup
	for _, rt := range s.table {
		d := docsRoute{ID: operationID(rt), Method: rt.method, Pattern: rt.pattern, Summary: rt.summary,
			Description: rt.description, Public: rt.public || s.cfg.SecurityKey == ""}
		for _, m := range pathParam.FindAllStringSubmatch(rt.pattern, -1) {
			d.Params = append(d.Params, docsParam{m[1], "path", "string", ""})
		}
		for _, p := range rt.params {
			d.Params = append(d.Params, docsParam{p.name, p.in, p.typ, p.description})
		}
		switch rt.body {
		case bodyRun:
			d.Body = "form (urlencoded or multipart) or JSON: message (required), stream, session_id, user_id, background, images, input_files, files (uploads)"
		case bodyResume:
			d.Body = "form (urlencoded or multipart): last_event_index, session_id"
		case bodyResolve:
			d.Body = "JSON (or a form): status (approved or rejected), resolved_by, resolution_data {note, values, result}"
		case bodyContinue:
			d.Body = "form (urlencoded or multipart) or JSON: tools (an agent's decided tool executions, JSON) or step_requirements (a workflow's), stream, background, session_id, user_id"
		}
		for _, r := range rt.responses {
			d.Responses = append(d.Responses, docsResponse{r.code, r.description, r.schema, r.sse})
		}
		name := tag(rt.pattern)
		if n := len(groups); n == 0 || groups[n-1].Name != name {
			groups = append(groups, docsGroup{Name: name})
		}
		g := &groups[len(groups)-1]
		g.Routes = append(g.Routes, d)
	}
	return struct {
		Secured bool
		Groups  []docsGroup
	}{s.cfg.SecurityKey != "", groups}
}

func (s *Server) getDocs(w http.ResponseWriter, r *http.Request) {
	var b bytes.Buffer
	if err := docsPage.Execute(&b, s.docsData()); err != nil {
		s.log.Error("agentos: docs page", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot render the docs page")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes())
}
