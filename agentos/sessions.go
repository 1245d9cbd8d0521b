package agentos

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// Sessions as Agno's AgentOS lists and answers them. A session exists from its
// first run. A server without a store knows the sessions of the runs it holds in
// memory, without state, and cannot delete them (409).

// Bounds of a session listing's page.
const (
	defaultSessionLimit = 20 // Agno's default
	maxSessionLimit     = 1000
	maxSessionPage      = 10_000_000
)

// sessionParams select a session by its type and user.
var sessionParams = []param{
	{"type", "query", "string", "Only a session of this type: agent, team or workflow."},
	{"user_id", "query", "string", "Only a session of this user."},
}

// sessionListParams are Agno's filters, order and page of a session listing.
var sessionListParams = append(sessionParams[:2:2],
	param{"component_id", "query", "string", "Only the sessions of this agent or workflow."},
	param{"session_name", "query", "string", "Only the sessions whose name contains this (case-insensitive)."},
	param{"sort_by", "query", "string", "created_at (default) or updated_at."},
	param{"sort_order", "query", "string", "desc (default) or asc."},
	param{"limit", "query", "integer", "Sessions per page, 1 to 1000 (default 20)."},
	param{"page", "query", "integer", "The page, from 1 (default 1)."},
)

// sessionAnswer is a session as the API answers it: Agno's fields (the id of its
// agent or workflow under agent_id or workflow_id, by which Agno's client picks
// the schema), and kern's component_id. Times are Unix seconds, as kern's runs
// carry them; Agno's client reads those as well as ISO dates.
type sessionAnswer struct {
	SessionID   string         `json:"session_id"`
	SessionName string         `json:"session_name"`
	SessionType run.Kind       `json:"session_type"`
	UserID      string         `json:"user_id"`
	ComponentID string         `json:"component_id"`
	AgentID     string         `json:"agent_id,omitempty"`
	WorkflowID  string         `json:"workflow_id,omitempty"`
	State       map[string]any `json:"session_state"`
	CreatedAt   int64          `json:"created_at"`
	UpdatedAt   int64          `json:"updated_at"`
	// AgentSessionID repeats an agent session's id in the detail of one session,
	// where Agno's client requires it.
	AgentSessionID string `json:"agent_session_id,omitempty"`
}

func answerSession(sess *store.Session) sessionAnswer {
	a := sessionAnswer{SessionID: sess.ID, SessionName: sess.Name, SessionType: sess.Kind, UserID: sess.UserID,
		ComponentID: sess.ComponentID, State: sess.State,
		CreatedAt: sess.CreatedAt.Unix(), UpdatedAt: sess.UpdatedAt.Unix()}
	if a.State == nil {
		a.State = map[string]any{}
	}
	switch sess.Kind {
	case run.KindAgent:
		a.AgentID = sess.ComponentID
	case run.KindWorkflow:
		a.WorkflowID = sess.ComponentID
	}
	return a
}

// sessionPage is the answer of GET /sessions, Agno's paginated shape.
type sessionPage struct {
	Data []sessionAnswer `json:"data"`
	Meta pageInfo        `json:"meta"`
}

type pageInfo struct {
	Page       int `json:"page"`
	Limit      int `json:"limit"`
	TotalPages int `json:"total_pages"`
	TotalCount int `json:"total_count"`
}

// sessionKind reads a session type parameter: "" for none; team is a type kern
// has no sessions of.
func sessionKind(v string) (kind run.Kind, none bool, err error) {
	switch v {
	case "":
		return "", false, nil
	case string(run.KindAgent), string(run.KindWorkflow):
		return run.Kind(v), false, nil
	case "team":
		return "", true, nil
	}
	return "", false, badRequest(http.StatusUnprocessableEntity, "type must be agent, team or workflow, not %q", v)
}

// intParam reads an integer query parameter between lo and hi, def when absent.
func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRequest(http.StatusUnprocessableEntity, "%s must be an integer from %d to %d, not %q", name, lo, hi, v)
	}
	return n, nil
}

// sessionQuery reads the filters, order and page of GET /sessions, Agno's query
// parameters (db_id and table are accepted and ignored: kern has one database). It
// reports none when the type selects nothing kern has.
func sessionQuery(r *http.Request) (q store.SessionQuery, page int, none bool, err error) {
	v := r.URL.Query()
	q = store.SessionQuery{UserID: v.Get("user_id"), ComponentID: v.Get("component_id"), Name: v.Get("session_name")}
	if q.Kind, none, err = sessionKind(v.Get("type")); err != nil {
		return q, 0, false, err
	}
	switch v.Get("sort_by") {
	case "", "created_at":
		q.OrderBy = store.ByCreated // Agno's default
	case "updated_at":
		q.OrderBy = store.ByUpdated
	default:
		return q, 0, false, badRequest(http.StatusUnprocessableEntity, "sort_by must be created_at or updated_at, not %q", v.Get("sort_by"))
	}
	switch strings.ToLower(v.Get("sort_order")) {
	case "", "desc":
	case "asc":
		q.Ascending = true
	default:
		return q, 0, false, badRequest(http.StatusUnprocessableEntity, "sort_order must be asc or desc, not %q", v.Get("sort_order"))
	}
	if q.Limit, err = intParam(r, "limit", defaultSessionLimit, 1, maxSessionLimit); err != nil {
		return q, 0, false, err
	}
	// Pages count from 1; Agno takes 0 for the first page too.
	if page, err = intParam(r, "page", 1, 0, maxSessionPage); err != nil {
		return q, 0, false, err
	}
	page = max(page, 1)
	q.Offset = (page - 1) * q.Limit
	return q, page, none, nil
}

// listSessions answers GET /sessions: a page of the sessions the query selects.
func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	q, page, none, err := sessionQuery(r)
	if err != nil {
		s.answerError(w, err)
		return
	}
	var (
		sessions []*store.Session
		total    int
	)
	switch {
	case none:
	case s.store == nil:
		sessions, total = pageOf(filterSessions(s.memorySessions(""), q), q)
	default:
		if sessions, total, err = s.store.ListSessions(r.Context(), q); err != nil {
			s.writeStoreError(w, err, "sessions")
			return
		}
	}
	ans := sessionPage{Data: make([]sessionAnswer, 0, len(sessions)),
		Meta: pageInfo{Page: page, Limit: q.Limit, TotalCount: total, TotalPages: (total + q.Limit - 1) / q.Limit}}
	for _, sess := range sessions {
		ans.Data = append(ans.Data, answerSession(sess))
	}
	writeJSON(w, http.StatusOK, ans)
}

// session finds a session in the store, or among the runs held in memory (a run
// just started is recorded a moment later). It answers the client itself when the
// session is not found, or not of the type and user the query names, and
// reports false.
func (s *Server) session(w http.ResponseWriter, r *http.Request, id string) (*store.Session, bool) {
	kind, none, err := sessionKind(r.URL.Query().Get("type"))
	if err != nil {
		s.answerError(w, err)
		return nil, false
	}
	var sess *store.Session
	if s.store != nil {
		sess, err = s.store.GetSession(r.Context(), id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.writeStoreError(w, err, fmt.Sprintf("session %q", id))
			return nil, false
		}
	}
	if sess == nil {
		if held := s.memorySessions(id); len(held) > 0 {
			sess = held[0]
		}
	}
	user := r.URL.Query().Get("user_id")
	if sess == nil || none || (kind != "" && sess.Kind != kind) || (user != "" && sess.UserID != user) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("session %q not found", id))
		return nil, false
	}
	return sess, true
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.session(w, r, r.PathValue("session_id"))
	if !ok {
		return
	}
	ans := answerSession(sess)
	if sess.Kind == run.KindAgent {
		ans.AgentSessionID = sess.ID
	}
	writeJSON(w, http.StatusOK, ans)
}

// deleteSession deletes a session with its runs and their events. A user_id in the
// query deletes it only if it is that user's.
func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("session_id")
	if s.store == nil || r.URL.Query().Get("user_id") != "" {
		if _, ok := s.session(w, r, id); !ok {
			return
		}
	}
	if s.store == nil {
		writeError(w, http.StatusConflict, fmt.Sprintf("session %q is held in memory only: this server has no store to delete it from", id))
		return
	}
	if err := s.store.DeleteSession(r.Context(), id); err != nil {
		s.writeStoreError(w, err, fmt.Sprintf("session %q", id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getSessionRun(w http.ResponseWriter, r *http.Request) {
	id, sid := r.PathValue("run_id"), r.PathValue("session_id")
	f, ok := s.find(w, r, nil, id)
	if !ok {
		return
	}
	ans := f.answer(s.cfg.Replica)
	if ans.SessionID != sid {
		writeError(w, http.StatusNotFound, fmt.Sprintf("run %q not found in session %q", id, sid))
		return
	}
	writeJSON(w, http.StatusOK, ans)
}

func (s *Server) listSessionRuns(w http.ResponseWriter, r *http.Request) {
	q, err := runQuery(r)
	if err != nil {
		s.answerError(w, err)
		return
	}
	q.SessionID = r.PathValue("session_id")
	s.answerRuns(w, r, q)
}

// memorySessions returns the sessions of the runs held in memory (of session id
// only, unless id is empty), most recently updated first: each from its first
// run, as the store makes them, without state.
func (s *Server) memorySessions(id string) []*store.Session {
	outs := s.memoryRuns(store.RunQuery{SessionID: id, Limit: math.MaxInt})
	byID := make(map[string]*store.Session)
	var sessions []*store.Session
	for _, out := range slices.Backward(outs) { // oldest first
		if out.SessionID == "" {
			continue
		}
		at := time.Unix(out.CreatedAt, 0)
		if sess := byID[out.SessionID]; sess != nil {
			if at.After(sess.UpdatedAt) {
				sess.UpdatedAt = at
			}
			continue
		}
		sess := &store.Session{ID: out.SessionID, UserID: out.UserID, Kind: run.KindAgent, ComponentID: out.AgentID,
			Name: sessionName(out.Input), CreatedAt: at, UpdatedAt: at}
		if out.WorkflowID != "" {
			sess.Kind, sess.ComponentID = run.KindWorkflow, out.WorkflowID
		}
		byID[sess.ID] = sess
		sessions = append(sessions, sess)
	}
	sortSessions(sessions, store.ByUpdated, false)
	return sessions
}

// sessionName is a run's input as the name of the session it begins, bounded as
// the store bounds it.
func sessionName(input string) string {
	n := 0
	for i := range input {
		if n == store.MaxSessionName {
			return input[:i]
		}
		n++
	}
	return input
}

// filterSessions returns the sessions q selects, in q's order.
func filterSessions(all []*store.Session, q store.SessionQuery) []*store.Session {
	var out []*store.Session
	for _, sess := range all {
		if (q.UserID != "" && sess.UserID != q.UserID) || (q.Kind != "" && sess.Kind != q.Kind) ||
			(q.ComponentID != "" && sess.ComponentID != q.ComponentID) ||
			(q.Name != "" && !strings.Contains(strings.ToLower(sess.Name), strings.ToLower(q.Name))) {
			continue
		}
		out = append(out, sess)
	}
	sortSessions(out, q.OrderBy, q.Ascending)
	return out
}

// sortSessions sorts sessions newest first by the given time (oldest first when
// ascending), ties broken by id, as the store does.
func sortSessions(sessions []*store.Session, by store.SessionOrder, ascending bool) {
	slices.SortStableFunc(sessions, func(a, b *store.Session) int {
		ta, tb := a.UpdatedAt, b.UpdatedAt
		if by == store.ByCreated {
			ta, tb = a.CreatedAt, b.CreatedAt
		}
		c := cmp.Or(ta.Compare(tb), strings.Compare(a.ID, b.ID))
		if ascending {
			return c
		}
		return -c
	})
}

// pageOf returns q's page of sessions and their number.
func pageOf(sessions []*store.Session, q store.SessionQuery) ([]*store.Session, int) {
	total := len(sessions)
	if q.Offset >= total {
		return nil, total
	}
	sessions = sessions[q.Offset:]
	return sessions[:min(len(sessions), q.Limit)], total
}
