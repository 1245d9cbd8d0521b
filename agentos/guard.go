package agentos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// MaxIDBytes bounds an id a request names in its path or query (a run, session,
// user, workflow or agent id): a longer one is refused with 422 before any work,
// as the stores refuse to keep a cancel intent for one.
const MaxIDBytes = 1024

// guard puts the checks every request passes before its route around next, in
// this order: the body's read deadline (first, so that even a refused request's
// unread body is bounded), the Host header of a loopback listener, the origin of a
// browser's request (and CORS preflights), and the ids in the path and query.
func (s *Server) guard(next http.Handler) (http.Handler, error) {
	origins, err := s.newOrigins()
	if err != nil {
		return nil, err
	}
	allowed := make(map[string]bool, len(s.cfg.AllowedHosts))
	for _, h := range s.cfg.AllowedHosts {
		allowed[normalHost(h)] = true
	}
	h := s.boundIDs(next)
	h = origins.handler(h)
	h = hostCheck(allowed, h)
	return s.bodyDeadline(h), nil
}

// bodyDeadline gives a request with a body Config.BodyTimeout to send it: past
// that, reads of the body fail and the request is answered 408, whatever its
// handler made of the failed read. The deadline is the connection's read deadline,
// which net/http's server lifts once the body is read (it then watches the
// connection for the client leaving), so that a stream's connection stays open as
// long as its run; a body its handler left unread is dropped under the deadline.
func (s *Server) bodyDeadline(next http.Handler) http.Handler {
	if s.cfg.BodyTimeout < 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
		if err != nil {
			next.ServeHTTP(w, r) // not a connection of net/http's server
			return
		}
		b := &deadlineBody{ReadCloser: r.Body}
		r.Body = b
		next.ServeHTTP(&deadlineWriter{ResponseWriter: w, body: b, timeout: s.cfg.BodyTimeout}, r)
	})
}

// deadlineBody is a request body read under a deadline: the deadline's error is a
// 408.
type deadlineBody struct {
	io.ReadCloser
	timedOut atomic.Bool // a read failed past the deadline
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		b.timedOut.Store(true)
		return n, &httpError{code: http.StatusRequestTimeout, detail: "request body not received in time"}
	}
	return n, err
}

// deadlineWriter answers 408 in place of whatever the handler answers once the
// body's deadline passed.
type deadlineWriter struct {
	http.ResponseWriter
	body     *deadlineBody
	timeout  time.Duration
	wrote    bool
	replaced bool // the answer is the 408: the handler's writes are dropped
}

func (w *deadlineWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code) // informational: the answer is still to come
		return
	}
	if w.wrote {
		return
	}
	w.wrote = true
	if w.body.timedOut.Load() {
		w.replaced = true
		w.Header().Set("Connection", "close")
		writeError(w.ResponseWriter, http.StatusRequestTimeout,
			fmt.Sprintf("request body not received within %s", w.timeout))
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.replaced {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap gives http.ResponseController the server's writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// listenerKey marks, in a request's context, the listener ServeListener serves it
// on.
type listenerKey struct{}

// hostCheck refuses, with 421, a request that came through a listener bound to a
// loopback address and whose Host names neither a loopback address, nor localhost,
// nor one of the allowed hosts: a web page whose name was rebound to 127.0.0.1
// (DNS rebinding) must not reach the server. Requests served through Handler on a
// program's own server are not checked: that server chose its address.
func hostCheck(allowed map[string]bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ln, _ := r.Context().Value(listenerKey{}).(net.Listener)
		if ln != nil && isLoopback(ln.Addr()) && !loopbackHost(r.Host, allowed) {
			writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf(
				"host %q is not this server's: a server on a loopback address answers only to localhost, "+
					"loopback addresses and its allowed hosts", r.Host))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// withListener returns the base context of the requests served on ln.
func withListener(ctx context.Context, ln net.Listener) context.Context {
	return context.WithValue(ctx, listenerKey{}, ln)
}

func isLoopback(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// loopbackHost reports whether a Host header names this machine's loopback
// interface (localhost, a .localhost name, a loopback address) or an allowed host.
func loopbackHost(host string, allowed map[string]bool) bool {
	h := normalHost(host)
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Unmap().IsLoopback()
	}
	return h != "" && allowed[h]
}

// normalHost is a Host header's name or address, lowercase, without port,
// brackets or trailing dot.
func normalHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// origins decides on browsers' cross-origin requests: a state-changing request
// (POST, DELETE...) from another origin than the server's own is refused with 403
// unless its origin is allowed; an allowed origin's preflight is answered, and its
// requests get the CORS headers that let its pages read the answers. Requests
// without Origin or Sec-Fetch-Site (Agno's client, curl, kern's client) are not
// browsers' and pass.
type origins struct {
	allowed map[string]bool // origins as in Config.CORSOrigins
	csrf    *http.CrossOriginProtection
}

func (s *Server) newOrigins() (*origins, error) {
	o := &origins{allowed: make(map[string]bool), csrf: http.NewCrossOriginProtection()}
	for _, origin := range s.cfg.CORSOrigins {
		origin = strings.TrimSuffix(origin, "/")
		if err := o.csrf.AddTrustedOrigin(origin); err != nil {
			return nil, fmt.Errorf("agentos: CORS origin %q: want scheme://host[:port]: %w", origin, err)
		}
		o.allowed[origin] = true
	}
	o.csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, fmt.Sprintf(
			"cross-origin %s from %q refused: that origin is not allowed on this server", r.Method, originOf(r)))
	}))
	return o, nil
}

// originOf names a request's origin for a refusal.
func originOf(r *http.Request) string {
	if o := r.Header.Get("Origin"); o != "" {
		return o
	}
	return "a " + r.Header.Get("Sec-Fetch-Site") + " page"
}

// Headers of a CORS answer.
const (
	corsMethods = "GET, POST, DELETE"
	corsHeaders = "Authorization, Content-Type, Last-Event-ID"
	corsMaxAge  = "600"
)

func (o *origins) handler(next http.Handler) http.Handler {
	protected := o.csrf.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		from := r.Header.Get("Origin")
		if from == "" {
			protected.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			o.preflight(w, r, from)
			return
		}
		if o.allowed[from] {
			w.Header().Set("Access-Control-Allow-Origin", from)
		}
		w.Header().Add("Vary", "Origin")
		protected.ServeHTTP(w, r)
	})
}

// preflight answers a browser's CORS preflight: 204 with what an allowed origin
// may send, 403 for another.
func (o *origins) preflight(w http.ResponseWriter, r *http.Request, from string) {
	h := w.Header()
	h.Add("Vary", "Origin")
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	if !o.allowed[from] {
		writeError(w, http.StatusForbidden, fmt.Sprintf("cross-origin requests from %q are not allowed on this server", from))
		return
	}
	h.Set("Access-Control-Allow-Origin", from)
	h.Set("Access-Control-Allow-Methods", corsMethods)
	h.Set("Access-Control-Allow-Headers", corsHeaders)
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
}

// boundIDs refuses, with 422, a request whose path or query (a parameter named
// *_id) holds an id longer than MaxIDBytes, or one that is not valid UTF-8 or
// holds a NUL byte: no store keeps such an id, and an unknown one would be kept
// as a cancel intent.
func (s *Server) boundIDs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.checkPathIDs(r); err != nil {
			writeError(w, http.StatusUnprocessableEntity, err.Error())
			return
		}
		if strings.Contains(r.URL.RawQuery, "_id") {
			for name, vs := range r.URL.Query() {
				if !strings.HasSuffix(name, "_id") {
					continue
				}
				for _, v := range vs {
					if err := checkID(name, v); err != nil {
						writeError(w, http.StatusUnprocessableEntity, err.Error())
						return
					}
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// checkPathIDs checks every segment of the request's path as an id, named by the
// route's pattern when one matches.
func (s *Server) checkPathIDs(r *http.Request) error {
	for i, seg := range strings.Split(r.URL.Path, "/") {
		if checkID("", seg) != nil {
			return checkID(s.paramAt(r, i), seg) // named only when wrong: it costs a route lookup
		}
	}
	return nil
}

// paramAt names the path parameter at segment i of r's path in the pattern of the
// route that serves it, "path segment" if none.
func (s *Server) paramAt(r *http.Request, i int) string {
	_, pattern := s.mux.Handler(r)
	if _, p, ok := strings.Cut(pattern, " "); ok {
		pattern = p
	}
	segs := strings.Split(pattern, "/")
	if i < len(segs) && strings.HasPrefix(segs[i], "{") && strings.HasSuffix(segs[i], "}") {
		return strings.Trim(segs[i], "{}")
	}
	return "path segment"
}

// checkID says what is wrong with an id, if anything.
func checkID(name, id string) error {
	switch {
	case len(id) > MaxIDBytes:
		return fmt.Errorf("%s is %d bytes long: ids are at most %d bytes", name, len(id), MaxIDBytes)
	case !utf8.ValidString(id):
		return fmt.Errorf("%s is not valid UTF-8", name)
	case strings.IndexByte(id, 0) >= 0:
		return fmt.Errorf("%s holds a NUL byte", name)
	}
	return nil
}
