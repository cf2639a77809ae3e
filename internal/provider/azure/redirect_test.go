package azure

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/providertest"
)

// TestTransportRefusesCrossHostRedirects sends a request through the
// transport every SDK client and credential of the provider uses, the
// default one and a test's, to a server that redirects to another host.
func TestTransportRefusesCrossHostRedirects(t *testing.T) {
	for name, opts := range map[string]Options{
		"default transport": {},
		"test client":       {ClientOptions: azcore.ClientOptions{Transport: &http.Client{}}},
	} {
		t.Run(name, func(t *testing.T) {
			r := providertest.NewRedirector(t)
			req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, r.URL+"/secrets/db", http.NoBody)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := New(opts).opts.ClientOptions.Transport.Do(req)
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
		})
	}
}
