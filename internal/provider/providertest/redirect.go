package providertest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// Redirector is a plain HTTP server whose every answer is a 307 redirect
// to a second server on another port (another host as far as redirects
// go), which counts what reaches it and answers with JSON that must never
// end up in a volume.
type Redirector struct {
	// URL is the redirecting server's base URL.
	URL string
	// OtherURL is the base URL of the server redirected to.
	OtherURL string
	hits     atomic.Int64
}

// InternalJSON is what the server redirected to answers.
const InternalJSON = `{"data":{"data":{"internal":"endpoint"},"metadata":{"version":1}},"AccessKeyId":"internal","access_token":"internal"}`

// NewRedirector starts both servers; they stop when the test ends.
func NewRedirector(t testing.TB) *Redirector {
	t.Helper()
	r := &Redirector{}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		r.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, InternalJSON)
	}))
	t.Cleanup(other.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// The open redirect is the point: it is the attack under test.
		http.Redirect(w, req, other.URL+req.URL.RequestURI(), http.StatusTemporaryRedirect) //nolint:gosec // G710: see above
	}))
	t.Cleanup(srv.Close)
	r.URL, r.OtherURL = srv.URL, other.URL
	return r
}

// OtherHits is how many requests reached the server redirected to.
func (r *Redirector) OtherHits() int64 { return r.hits.Load() }
