package azure

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/ssinjector/ssi/internal/limits"
)

type bodyTransporter struct{ body string }

func (b bodyTransporter) Do(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(b.body)), ContentLength: -1, Request: req}, nil
}

// TestLimitedTransporter: every SDK response body is read through the
// provider's cap, whichever transport the options carry.
func TestLimitedTransporter(t *testing.T) {
	cases := map[string]struct {
		body string
		err  bool
	}{
		"under": {strings.Repeat("k", 1024), false},
		"over":  {strings.Repeat("K", 4096), true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := New(Options{MaxResponseBytes: 2048, ClientOptions: azcore.ClientOptions{Transport: bodyTransporter{tc.body}}})
			req, _ := http.NewRequest(http.MethodGet, "https://kv.vault.azure.net/secrets/x", nil)
			resp, err := p.opts.ClientOptions.Transport.Do(req)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				_ = resp.Body.Close()
			}
			if tc.err != errors.Is(err, limits.ErrTooLarge) || (err != nil && strings.Contains(err.Error(), "KKKK")) {
				t.Fatalf("err %v, want too large: %v", err, tc.err)
			}
		})
	}
}
