package agentos

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/telemetry"
)

// runRequest is the body of POST .../runs, as form fields or JSON.
type runRequest struct {
	Message    *string `json:"message"`
	Stream     *bool   `json:"stream"`
	SessionID  string  `json:"session_id"`
	UserID     string  `json:"user_id"`
	Background bool    `json:"background"`
	// Images and Files (or InputFiles, Agno's client's name) are lists of media
	// (see media), or strings holding one, as Agno's clients send them.
	Images     json.RawMessage `json:"images"`
	Files      json.RawMessage `json:"files"`
	InputFiles json.RawMessage `json:"input_files"`

	atts []model.Attachment // the run's images and files, read from the fields above and uploads
}

// httpError is a client's mistake, answered with its status.
type httpError struct {
	code   int
	detail string
}

func (e *httpError) Error() string { return e.detail }

func badRequest(code int, format string, args ...any) error {
	return &httpError{code: code, detail: fmt.Sprintf(format, args...)}
}

// answerError answers err: its own status for an httpError, 413 for a body over the
// limit, 500 otherwise.
func (s *Server) answerError(w http.ResponseWriter, err error) {
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		writeError(w, he.code, he.detail)
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
	default:
		s.log.Error("agentos: request failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// readForm reads the whole body (so that, on HTTP/1.1, a disconnect shows in the
// request's context) as a form, urlencoded or multipart, or as JSON into v. It
// reports whether the body was JSON.
func (s *Server) readForm(w http.ResponseWriter, r *http.Request, v any) (isJSON bool, err error) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	ct := r.Header.Get("Content-Type")
	media := ""
	if ct != "" {
		if media, _, err = mime.ParseMediaType(ct); err != nil {
			return false, badRequest(http.StatusBadRequest, "malformed Content-Type: %v", err)
		}
	}
	switch media {
	case "application/json":
		if v == nil {
			return true, badRequest(http.StatusUnsupportedMediaType, "this route takes form fields")
		}
		return true, decodeJSON(r.Body, v)
	case "multipart/form-data":
		if err := r.ParseMultipartForm(s.cfg.MaxBodyBytes); err != nil {
			return false, formError(err)
		}
	case "", "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return false, formError(err)
		}
	default:
		return false, badRequest(http.StatusUnsupportedMediaType, "unsupported Content-Type %q: send a form or JSON", media)
	}
	// A multipart body may end in an epilogue after its closing boundary (RFC
	// 2046); it is read, so that a body cut short is a 400 and not a run.
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		return false, bodyError("request body", err)
	}
	return false, nil
}

func formError(err error) error {
	return bodyError("malformed form", err)
}

// bodyError is a failed read or parse of a request body, a client's mistake in
// every case: the body's own limit (413) and deadline (408) errors as they are, any
// other one (a body shorter than its Content-Length, a malformed one) a 400 saying
// what, and never a 500.
func bodyError(what string, err error) error {
	var mbe *http.MaxBytesError
	var he *httpError
	if errors.As(err, &mbe) || errors.As(err, &he) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest(http.StatusBadRequest, "%s: the body ended early, before its Content-Length", what)
	}
	return badRequest(http.StatusBadRequest, "%s: %v", what, err)
}

// decodeJSON decodes body, one JSON value with nothing but white space after it,
// into v. An empty body decodes as nothing: the missing fields say what is wrong.
// The body is read whole first (it is bounded, and the decoder would buffer the
// value whole anyway): a body cut short is then a 400 however much of it parsed,
// and one that is not UTF-8 is refused, where encoding/json would quietly replace
// its bytes with U+FFFD.
func decodeJSON(body io.Reader, v any) error {
	b, err := io.ReadAll(body)
	if err != nil {
		return bodyError("request body", err)
	}
	if len(bytes.TrimLeft(b, jsonSpace)) == 0 {
		return nil
	}
	if !utf8.Valid(b) {
		return badRequest(http.StatusUnprocessableEntity, "malformed JSON: the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return badRequest(http.StatusBadRequest, "malformed JSON: %v", err)
	}
	// Trailing data is refused rather than ignored: a second object, or a body
	// glued to another, is a client's mistake it would not otherwise hear of.
	if len(bytes.TrimLeft(b[dec.InputOffset():], jsonSpace)) > 0 {
		return badRequest(http.StatusBadRequest, "malformed JSON: data after the JSON value")
	}
	return nil
}

// jsonSpace is the white space JSON allows between tokens.
const jsonSpace = " \t\r\n"

// parseRun reads a run request: its fields, its ids (bounded as path ids are) and
// its attachments.
func (s *Server) parseRun(w http.ResponseWriter, r *http.Request) (runRequest, error) {
	// stream and background are body fields, as in Agno; one in the query string
	// is refused rather than ignored (the run would not be what the client asked
	// for) or honoured (which of two values wins would be a guess).
	q := r.URL.Query()
	for _, name := range [...]string{"stream", "background"} {
		if q.Has(name) {
			return runRequest{}, badRequest(http.StatusUnprocessableEntity,
				"%s is a body field (form or JSON), not a query parameter", name)
		}
	}
	req, err := s.readRun(w, r)
	if err != nil {
		return req, err
	}
	for _, id := range [...]struct{ name, v string }{{"session_id", req.SessionID}, {"user_id", req.UserID}} {
		if err := checkID(id.name, id.v); err != nil {
			return req, badRequest(http.StatusUnprocessableEntity, "%v", err)
		}
	}
	if err := checkMessage(*req.Message); err != nil {
		return req, err
	}
	return req, s.readAttachments(&req, r)
}

// checkMessage refuses, with 422, a message that is empty (as Agno refuses an
// empty required form field), not valid UTF-8, or holding a NUL byte. NUL is
// refused rather than stored: PostgreSQL's text cannot hold it, and a message both
// stores keep the same is one neither has to escape.
func checkMessage(msg string) error {
	switch {
	case msg == "":
		return badRequest(http.StatusUnprocessableEntity, "message is empty")
	case !utf8.ValidString(msg):
		return badRequest(http.StatusUnprocessableEntity, "message is not valid UTF-8")
	case strings.IndexByte(msg, 0) >= 0:
		return badRequest(http.StatusUnprocessableEntity, "message holds a NUL byte")
	}
	return nil
}

// readRun reads a run request's fields from a JSON or form body.
func (s *Server) readRun(w http.ResponseWriter, r *http.Request) (runRequest, error) {
	var req runRequest
	isJSON, err := s.readForm(w, r, &req)
	if err != nil || isJSON {
		if err == nil && req.Message == nil {
			err = badRequest(http.StatusUnprocessableEntity, "message is required")
		}
		return req, err
	}
	f := r.PostForm
	if !f.Has("message") {
		return req, badRequest(http.StatusUnprocessableEntity, "message is required")
	}
	msg := f.Get("message")
	req.Message, req.SessionID, req.UserID = &msg, f.Get("session_id"), f.Get("user_id")
	if err := formFlags(f, &req.Stream, &req.Background); err != nil {
		return req, err
	}
	req.Images, req.Files, req.InputFiles = formJSON(f.Get("images")), formJSON(f.Get("files")), formJSON(f.Get("input_files"))
	return req, nil
}

// formJSON returns a form field's value as the JSON it holds (nil if empty).
func formJSON(v string) json.RawMessage {
	if v == "" {
		return nil
	}
	return json.RawMessage(v)
}

// readAttachments reads the images and files of a run request into req.atts: its
// media fields, and the files uploaded as files in a multipart body.
func (s *Server) readAttachments(req *runRequest, r *http.Request) error {
	a := attachments{max: s.cfg.MaxAttachments, maxBytes: s.cfg.MaxAttachmentBytes}
	for _, f := range []struct {
		name string
		kind model.AttachmentKind
		raw  json.RawMessage
	}{{"images", model.AttachmentImage, req.Images}, {"files", model.AttachmentFile, req.Files}, {"input_files", model.AttachmentFile, req.InputFiles}} {
		if err := a.media(f.name, f.kind, f.raw); err != nil {
			return err
		}
	}
	if r.MultipartForm != nil {
		for _, fh := range r.MultipartForm.File["files"] {
			if err := a.upload(fh); err != nil {
				return err
			}
		}
	}
	req.atts = a.list
	return nil
}

// createRun starts a run: streamed as SSE, waited for and answered as JSON, or
// queued in the background and answered 202.
func (s *Server) createRun(w http.ResponseWriter, r *http.Request, c *component) {
	// The run is started in a call of its own, whose frame is gone by the time the
	// stream is served: a stream's goroutine then fits a smaller stack.
	hrun, streamed := s.startRun(w, r, c)
	switch {
	case hrun == nil:
	case streamed:
		defer s.streamSlots.give()
		s.stream(w, r, hrun, 0)
	default:
		s.answerRun(w, r, c, hrun)
	}
}

// startRun starts the run a request asks for, or queues it or answers the request's
// error. It returns the run started, if any, attached, and whether it is streamed:
// then it holds one of the stream slots, which the caller gives back.
func (s *Server) startRun(w http.ResponseWriter, r *http.Request, c *component) (hrun *host.Run, streamed bool) {
	req, err := s.parseRun(w, r)
	if err != nil {
		s.answerError(w, err)
		return nil, false
	}
	hr := host.Request{Kind: c.kind, Component: c.id, Input: *req.Message, SessionID: req.SessionID, UserID: req.UserID,
		Parent: host.ParseTraceparent(r.Header.Get("Traceparent"))} // the caller's span: the run's parent, when traced
	if hr.SessionID == "" {
		hr.SessionID = run.NewID()
	}
	if len(req.atts) > 0 {
		if req.Background {
			// A background run is queued in the store, which keeps its text input
			// only: it would run without them.
			writeError(w, http.StatusUnprocessableEntity, "a background run takes no images or files: they are not stored")
			return nil, false
		}
		hr.Options = []run.Option{agent.WithAttachments(req.atts...)}
	}
	if req.Background {
		s.createBackground(w, r, hr)
		return nil, false
	}
	streamed = req.Stream == nil || *req.Stream
	hr.Unread = !streamed // its answer is its output; resumes read the store
	// The stream's place is taken before the run starts: a refused stream
	// starts no run.
	if streamed && !s.takeStream(w) {
		return nil, false
	}
	hrun, err = s.host.Start(hr)
	if err != nil {
		if streamed {
			s.streamSlots.give()
		}
		s.answerStartError(w, err)
		return nil, false
	}
	s.attach(hrun)
	return hrun, streamed
}

// answerRun answers a run that is not streamed with its end as stored: should this
// process lose the run, the end its next owner stores (see host.Host.Result).
func (s *Server) answerRun(w http.ResponseWriter, r *http.Request, c *component, hrun *host.Run) {
	out, err := s.host.Result(r.Context(), hrun)
	switch {
	case r.Context().Err() != nil:
		s.detach(hrun, false)
	case err != nil:
		s.detach(hrun, true)
		s.writeStoreError(w, err, "run "+hrun.ID())
	default:
		s.detach(hrun, true)
		writeJSON(w, http.StatusOK, newAnswer(fixOutput(out, c.kind, c.id, ""), ""))
	}
}

// createBackground queues a background run: in this process, or on the queue the
// processes sharing the store share.
func (s *Server) createBackground(w http.ResponseWriter, r *http.Request, hr host.Request) {
	out, err := s.host.Enqueue(r.Context(), hr)
	switch {
	case errors.Is(err, host.ErrQueueFull):
		writeRetryLater(w, http.StatusTooManyRequests, "too many background runs: try again later")
	case errors.Is(err, host.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case err != nil:
		s.writeStoreError(w, err, "queue")
	default:
		writeJSON(w, http.StatusAccepted, map[string]string{
			"run_id": out.RunID, "session_id": out.SessionID, "status": string(run.StatusPending),
		})
	}
}

func (s *Server) answerStartError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, host.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, host.ErrBusy):
		writeBusy(w, err.Error())
	case errors.Is(err, run.ErrInvalid), errors.Is(err, store.ErrTooLarge):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, run.ErrDuplicateID):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, store.ErrUnavailable):
		// Its record could not be stored: the run did not start (the host logged it).
		writeError(w, http.StatusServiceUnavailable, unavailableDetail(err))
	default:
		writeError(w, http.StatusServiceUnavailable, "run could not start: "+err.Error())
	}
}

// fixOutput makes out what Agno's client expects: the component's id set, a status.
func fixOutput(out *run.Output, kind run.Kind, componentID string, st run.Status) *run.Output {
	if kind == run.KindWorkflow && out.WorkflowID == "" {
		out.WorkflowID = componentID
	}
	if kind == run.KindAgent && out.AgentID == "" {
		out.AgentID = componentID
	}
	if kind == run.KindTeam && out.TeamID == "" {
		out.TeamID = componentID
	}
	if st != "" {
		out.Status = st
	}
	if out.Status == "" {
		out.Status = run.StatusPending
	}
	return out
}

// runAnswer is a run as the API answers it: its output, and the replica that
// executes or executed it (kern's addition; Agno's clients ignore it).
type runAnswer struct {
	*run.Output
	// Content replaces the output's: a structured output's JSON value itself, as
	// Agno answers one, or else the text as a JSON string.
	Content json.RawMessage `json:"content"`
	Replica string          `json:"replica,omitempty"`
	// Paused hides the state a paused run continues from: kern's own.
	Paused *struct{} `json:"paused,omitempty"`
}

// newAnswer returns out as the API answers it; replica names the server that
// executes or executed it ("" leaves it out).
func newAnswer(out *run.Output, replica string) runAnswer {
	content, ok := out.StructuredContent()
	if !ok {
		content, _ = json.Marshal(out.Content) // a string always encodes
	}
	return runAnswer{Output: out, Content: content, Replica: replica}
}

// answer returns the run as the API answers it; replica names this server.
func (f found) answer(replica string) runAnswer {
	if f.lr == nil {
		replica = f.rec.Replica
	}
	return newAnswer(f.output(), replica)
}

// found is a run found in memory or in the store.
type found struct {
	lr  *host.Run  // the run, when this server's host holds it
	rec *store.Run // the stored run, otherwise
}

func (f found) kind() run.Kind {
	if f.lr != nil {
		return f.lr.Kind()
	}
	return f.rec.Kind
}

func (f found) componentID() string {
	if f.lr != nil {
		return f.lr.Component()
	}
	return f.rec.ComponentID
}

func (f found) belongs(c *component) bool {
	return c == nil || (f.kind() == c.kind && f.componentID() == c.id)
}

func (f found) output() *run.Output {
	if f.lr != nil {
		return fixOutput(f.lr.Output(), f.kind(), f.componentID(), "")
	}
	out := f.rec.Output
	if out.RunID == "" {
		out.RunID, out.SessionID, out.UserID, out.Input = f.rec.ID, f.rec.SessionID, f.rec.UserID, f.rec.Input
	}
	return fixOutput(&out, f.rec.Kind, f.rec.ComponentID, f.rec.Status)
}

// find looks a run up in memory, then in the store. It answers the client itself
// when the run is not found (or not c's) and reports false.
func (s *Server) find(w http.ResponseWriter, r *http.Request, c *component, id string) (found, bool) {
	if lr := s.host.Lookup(id); lr != nil {
		f := found{lr: lr}
		if !f.belongs(c) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("run %q not found in %s %q", id, c.kind, c.id))
			return f, false
		}
		return f, true
	}
	if s.store == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("run %q not found", id))
		return found{}, false
	}
	rec, err := s.store.GetRun(r.Context(), id)
	if err != nil {
		s.writeStoreError(w, err, fmt.Sprintf("run %q", id))
		return found{}, false
	}
	f := found{rec: rec}
	if !f.belongs(c) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("run %q not found in %s %q", id, c.kind, c.id))
		return f, false
	}
	return f, true
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	s.getComponentRun(w, r, nil)
}

func (s *Server) getComponentRun(w http.ResponseWriter, r *http.Request, c *component) {
	if f, ok := s.find(w, r, c, r.PathValue("run_id")); ok {
		writeJSON(w, http.StatusOK, f.answer(s.cfg.Replica))
	}
}

// runQuery reads the filters and page of a run listing.
func runQuery(r *http.Request) (store.RunQuery, error) {
	q := r.URL.Query()
	rq := store.RunQuery{SessionID: q.Get("session_id"), UserID: q.Get("user_id"), Status: run.Status(strings.ToUpper(q.Get("status")))}
	switch rq.Status {
	case "", run.StatusPending, run.StatusRunning, run.StatusCompleted, run.StatusPaused, run.StatusCancelled, run.StatusError:
	default:
		return rq, badRequest(http.StatusUnprocessableEntity, "unknown status %q", q.Get("status"))
	}
	for _, p := range []struct {
		name string
		dst  *int
	}{{"limit", &rq.Limit}, {"offset", &rq.Offset}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return rq, badRequest(http.StatusUnprocessableEntity, "%s must be a non-negative integer, not %q", p.name, v)
			}
			*p.dst = n
		}
	}
	if rq.Limit == 0 {
		rq.Limit = 100
	}
	return rq, nil
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request, c *component) {
	q, err := runQuery(r)
	if err != nil {
		s.answerError(w, err)
		return
	}
	q.Kind, q.ComponentID = c.kind, c.id
	s.answerRuns(w, r, q)
}

func (s *Server) answerRuns(w http.ResponseWriter, r *http.Request, q store.RunQuery) {
	outs := []runAnswer{}
	if s.store == nil {
		for _, out := range s.memoryRuns(q) {
			outs = append(outs, newAnswer(out, s.cfg.Replica))
		}
		writeJSON(w, http.StatusOK, outs)
		return
	}
	// Memory first, then the store: a run leaves memory only once its end is
	// written, so it is in one or the other. (Read the other way round, a run that
	// ended between the two reads was in neither.)
	held := s.memoryRuns(q)
	recs, err := s.store.ListRuns(r.Context(), q)
	if err != nil {
		s.writeStoreError(w, err, "runs")
		return
	}
	// Runs this server executes that the recorder has not written yet come first.
	stored := make(map[string]bool, len(recs))
	for _, rec := range recs {
		stored[rec.ID] = true
	}
	if q.Offset == 0 {
		for _, out := range held {
			if !stored[out.RunID] && len(outs) < q.Limit {
				outs = append(outs, newAnswer(out, s.cfg.Replica))
			}
		}
	}
	for _, rec := range recs {
		if len(outs) < q.Limit {
			outs = append(outs, found{rec: rec}.answer(""))
		}
	}
	writeJSON(w, http.StatusOK, outs)
}

// memoryRuns lists the runs held in memory that q selects, newest first.
func (s *Server) memoryRuns(q store.RunQuery) []*run.Output {
	var outs []*run.Output
	for _, lr := range s.host.Runs() {
		out := found{lr: lr}.output()
		if (q.SessionID != "" && out.SessionID != q.SessionID) || (q.UserID != "" && out.UserID != q.UserID) || (q.Status != "" && out.Status != q.Status) ||
			(q.ComponentID != "" && (lr.Kind() != q.Kind || lr.Component() != q.ComponentID)) {
			continue
		}
		outs = append(outs, out)
	}
	slicesSortNewest(outs)
	if q.Offset >= len(outs) {
		return nil
	}
	outs = outs[q.Offset:]
	return outs[:min(len(outs), q.Limit)]
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) {
	s.cancelComponentRun(w, r, nil)
}

// cancelComponentRun cancels a run through the host and, unless ?wait=false, waits
// (CancelWait at most) for it to end; it answers the status the run reached, or
// 503 when nothing of the cancel could be made durable (see host.ErrNotDurable).
func (s *Server) cancelComponentRun(w http.ResponseWriter, r *http.Request, c *component) {
	id := r.PathValue("run_id")
	wait := true
	if v := r.URL.Query().Get("wait"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("wait must be a boolean, not %q", v))
			return
		}
		wait = b
	}
	if c != nil && !s.notOthers(w, r, c, id) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CancelWait)
	defer cancel()
	if s.host.Telemetry() != nil {
		ctx = telemetry.WithCancelSource(ctx, cancelSource(r))
	}
	st, known, err := s.host.Cancel(ctx, id, run.ReasonRequested, wait)
	switch {
	case errors.Is(err, host.ErrNotDurable):
		// Cancelled in this process, but nothing of the cancel is stored: a process
		// taking the run over would not know of it, so it is not acknowledged.
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf(
			"run %s is cancelled in this process (status %s), but the store could not keep the cancel: retry it", id, st))
	case err != nil:
		s.writeStoreError(w, err, "run")
	default:
		writeJSON(w, http.StatusOK, cancelAnswer(id, st, known))
	}
}

// notOthers reports whether run id is c's or not known yet; it answers 404 itself
// for another component's run, and the store's error.
func (s *Server) notOthers(w http.ResponseWriter, r *http.Request, c *component, id string) bool {
	f := found{lr: s.host.Lookup(id)}
	if f.lr == nil && s.store != nil {
		rec, err := s.store.GetRun(r.Context(), id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.writeStoreError(w, err, "run")
			return false
		}
		f.rec = rec
	}
	if (f.lr != nil || f.rec != nil) && !f.belongs(c) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("run %q not found in %s %q", id, c.kind, c.id))
		return false
	}
	return true
}

// cancelAnswer is a cancel's answer: the status the run reached, and whether any
// process knows the run (false: the intent is kept for a run not started yet).
func cancelAnswer(id string, st run.Status, known bool) map[string]any {
	return map[string]any{"run_id": id, "status": string(st), "known": known}
}

// slicesSortNewest sorts outputs newest first, as the store lists runs.
func slicesSortNewest(outs []*run.Output) {
	slices.SortStableFunc(outs, func(a, b *run.Output) int {
		if c := cmp.Compare(b.CreatedAt, a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.RunID, a.RunID)
	})
}

// userAgentCLI begins the User-Agent of kern's command line (client.UserAgentCLI).
const userAgentCLI = "kern-cli"

// cancelSource tells a cancel from `kern cancel` (whose client says so in its
// User-Agent) from another HTTP client's, for the trace's kern.cancel.source.
func cancelSource(r *http.Request) string {
	if strings.HasPrefix(r.UserAgent(), userAgentCLI) {
		return telemetry.SourceCLI
	}
	return telemetry.SourceAPI
}

// formFlags reads a run's form fields stream and background into stream and
// background, each only when given: 422 for a value that is not a boolean.
func formFlags(f url.Values, stream **bool, background *bool) error {
	for _, name := range [...]string{"stream", "background"} {
		if !f.Has(name) {
			continue
		}
		v, err := strconv.ParseBool(f.Get(name))
		if err != nil {
			return badRequest(http.StatusUnprocessableEntity, "%s must be a boolean, not %q", name, f.Get(name))
		}
		if name == "stream" {
			*stream = &v
		} else {
			*background = v
		}
	}
	return nil
}
