package agentos

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// RetryAfter is what a refused request is told to wait before it tries again, in
// its Retry-After header: long enough for a run or a stream to end on a busy
// server, short enough that a client is not kept waiting for a place long free.
const RetryAfter = 2 * time.Second

// retryAfterHeader is RetryAfter in whole seconds, as the header carries it.
var retryAfterHeader = strconv.Itoa(int(RetryAfter / time.Second))

// slots counts the open streams (Config.MaxStreams): runs streamed and
// resumptions, live or followed from the store.
type slots struct {
	max  int64 // 0: no bound, and nothing counted
	open atomic.Int64
}

// take takes a place for a stream, and reports false when every place is taken.
// A compare-and-swap keeps the count from ever passing max, so that a refused
// stream never makes another one refused.
func (s *slots) take() bool {
	if s.max <= 0 {
		return true
	}
	for {
		n := s.open.Load()
		if n >= s.max {
			return false
		}
		if s.open.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// give gives back a place take took.
func (s *slots) give() {
	if s.max > 0 {
		s.open.Add(-1)
	}
}

// writeBusy answers 503 with Retry-After: the server refuses the request for
// now, as admission control, and will take it again once a run or a stream ends.
func writeBusy(w http.ResponseWriter, detail string) {
	writeRetryLater(w, http.StatusServiceUnavailable, detail+": try again later")
}

// writeRetryLater answers code with Retry-After (RetryAfter): a refusal for now,
// not for good.
func writeRetryLater(w http.ResponseWriter, code int, detail string) {
	w.Header().Set("Retry-After", retryAfterHeader)
	writeError(w, code, detail)
}

// takeStream takes a place for a stream, or answers 503 itself and reports false.
func (s *Server) takeStream(w http.ResponseWriter) bool {
	if s.streamSlots.take() {
		return true
	}
	writeBusy(w, "server is busy: "+strconv.FormatInt(s.streamSlots.max, 10)+" streams open (max streams)")
	return false
}
