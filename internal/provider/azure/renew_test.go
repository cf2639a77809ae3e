package azure

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/provider/providertest"
	"github.com/ssinjector/ssi/internal/testing/testpki"
	"github.com/ssinjector/ssi/internal/volume"
)

// TestCertificateKeptUntilRenewal drives a Key Vault secret holding a
// certificate and its key through the volume's refresh: before the
// certificate's renewal point (2/3 of its validity) a rotation reads
// nothing from Key Vault and keeps the files, even when a new version
// exists; after it, one read brings the new version.
func TestCertificateKeptUntilRenewal(t *testing.T) {
	r := newRig(t)
	// testpki certificates are valid from an hour ago for validFor: a
	// 3-hour validity whose renewal point is an hour from now.
	ca, err := testpki.NewCA("kv-ca", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func() []byte {
		cert, key, err := ca.Issue(testpki.Leaf{CommonName: "web"})
		if err != nil {
			t.Fatal(err)
		}
		return append(cert, key...)
	}
	first, second := issue(), issue()
	r.fake.put("secrets", "tls", kvVer{value: string(first)})
	c := r.class(map[string]string{"clientID": testClientID, "objects": objectsParam("objectName: tls\nobjectType: secret")})
	start := time.Now()
	now := start
	v := &volume.Volume{Class: c, Dir: t.TempDir(), Now: func() time.Time { return now }}
	id := r.request(c).Identity
	refresh := func(at time.Duration) (reads int, content []byte) {
		t.Helper()
		now = start.Add(at)
		r.fake.calls.Snapshot()
		if _, err := v.Refresh(context.Background(), r.p, id); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(v.Dir, "tls"))
		if err != nil {
			t.Fatal(err)
		}
		return providertest.Total(r.fake.calls.Snapshot(), "kv get ", "kv list "), b
	}
	if n, b := refresh(0); n != 1 || !bytes.Equal(b, first) {
		t.Fatalf("first fetch: %d reads, content matches: %v", n, bytes.Equal(b, first))
	}
	r.fake.put("secrets", "tls", kvVer{value: string(second)})
	for _, at := range []time.Duration{time.Second, 30 * time.Minute, 59 * time.Minute} {
		if n, b := refresh(at); n != 0 || !bytes.Equal(b, first) {
			t.Fatalf("rotation at +%s, before the renewal point: %d Key Vault reads (want 0), old certificate kept: %v", at, n, bytes.Equal(b, first))
		}
	}
	if n, b := refresh(61 * time.Minute); n != 1 || !bytes.Equal(b, second) {
		t.Fatalf("rotation after the renewal point: %d Key Vault reads (want 1), new certificate written: %v", n, bytes.Equal(b, second))
	}
	if rs := v.Renewals(); len(rs) != 1 || !rs[0].Expires.After(start.Add(119*time.Minute)) || rs[0].Next.IsZero() {
		t.Fatalf("renewals = %+v, want the certificate's renewal point and expiry", rs)
	}
}
