package agentos

import (
	"net/http"

	"github.com/kern-dev/kern/store"
)

// follow streams a stored run's events from index from on: those stored, then, while
// the run executes in another process, those it stores next, until its end (see
// host.Host.Follow).
func (s *Server) follow(w http.ResponseWriter, r *http.Request, rec *store.Run, from int) {
	var out *sse
	stop := func() {}
	defer func() { stop() }()
	err := s.host.Follow(r.Context(), rec, from, func(evs []store.Event) bool {
		if out == nil {
			out = startSSE(w)
			stop = out.heartbeat(s.beats)
		}
		for i, e := range evs {
			if out.stored(e, i == len(evs)-1) != nil {
				return false
			}
		}
		return true
	})
	if err != nil && out == nil {
		s.writeStoreError(w, err, "events of run "+rec.ID)
	}
}
