package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// ClientCA is the CA bundle that verifies the client certificates of the
// webhook port (--client-ca): without it any pod that reaches the port
// can post a crafted AdmissionReview and read back another namespace's
// class parameters and service-account identity annotations. The file is
// re-read every interval, so a rotated CA (a Secret or ConfigMap volume)
// takes effect without restart; a file that no longer parses keeps the
// last good bundle.
type ClientCA struct {
	path     string
	interval time.Duration
	log      logr.Logger

	pool atomic.Pointer[x509.CertPool]
	// pem is the content of the bundle in use; read and written by Start
	// only, after NewClientCA.
	pem []byte
}

// NewClientCA reads the bundle at path; it must hold at least one PEM
// certificate.
func NewClientCA(path string, interval time.Duration, log logr.Logger) (*ClientCA, error) {
	c := &ClientCA{path: path, interval: interval, log: log}
	b, err := c.read()
	if err != nil {
		return nil, err
	}
	if err := c.use(b); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *ClientCA) read() ([]byte, error) {
	b, err := os.ReadFile(c.path)
	if err != nil {
		return nil, fmt.Errorf("client CA bundle (--client-ca): %w", err)
	}
	return b, nil
}

func (c *ClientCA) use(b []byte) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("client CA bundle %s (--client-ca) holds no PEM certificate", c.path)
	}
	c.pool.Store(pool)
	c.pem = b
	return nil
}

// Configure makes a server configuration require and verify a client
// certificate against the current bundle, chosen at each handshake.
func (c *ClientCA) Configure(cfg *tls.Config) {
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	base := cfg
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cc := base.Clone()
		cc.GetConfigForClient = nil
		cc.ClientCAs = c.pool.Load()
		return cc, nil
	}
}

// Start re-reads the bundle every interval until ctx ends (a
// manager.Runnable).
func (c *ClientCA) Start(ctx context.Context) error {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.reload()
		}
	}
}

// reload swaps in the file's bundle when it changed and parses.
func (c *ClientCA) reload() {
	b, err := c.read()
	if err != nil {
		c.log.Error(err, "keeping the previous client CA bundle")
		return
	}
	if bytes.Equal(b, c.pem) {
		return
	}
	if err := c.use(b); err != nil {
		c.log.Error(err, "keeping the previous client CA bundle")
		return
	}
	c.log.Info("client CA bundle reloaded", "file", c.path)
}

// NeedLeaderElection is false: every replica serves admission.
func (c *ClientCA) NeedLeaderElection() bool { return false }
