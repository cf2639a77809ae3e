package gcp

import (
	"errors"
	"net/http"
	"testing"

	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/providertest"
)

// TestTokenClientRefusesCrossHostRedirects sends a request through the
// client of the token requests (STS, IAM Credentials, metadata server),
// the default one and a test's, to a server that redirects to another
// host.
func TestTokenClientRefusesCrossHostRedirects(t *testing.T) {
	for name, opts := range map[string]Options{
		"default client": {},
		"test client":    {HTTPClient: &http.Client{}},
	} {
		t.Run(name, func(t *testing.T) {
			r := providertest.NewRedirector(t)
			resp, err := New(opts).httpClient().Post(r.URL+"/v1/token", "application/json", http.NoBody)
			if err == nil {
				_ = resp.Body.Close()
				t.Fatalf("a redirect to another host was followed (status %d)", resp.StatusCode)
			}
			if !errors.Is(err, provider.ErrRedirectRefused) {
				t.Errorf("error %v does not wrap provider.ErrRedirectRefused", err)
			}
			if n := r.OtherHits(); n != 0 {
				t.Errorf("the other host was reached %d times", n)
			}
			if opts.HTTPClient != nil && opts.HTTPClient.CheckRedirect != nil {
				t.Error("the caller's client was modified")
			}
		})
	}
}
