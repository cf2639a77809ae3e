package cluster

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/ssinjector/ssi/internal/testing/testpki"
)

// pki is the cluster's certificate authority and the files it issued.
type pki struct {
	dir string
	ca  *testpki.CA
}

// CAFile is the CA certificate every component trusts.
func (p *pki) CAFile() string { return filepath.Join(p.dir, "ca.crt") }

func newPKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := testpki.NewCA("ssi-e2e-ca", 7*24*time.Hour)
	if err != nil {
		return nil, err
	}
	p := &pki{dir: dir, ca: ca}
	if err := os.WriteFile(p.CAFile(), ca.PEM(), 0o644); err != nil {
		return nil, err
	}
	return p, nil
}

// certSpec is one certificate to issue.
type certSpec struct {
	name   string // file base name
	cn     string
	orgs   []string
	dns    []string
	ips    []net.IP
	server bool
	client bool
}

// issue writes <name>.crt and <name>.key and returns their paths.
func (p *pki) issue(s certSpec) (certFile, keyFile string, err error) {
	var usage []x509.ExtKeyUsage
	if s.server {
		usage = append(usage, x509.ExtKeyUsageServerAuth)
	}
	if s.client {
		usage = append(usage, x509.ExtKeyUsageClientAuth)
	}
	certPEM, keyPEM, err := p.ca.Issue(testpki.Leaf{CommonName: s.cn, Organizations: s.orgs, DNSNames: s.dns, IPs: s.ips, Usage: usage})
	if err != nil {
		return "", "", fmt.Errorf("issue %s: %w", s.name, err)
	}
	certFile = filepath.Join(p.dir, s.name+".crt")
	keyFile = filepath.Join(p.dir, s.name+".key")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// serviceAccountKeys writes the RSA key pair that signs service-account
// tokens.
func (p *pki) serviceAccountKeys() (pub, priv string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	priv = filepath.Join(p.dir, "sa.key")
	pub = filepath.Join(p.dir, "sa.pub")
	if err := writePEM(priv, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key), 0o600); err != nil {
		return "", "", err
	}
	pb, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", err
	}
	if err := writePEM(pub, "PUBLIC KEY", pb, 0o644); err != nil {
		return "", "", err
	}
	return pub, priv, nil
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}
