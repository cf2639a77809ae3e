package webhook

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/ssinjector/ssi/internal/provider/providertest"
)

// TestClientCA serves HTTPS with the client CA bundle of --client-ca and
// connects as a pod without a certificate, with a certificate of another
// CA, and as the API server; then rotates the bundle.
func TestClientCA(t *testing.T) {
	serverCA, apiCA, otherCA := providertest.NewCA(t), providertest.NewCA(t), providertest.NewCA(t)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "client-ca.crt")
	writeCA := func(ca *providertest.CA) {
		t.Helper()
		b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
		if err := os.WriteFile(bundle, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCA(apiCA)
	cas, err := NewClientCA(bundle, time.Hour, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "admission review")
	}))
	srv.TLS = serverCA.ServerTLS(t)
	cas.Configure(srv.TLS)
	srv.StartTLS()
	defer srv.Close()

	client := func(cert *tls.Certificate) *http.Client {
		cfg := serverCA.ClientTLS()
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	}
	leaf := func(ca *providertest.CA) *tls.Certificate {
		c := ca.KeyPair(t, providertest.Leaf{CommonName: "kube-apiserver", Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		return &c
	}
	apiCert, otherCert := leaf(apiCA), leaf(otherCA)
	check := func(step, who string, cert *tls.Certificate, served bool) {
		t.Helper()
		resp, err := client(cert).Get(srv.URL + "/mutate-pods")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if !served {
				t.Errorf("%s: %s was served: %q", step, who, b)
			}
			return
		}
		if served {
			t.Errorf("%s: %s was refused: %v", step, who, err)
		}
	}
	check("start", "a client without a certificate", nil, false)
	check("start", "a client with another CA's certificate", otherCert, false)
	check("start", "the API server", apiCert, true)

	writeCA(otherCA)
	cas.reload()
	check("rotated", "the old CA's client", apiCert, false)
	check("rotated", "the new CA's client", otherCert, true)

	if err := os.WriteFile(bundle, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	cas.reload()
	check("broken bundle", "the last good CA's client", otherCert, true)
	check("broken bundle", "a client without a certificate", nil, false)

	if _, err := NewClientCA(bundle, time.Hour, logr.Discard()); err == nil {
		t.Error("a bundle without a PEM certificate was accepted at start")
	}
}
