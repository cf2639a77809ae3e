package agent

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/atomicdir"
)

// TestVaultCertificateRenewsByLifetime is the must-show of issue 16: with a
// 1 s rotation interval and a 60 s certificate from pki/issue (method PUT),
// the certificate is issued once, renewed once at about 40 s, pki/certs
// counts exactly the issues made, and a reader running throughout always
// finds a key and certificate that match.
func TestVaultCertificateRenewsByLifetime(t *testing.T) {
	f := newVaultFixture(t, false)
	f.vault.EnablePKI(t, "pki", "ssi test root")
	// not_before_duration 0: NotBefore is the issue time, so two thirds of
	// the 60 s validity is 40 s after the issue.
	f.vault.Write(t, "pki/roles/web", map[string]any{"allowed_domains": "example.com", "allow_subdomains": true, "ttl": "60s", "max_ttl": "60s", "not_before_duration": "1s"})
	f.vault.Policy(t, "app", `path "secret/data/app/*" { capabilities = ["read"] }
path "pki/issue/web" { capabilities = ["update"] }`)
	f.put(t, "db", randomValue("db-password"))
	base := countCerts(t, f)

	dir := filepath.Join(t.TempDir(), "secrets")
	cfg := f.config(t, dir, "app", agentconfig.ModeSidecar, time.Second, "db-password=db")
	cfg.Volumes[0].Class.Parameters["objects"] += `- objectName: tls.crt
  secretPath: pki/issue/web
  secretKey: certificate
  method: PUT
  secretArgs:
    common_name: www.example.com
    ttl: 60s
- objectName: tls.key
  secretPath: pki/issue/web
  secretKey: private_key
  method: PUT
  secretArgs:
    common_name: www.example.com
    ttl: 60s
`
	h := startAgent(t, cfg, Options{NewProviders: vaultProviders})
	h.waitReady(30 * time.Second)

	// The reader: resolve the published generation once, read both files
	// from it, and require a matching pair.
	var mismatches, reads atomic.Int64
	serials := map[string]time.Time{}
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			gen, err := filepath.EvalSymlinks(filepath.Join(dir, atomicdir.DataDir))
			if err != nil {
				continue
			}
			crt, err1 := os.ReadFile(filepath.Join(gen, "tls.crt"))
			key, err2 := os.ReadFile(filepath.Join(gen, "tls.key"))
			if err1 != nil || err2 != nil {
				continue // the generation was replaced between the reads
			}
			reads.Add(1)
			if _, err := tls.X509KeyPair(crt, key); err != nil {
				mismatches.Add(1)
				continue
			}
			if b, _ := pem.Decode(crt); b != nil {
				if c, err := x509.ParseCertificate(b.Bytes); err == nil {
					mu.Lock()
					if _, ok := serials[c.SerialNumber.String()]; !ok {
						serials[c.SerialNumber.String()] = time.Now()
					}
					mu.Unlock()
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	start := time.Now()
	time.Sleep(52 * time.Second)
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	issued := countCerts(t, f) - base
	t.Logf("%d reads, %d serials seen, %d certificates in pki/certs issued by the test", reads.Load(), len(serials), issued)
	if mismatches.Load() != 0 {
		t.Errorf("%d of %d reads found a key that does not match the certificate", mismatches.Load(), reads.Load())
	}
	if len(serials) != 2 {
		t.Fatalf("saw %d certificates in 52 s of 1 s rotations, want 2 (issued once, renewed once)", len(serials))
	}
	if issued != 2 {
		t.Errorf("pki/certs grew by %d, want 2 (the issues made)", issued)
	}
	var first, second time.Time
	for _, at := range serials {
		if first.IsZero() || at.Before(first) {
			first, second = at, first
		} else {
			second = at
		}
	}
	_ = start
	took := second.Sub(first)
	t.Logf("renewed %s after the first issue", took.Round(100*time.Millisecond))
	if took < 37*time.Second || took > 44*time.Second {
		t.Errorf("renewed %s after the first issue, want about 40 s", took)
	}
	if n := h.metric("ssi_agent_object_next_renewal_timestamp_seconds", map[string]string{"object": "tls.key"}); n < float64(time.Now().Unix()) {
		t.Errorf("next_renewal of tls.key = %v, not ahead", n)
	}
	if n := h.metric("ssi_agent_object_expiry_timestamp_seconds", map[string]string{"object": "tls.crt"}); n < float64(time.Now().Unix()) {
		t.Errorf("expiry of tls.crt = %v, not ahead", n)
	}
}

// countCerts is the number of certificates pki/certs lists.
func countCerts(t *testing.T, f *vaultFixture) int {
	t.Helper()
	s, err := f.vault.Client.Logical().List("pki/certs")
	if err != nil {
		t.Fatal(err)
	}
	if s == nil {
		return 0
	}
	keys, _ := s.Data["keys"].([]any)
	return len(keys)
}
