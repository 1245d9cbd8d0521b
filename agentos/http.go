package agentos

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/agentos/console"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/workflow"
)

// collection is the workflows or the agents, as routes see them.
type collection struct {
	s     *Server
	kind  run.Kind
	param string
}

// with resolves the component a route names, answering 404 for an unknown one.
func (c collection) with(h func(http.ResponseWriter, *http.Request, *component)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue(c.param)
		comp := c.s.components[string(c.kind)+"/"+id]
		if comp == nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("%s %q not found", c.kind, id))
			return
		}
		h(w, r, comp)
	}
}

func (c collection) list(comps []*component) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, summaries(comps))
	}
}

func (c collection) info(w http.ResponseWriter, r *http.Request, comp *component) {
	writeJSON(w, http.StatusOK, comp.info)
}

// workflowSummary is a workflow in listings.
type workflowSummary struct {
	ID          string `json:"id"`
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
}

// workflowDetail is GET /workflows/{workflow_id}'s answer.
type workflowDetail struct {
	workflowSummary
	Steps []workflow.StepInfo `json:"steps"`
}

func (c *component) workflowSummary() workflowSummary {
	return workflowSummary{ID: c.id, Name: c.name, Description: c.description}
}

// agentInfo is GET /agents/{agent_id}'s answer.
type agentInfo struct {
	ID           string     `json:"id"`
	Name         string     `json:"name,omitempty"`
	Model        *modelInfo `json:"model,omitempty"`
	Instructions string     `json:"instructions,omitempty"`
	Tools        []string   `json:"tools"`
}

type modelInfo struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
}

func agentDetail(a *agent.Agent) agentInfo {
	info := agentInfo{ID: a.AgentID(), Name: a.Name, Instructions: a.Instructions, Tools: []string{}}
	if d, ok := a.Model.(model.Describer); ok {
		info.Model = &modelInfo{Provider: d.Provider(), Model: d.ModelID()}
	}
	for _, t := range a.Tools {
		info.Tools = append(info.Tools, t.Definition().Name)
	}
	return info
}

func summaries(comps []*component) []workflowSummary {
	out := make([]workflowSummary, 0, len(comps))
	for _, c := range comps {
		out = append(out, c.workflowSummary())
	}
	return out
}

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request) {
	dbs := []string{}
	if s.store != nil {
		dbs = append(dbs, "kern-db")
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"os_id":      s.cfg.OSID,
		"replica_id": s.cfg.Replica,
		"databases":  dbs,
		"agents":     summaries(s.agents),
		"teams":      summaries(s.teams),
		"workflows":  summaries(s.workflows),
		"interfaces": []any{},
	})
}

// secure requires the security key on every route the table marks as needing it
// (all but /health), and on unknown routes, when a key is set. The console's
// assets are public: the console asks for the key and sends it with its calls.
func (s *Server) secure(next http.Handler) http.Handler {
	if s.cfg.SecurityKey == "" {
		return next
	}
	public := make(map[string]bool)
	for _, rt := range s.table {
		if rt.public {
			public[rt.pattern] = true
		}
	}
	want := sha256.Sum256([]byte(s.cfg.SecurityKey))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		consoleAsset := (r.Method == http.MethodGet || r.Method == http.MethodHead) && console.Serves(r.URL.Path)
		if !public[r.URL.Path] && !consoleAsset {
			token, ok := bearerToken(r.Header.Get("Authorization"))
			// Compared as digests: the time taken tells nothing of the key's length.
			got := sha256.Sum256([]byte(token))
			if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", "Bearer")
				writeError(w, http.StatusUnauthorized, "invalid or missing security key")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// bearerToken returns the token of an Authorization header of the Bearer scheme,
// whose name is case-insensitive (RFC 9110 section 11.1, RFC 6750).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimLeft(token, " "), true
}

// jsonFallback answers unknown routes (404), wrong methods (405, with Allow) and
// redirects to a cleaned path ("//workflows": 307, with Location) in JSON, where
// ServeMux answers in plain text or HTML.
func jsonFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" && !unclean(r) {
			mux.ServeHTTP(w, r)
			return
		}
		// h is one of ServeMux's own answers, which only write: probing it is safe.
		probe := &statusProbe{header: make(http.Header)}
		h.ServeHTTP(probe, r)
		for _, k := range []string{"Allow", "Location"} {
			if v := probe.header.Get(k); v != "" {
				w.Header().Set(k, v)
			}
		}
		switch {
		case probe.code == http.StatusMethodNotAllowed:
			writeError(w, probe.code, fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path))
		case probe.code == 0, probe.code == http.StatusNotFound:
			writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
		case probe.code >= 300 && probe.code < 400:
			writeError(w, probe.code, "moved to "+probe.header.Get("Location"))
		default:
			writeError(w, probe.code, strings.TrimSpace(http.StatusText(probe.code)))
		}
	})
}

// unclean reports whether ServeMux redirects r to a cleaned path (it cleans all but
// CONNECT requests' paths as path.Clean does, keeping a trailing slash).
func unclean(r *http.Request) bool {
	p := r.URL.EscapedPath()
	if r.Method == http.MethodConnect {
		return false
	}
	if p == "" || p[0] != '/' {
		return true
	}
	clean := path.Clean(p)
	if p[len(p)-1] == '/' && clean != "/" {
		clean += "/"
	}
	return clean != p
}

// statusProbe records the status and headers a handler answers with, and drops its
// body.
type statusProbe struct {
	header http.Header
	code   int
}

func (p *statusProbe) Header() http.Header { return p.header }
func (p *statusProbe) WriteHeader(code int) {
	if p.code == 0 {
		p.code = code
	}
}
func (p *statusProbe) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"detail":"cannot encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// writeError answers {"detail": detail}.
func writeError(w http.ResponseWriter, code int, detail string) {
	writeJSON(w, code, map[string]string{"detail": detail})
}

// writeStoreError answers an error from the store: 404 when the thing is not there,
// 503 otherwise.
func (s *Server) writeStoreError(w http.ResponseWriter, err error, what string) {
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, what+" not found")
		return
	}
	if errors.Is(err, store.ErrTooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, what+": "+err.Error())
		return
	}
	s.log.Error("agentos: store", "err", err)
	writeError(w, http.StatusServiceUnavailable, unavailableDetail(err))
}

// unavailableDetail is the detail of a 503 for a store that failed: "store
// unavailable", with the driver's words when the store said why it cannot take
// writes now (store.ErrUnavailable): "store unavailable: database or disk is full".
func unavailableDetail(err error) string {
	var ue *store.UnavailableError
	if errors.As(err, &ue) {
		return "store unavailable: " + ue.Error()
	}
	return "store unavailable"
}
