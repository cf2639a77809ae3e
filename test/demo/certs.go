package main

import (
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/ssinjector/ssi/internal/testing/testpki"
)

// servingCert writes tls.crt and tls.key for 127.0.0.1, signed by a new
// CA, into dir and returns the CA (PEM), which becomes the caBundle of the
// MutatingWebhookConfiguration. In a cluster the chart does this (or
// cert-manager).
func servingCert(dir string) ([]byte, error) {
	ca, err := testpki.NewCA("secrets-store-injector demo CA", 24*time.Hour)
	if err != nil {
		return nil, err
	}
	cert, key, err := ca.Issue(testpki.Leaf{CommonName: "ssi-webhook", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), cert, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), key, 0o600); err != nil {
		return nil, err
	}
	return ca.PEM(), nil
}
