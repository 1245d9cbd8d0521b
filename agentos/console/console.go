// Package console is kern's web console: hand-written HTML, CSS and ES modules,
// embedded in the binary and served by agentos at / and under /console/. It
// needs no build step and no Node toolchain; it talks to the server only
// through kern's own HTTP API, as any client does.
//
// The assets are public (they hold no data); every API call they make carries the
// security key the viewer typed, kept in the tab's sessionStorage. Every answer
// carries a Content-Security-Policy that allows scripts, styles and connections
// from the server's own origin only, and nothing inline.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed assets
var assets embed.FS

// Prefix is the path under which the console's assets are served; the index
// page is served at "/".
const Prefix = "/console/"

// CSP is the Content-Security-Policy of every console answer: nothing from
// elsewhere, nothing inline, no plugins, no framing.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; " +
	"frame-ancestors 'none'"

// asset is one embedded file, ready to serve: as it is, and gzipped.
type asset struct {
	body, gz []byte
	ctype    string
	etag     string
}

var files = load()

func load() map[string]asset {
	m := make(map[string]asset)
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(path.Ext(p))
		if strings.HasSuffix(p, ".js") {
			ctype = "text/javascript; charset=utf-8"
		}
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		zw.Write(b)
		zw.Close()
		m[strings.TrimPrefix(p, "assets/")] = asset{body: b, gz: gz.Bytes(), ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("console: embedded assets: " + err.Error()) // a build mistake, caught by every test
	}
	return m
}

// Serves reports whether path is the console's: "/" or under Prefix. Such paths
// are served without the security key.
func Serves(p string) bool {
	return p == "/" || strings.HasPrefix(p, Prefix)
}

// Handler serves the console: the index page at "/", the assets under Prefix; an
// unknown asset is a 404 with a JSON detail, as every error of the server.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "index.html"
		if r.URL.Path != "/" {
			name = strings.TrimPrefix(r.URL.Path, Prefix)
		}
		a, ok := files[name]
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if !ok {
			h.Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"detail":"no such console file"}` + "\n"))
			return
		}
		h.Set("Content-Type", a.ctype)
		h.Set("Cache-Control", "no-cache") // revalidated with the ETag: a new binary's assets are seen at once
		h.Set("Vary", "Accept-Encoding")
		body, etag := a.body, a.etag
		if acceptsGzip(r) {
			body, etag = a.gz, strings.TrimSuffix(a.etag, `"`)+`-gz"`
			h.Set("Content-Encoding", "gzip")
		}
		h.Set("ETag", etag)
		if match := r.Header.Get("If-None-Match"); match != "" && match == etag {
			h.Del("Content-Encoding")
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodHead {
			return
		}
		w.Write(body)
	})
}

// acceptsGzip reports whether r's Accept-Encoding takes gzip (not with q=0).
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(name), "gzip") {
				q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
				return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
			}
		}
	}
	return false
}

// Size returns the bytes of every asset, as they are and gzipped, for the record
// of what the console ships.
func Size() (raw, gzipped int) {
	for _, a := range files {
		raw += len(a.body)
		gzipped += len(a.gz)
	}
	return raw, gzipped
}
