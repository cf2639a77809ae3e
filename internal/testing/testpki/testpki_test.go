package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

func TestIssuedCertificatesVerify(t *testing.T) {
	ca, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca.PEM()) {
		t.Fatal("PEM is not a certificate")
	}
	for name, tc := range map[string]struct {
		leaf  Leaf
		usage x509.ExtKeyUsage
		dns   string
	}{
		"server (default usage)": {Leaf{CommonName: "srv", DNSNames: []string{"srv.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, x509.ExtKeyUsageServerAuth, "srv.test"},
		"client with orgs":       {Leaf{CommonName: "admin", Organizations: []string{"system:masters"}, Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, x509.ExtKeyUsageClientAuth, ""},
	} {
		t.Run(name, func(t *testing.T) {
			certPEM, keyPEM, err := ca.Issue(tc.leaf)
			if err != nil {
				t.Fatal(err)
			}
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			leaf := pair.Leaf
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: tc.dns, KeyUsages: []x509.ExtKeyUsage{tc.usage}}); err != nil {
				t.Errorf("verify: %v", err)
			}
			if leaf.Subject.CommonName != tc.leaf.CommonName || len(leaf.Subject.Organization) != len(tc.leaf.Organizations) {
				t.Errorf("subject %v", leaf.Subject)
			}
			if leaf.NotAfter.After(time.Now().Add(time.Hour)) || leaf.NotAfter.Before(time.Now().Add(50*time.Minute)) {
				t.Errorf("valid until %s, want the CA's hour", leaf.NotAfter)
			}
		})
	}
	a, _, _ := ca.Issue(Leaf{CommonName: "a"})
	b, _, _ := ca.Issue(Leaf{CommonName: "a"})
	if string(a) == string(b) {
		t.Error("two issues gave the same certificate")
	}
}
