package agentos

import (
	"cmp"
	"net/http"
	"slices"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// Routes the console needs beyond Agno's API: every run of the server's
// database, filtered and paged on the server.

// MaxRunsPage bounds a page of GET /runs.
const MaxRunsPage = 1000

// consoleRoutes are the routes added for the console (and any client).
func (s *Server) consoleRoutes() []route {
	return []route{
		{method: "GET", pattern: "/runs", handler: s.listAllRuns,
			summary: "List runs", description: "Every run of every workflow, agent and team this server's database holds, newest first, " +
				"filtered and paged on the server; the runs this server executes and has not stored yet come first.",
			params: append([]param{
				{"workflow_id", "query", "string", "Only the runs of this workflow."},
				{"agent_id", "query", "string", "Only the runs of this agent."},
				{"team_id", "query", "string", "Only the runs of this team."},
			}, runQueryParams...),
			responses: []response{ok(schemaOutputs), invalidQuery, storeDown}},
		{method: "GET", pattern: "/replicas", handler: s.getReplicas,
			summary: "The replicas serving this database",
			description: "This replica, and every replica the stored RUNNING runs name (at most 1000 read): its live runs, " +
				"the end of its latest lease and about when it renewed it (its heartbeat).",
			responses: []response{ok(schemaReplicas), storeDown}},
		{method: "GET", pattern: "/queue", handler: s.getQueue,
			summary: "The background queue",
			description: "How many background runs wait for a worker (counted up to 10000), since when the oldest waits, " +
				"and whether the queue is the store's, shared by every replica on the database.",
			responses: []response{ok(schemaQueue), storeDown}},
	}
}

// listAllRuns answers GET /runs.
func (s *Server) listAllRuns(w http.ResponseWriter, r *http.Request) {
	q, err := runQuery(r)
	if err != nil {
		s.answerError(w, err)
		return
	}
	if q.Limit > MaxRunsPage {
		writeError(w, http.StatusUnprocessableEntity, "limit is at most 1000")
		return
	}
	given := 0
	for _, f := range []struct {
		name string
		kind run.Kind
	}{{"workflow_id", run.KindWorkflow}, {"agent_id", run.KindAgent}, {"team_id", run.KindTeam}} {
		if id := r.URL.Query().Get(f.name); id != "" {
			q.Kind, q.ComponentID = f.kind, id
			given++
		}
	}
	if given > 1 {
		writeError(w, http.StatusUnprocessableEntity, "give one of workflow_id, agent_id and team_id, not more")
		return
	}
	s.answerRuns(w, r, q)
}

// Bounds of what GET /replicas and GET /queue read from the store.
const (
	maxReplicaRuns = 1000  // RUNNING runs read to count each replica's
	maxQueueCount  = 10000 // queued runs counted
)

// replicaAnswer is one replica in GET /replicas.
type replicaAnswer struct {
	Replica  string `json:"replica"`
	This     bool   `json:"this"`      // the replica answering
	LiveRuns int    `json:"live_runs"` // runs it executes
	// LeaseUntil is the end of the latest lease of its runs, and LastHeartbeat
	// about when it renewed it (a lease, this server's, before): Unix seconds.
	LeaseUntil    int64 `json:"lease_until,omitempty"`
	LastHeartbeat int64 `json:"last_heartbeat,omitempty"`
}

func (s *Server) getReplicas(w http.ResponseWriter, r *http.Request) {
	this := &replicaAnswer{Replica: s.cfg.Replica, This: true, LastHeartbeat: time.Now().Unix()}
	for _, lr := range s.host.Runs() {
		if x := lr.Exec(); x != nil && !x.Ended() {
			this.LiveRuns++
		}
	}
	byName := map[string]*replicaAnswer{this.Replica: this}
	list := []*replicaAnswer{this}
	complete := true
	if s.store != nil {
		recs, err := s.store.ListRuns(r.Context(), store.RunQuery{Status: run.StatusRunning, Limit: maxReplicaRuns})
		if err != nil {
			s.writeStoreError(w, err, "runs")
			return
		}
		complete = len(recs) < maxReplicaRuns
		lease := s.host.Lease()
		for _, rec := range recs {
			if rec.Replica == "" {
				continue
			}
			ra := byName[rec.Replica]
			if ra == nil {
				ra = &replicaAnswer{Replica: rec.Replica}
				byName[rec.Replica] = ra
				list = append(list, ra)
			}
			if ra.This {
				continue // counted in memory
			}
			ra.LiveRuns++
			if u := rec.LeaseUntil.Unix(); !rec.LeaseUntil.IsZero() && u > ra.LeaseUntil {
				ra.LeaseUntil, ra.LastHeartbeat = u, rec.LeaseUntil.Add(-lease).Unix()
			}
		}
	}
	slices.SortStableFunc(list[1:], func(a, b *replicaAnswer) int { return cmp.Compare(a.Replica, b.Replica) })
	writeJSON(w, http.StatusOK, map[string]any{"replicas": list, "complete": complete,
		"lease_seconds": s.host.Lease().Seconds()})
}

func (s *Server) getQueue(w http.ResponseWriter, r *http.Request) {
	st, err := s.host.QueueStats(r.Context(), maxQueueCount)
	if err != nil {
		s.writeStoreError(w, err, "queue")
		return
	}
	ans := map[string]any{"depth": st.Depth, "capped": st.Capped, "shared": st.Shared,
		"workers": st.Workers, "size": st.Size}
	if !st.Oldest.IsZero() {
		ans["oldest_created_at"] = st.Oldest.Unix()
	}
	writeJSON(w, http.StatusOK, ans)
}
