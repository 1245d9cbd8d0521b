package console

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestServesGzipToThoseWhoTakeIt(t *testing.T) {
	h := Handler()
	get := func(path string, header ...string) *http.Response {
		t.Helper()
		req := httptest.NewRequest("GET", path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Result()
	}
	plain := get("/console/run.js")
	body, _ := io.ReadAll(plain.Body)
	if plain.StatusCode != 200 || plain.Header.Get("Content-Encoding") != "" || !bytes.Contains(body, []byte("class RunPage")) {
		t.Fatalf("plain: %d %q", plain.StatusCode, plain.Header)
	}
	for _, ae := range []string{"gzip, deflate, br", "br;q=1.0, GZIP;q=0.5"} {
		zipped := get("/console/run.js", "Accept-Encoding", ae)
		if zipped.Header.Get("Content-Encoding") != "gzip" || zipped.Header.Get("Vary") != "Accept-Encoding" {
			t.Fatalf("%q: headers %q", ae, zipped.Header)
		}
		zr, err := gzip.NewReader(zipped.Body)
		if err != nil {
			t.Fatal(err)
		}
		unzipped, _ := io.ReadAll(zr)
		if !bytes.Equal(unzipped, body) {
			t.Fatalf("%q: the gzipped body is not the file", ae)
		}
		// Revalidation by the ETag of what was sent.
		if r := get("/console/run.js", "Accept-Encoding", ae, "If-None-Match", zipped.Header.Get("ETag")); r.StatusCode != http.StatusNotModified {
			t.Errorf("%q: revalidation %d", ae, r.StatusCode)
		}
	}
	if r := get("/console/run.js", "Accept-Encoding", "gzip;q=0"); r.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 got gzip")
	}
	raw, gz := Size()
	t.Logf("console assets: %d bytes, %d gzipped", raw, gz)
	if gz > 100<<10 {
		t.Errorf("the console ships %d bytes gzipped, over 100 KB", gz)
	}
}
