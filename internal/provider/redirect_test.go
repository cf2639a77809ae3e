package provider

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckRedirect(t *testing.T) {
	req := func(u string) *http.Request {
		r, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for name, tc := range map[string]struct {
		from, to string
		hops     int
		refused  bool
	}{
		"same host and port":    {from: "https://vault:8200/v1/a", to: "https://vault:8200/v1/b"},
		"host case differs":     {from: "https://Vault:8200/v1/a", to: "https://vault:8200/v1/b"},
		"other host":            {from: "https://vault:8200/v1/a", to: "https://metadata.internal/computeMetadata", refused: true},
		"same host, other port": {from: "https://vault:8200/v1/a", to: "https://vault:9200/v1/a", refused: true},
		"downgrade to http":     {from: "https://vault:8200/v1/a", to: "http://vault:8200/v1/a", refused: true},
		"too many hops":         {from: "https://vault:8200/v1/a", to: "https://vault:8200/v1/a", hops: maxRedirects, refused: true},
	} {
		t.Run(name, func(t *testing.T) {
			via := []*http.Request{req(tc.from)}
			for len(via) < max(tc.hops, 1) {
				via = append(via, req(tc.from))
			}
			err := CheckRedirect(req(tc.to), via)
			if got := err != nil; got != tc.refused {
				t.Fatalf("CheckRedirect(%s -> %s) = %v, want refused %v", tc.from, tc.to, err, tc.refused)
			}
			if err != nil {
				if !errors.Is(err, ErrRedirectRefused) {
					t.Errorf("error %v does not wrap ErrRedirectRefused", err)
				}
				if strings.Contains(err.Error(), "/v1/") || strings.Contains(err.Error(), "computeMetadata") {
					t.Errorf("error %q names a path", err)
				}
			}
		})
	}
}

// TestSameHostClient follows a redirect to the same server and refuses one
// to another server, which must never see a request.
func TestSameHostClient(t *testing.T) {
	var hits int
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits++
		_, _ = io.WriteString(w, `{"internal":"data"}`)
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.URL+"/meta", http.StatusTemporaryRedirect)
		case "/here":
			http.Redirect(w, r, "/final", http.StatusTemporaryRedirect)
		default:
			_, _ = io.WriteString(w, "final")
		}
	}))
	defer srv.Close()
	c := SameHostClient(srv.Client())

	resp, err := c.Get(srv.URL + "/here")
	if err != nil {
		t.Fatalf("same-host redirect: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(b) != "final" {
		t.Errorf("same-host redirect answered %q, want final", b)
	}

	resp, err = c.Get(srv.URL + "/away")
	if err == nil {
		_ = resp.Body.Close()
		t.Fatalf("redirect to another host was followed (status %d)", resp.StatusCode)
	}
	if !errors.Is(err, ErrRedirectRefused) {
		t.Errorf("error %v does not wrap ErrRedirectRefused", err)
	}
	if hits != 0 {
		t.Errorf("the other host was reached %d times", hits)
	}
	if SameHostClient(nil).CheckRedirect == nil {
		t.Error("SameHostClient(nil) has no redirect policy")
	}
}
