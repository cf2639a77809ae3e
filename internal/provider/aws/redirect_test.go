package aws

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/providertest"
)

// TestClientsRefuseCrossHostRedirects sends a request through every HTTP
// client the provider builds (the SDK's, with and without a test client,
// and the Pod Identity agent's) to a server that redirects to another
// host: none may reach it.
func TestClientsRefuseCrossHostRedirects(t *testing.T) {
	ctx := context.Background()
	static := credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")
	clients := map[string]func(t *testing.T) interface {
		Do(*http.Request) (*http.Response, error)
	}{
		"SDK default client": func(t *testing.T) interface {
			Do(*http.Request) (*http.Response, error)
		} {
			cfg, err := New(Options{}).loadConfig(ctx, "us-east-1", static)
			if err != nil {
				t.Fatal(err)
			}
			return cfg.HTTPClient
		},
		"Options.HTTPClient": func(t *testing.T) interface {
			Do(*http.Request) (*http.Response, error)
		} {
			cfg, err := New(Options{HTTPClient: &http.Client{}}).loadConfig(ctx, "us-east-1", aws.AnonymousCredentials{})
			if err != nil {
				t.Fatal(err)
			}
			return cfg.HTTPClient
		},
		"Pod Identity agent client": func(*testing.T) interface {
			Do(*http.Request) (*http.Response, error)
		} {
			return New(Options{}).podIdentityClient()
		},
	}
	for name, client := range clients {
		t.Run(name, func(t *testing.T) {
			home := t.TempDir()
			t.Setenv("AWS_CONFIG_FILE", filepath.Join(home, "config"))
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(home, "credentials"))
			t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
			// The SDK applies AWS_CA_BUNDLE only to its own client type; the
			// replacement must keep it working. A test's client has its own.
			bundle := filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(bundle, providertest.NewCA(t).PEM(), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("AWS_CA_BUNDLE", bundle)
			if name == "Options.HTTPClient" {
				t.Setenv("AWS_CA_BUNDLE", "")
			}
			r := providertest.NewRedirector(t)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL+"/", http.NoBody)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client(t).Do(req) //nolint:bodyclose // closed below when the redirect was (wrongly) followed
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
