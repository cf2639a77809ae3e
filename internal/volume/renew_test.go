package volume

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

// certPEM returns a self-signed leaf valid from nb to na.
func certPEM(t *testing.T, serial int64, nb, na time.Time, ca bool) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "web"}, NotBefore: nb, NotAfter: na, IsCA: ca, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestCertValidity(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	leaf := certPEM(t, 1, t0, t0.Add(time.Hour), false)
	ca := certPEM(t, 2, t0, t0.Add(1000*time.Hour), true)
	whole, _ := json.Marshal(map[string]any{"data": map[string]any{"certificate": string(leaf), "ca_chain": []string{string(ca)}}})
	cases := map[string]struct {
		in     []byte
		ok     bool
		expiry time.Time
	}{
		"leaf":               {in: leaf, ok: true, expiry: t0.Add(time.Hour)},
		"chain, CA first":    {in: append(append([]byte{}, ca...), leaf...), ok: true, expiry: t0.Add(time.Hour)},
		"CA alone":           {in: ca, ok: true, expiry: t0.Add(1000 * time.Hour)},
		"whole JSON answer":  {in: whole, ok: true, expiry: t0.Add(time.Hour)},
		"password":           {in: []byte("hunter2")},
		"broken PEM":         {in: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")},
		"JSON without certs": {in: []byte(`{"password":"x"}`)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v, ok := CertValidity(tc.in)
			if ok != tc.ok || (ok && !v.NotAfter.Equal(tc.expiry)) {
				t.Fatalf("CertValidity = %v, %v; want ok %v, NotAfter %v", v, ok, tc.ok, tc.expiry)
			}
		})
	}
}

// pkiProvider issues a new certificate per read of group "PUT pki/issue"
// (objects cert and key) and serves KV object "kv"; it honours Keep.
type pkiProvider struct {
	t      *testing.T
	now    *time.Time
	life   time.Duration
	issues int
	kvGets int
	fail   error
	serial int64
}

func (p *pkiProvider) Name() string      { return "vault" }
func (p *pkiProvider) HonoursKeep() bool { return true }

func (p *pkiProvider) Fetch(_ context.Context, req provider.Request) ([]provider.Object, error) {
	if p.fail != nil {
		return nil, p.fail
	}
	var out []provider.Object
	if req.Keep["cert"] && req.Keep["key"] {
		out = append(out, provider.Object{ID: "cert", Version: req.Current["cert"], Unchanged: true, Group: "pki"},
			provider.Object{ID: "key", Version: req.Current["key"], Unchanged: true, Group: "pki"})
	} else {
		if req.Keep["cert"] != req.Keep["key"] {
			p.t.Errorf("Keep splits a group: %v", req.Keep)
		}
		p.issues++
		p.serial++
		s := string(rune('0' + p.serial))
		out = append(out, provider.Object{ID: "cert", Version: "c" + s, Group: "pki", Files: []atomicdir.File{{Path: "cert", Data: certPEM(p.t, p.serial, *p.now, p.now.Add(p.life), false)}}},
			provider.Object{ID: "key", Version: "k" + s, Group: "pki", Files: []atomicdir.File{{Path: "key", Data: []byte("key " + s)}}})
	}
	if req.Keep["kv"] {
		p.t.Errorf("a KV object without certificate was kept")
	}
	p.kvGets++
	out = append(out, provider.Object{ID: "kv", Version: "1", Files: []atomicdir.File{{Path: "kv", Data: []byte("v")}}})
	return out, nil
}

func TestRefreshRenewsCertificatesByLifetime(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Truncate(time.Second)
	cases := map[string]struct {
		renewAt   float64       // the pod's (cert-renew-at)
		class     float64       // the class's (parameters.ssiCertRenewAt)
		renewedAt time.Duration // of a 60s certificate
	}{
		"default two thirds": {renewedAt: 40 * time.Second},
		"half":               {renewAt: 0.5, renewedAt: 30 * time.Second},
		"the class's half":   {class: 0.5, renewedAt: 30 * time.Second},
		"pod over the class": {renewAt: 0.75, class: 0.5, renewedAt: 45 * time.Second},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			start := now
			cur := start
			p := &pkiProvider{t: t, now: &cur, life: time.Minute}
			dir := t.TempDir()
			v := &Volume{Class: &spc.Class{Namespace: "ns", Name: "c", Provider: "vault", CertRenewAt: tc.class}, Dir: dir, RenewAt: tc.renewAt, Now: func() time.Time { return cur }}
			ctx := context.Background()
			var renewed []time.Duration
			for s := 0; s <= 70; s++ {
				cur = start.Add(time.Duration(s) * time.Second)
				before := p.issues
				if _, err := v.Refresh(ctx, p, identity.Identity{}); err != nil {
					t.Fatal(err)
				}
				if p.issues != before && s > 0 {
					renewed = append(renewed, time.Duration(s)*time.Second)
				}
			}
			// Issued at 0, renewed at the point, then again at the point of
			// the new certificate.
			at := tc.renewAt
			if at == 0 {
				at = tc.class
			}
			second := tc.renewedAt + time.Duration(float64(time.Minute)*orDefault(at))
			want := []time.Duration{tc.renewedAt}
			if second <= 70*time.Second {
				want = append(want, second)
			}
			if len(renewed) != len(want) || renewed[0] != want[0] || (len(want) > 1 && renewed[1] != want[1]) {
				t.Fatalf("renewed at %v, want %v", renewed, want)
			}
			if p.kvGets != 71 {
				t.Fatalf("KV read %d times in 71 rotations, want 71", p.kvGets)
			}
			rs := v.Renewals()
			if len(rs) != 2 || rs[0].Group != rs[1].Group || rs[0].Next.IsZero() {
				t.Fatalf("renewals = %+v, want cert and key with one schedule", rs)
			}
		})
	}
}

func orDefault(f float64) float64 {
	if f <= 0 || f >= 1 {
		return DefaultRenewAt
	}
	return f
}

func TestFailedRenewalKeepsOldFiles(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cur := start
	p := &pkiProvider{t: t, now: &cur, life: time.Minute}
	dir := t.TempDir()
	v := &Volume{Class: &spc.Class{Namespace: "ns", Name: "c", Provider: "vault"}, Dir: dir, Now: func() time.Time { return cur }}
	if _, err := v.Refresh(context.Background(), p, identity.Identity{}); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(filepath.Join(dir, "cert"))
	if err != nil {
		t.Fatal(err)
	}
	cur = start.Add(45 * time.Second)
	p.fail = &provider.Error{Reason: provider.ReasonUnavailable, Err: errors.New("vault is down")}
	if _, err := v.Refresh(context.Background(), p, identity.Identity{}); err == nil {
		t.Fatal("a failed renewal reported success")
	}
	got, _ := os.ReadFile(filepath.Join(dir, "cert"))
	if string(got) != string(old) {
		t.Fatal("a failed renewal changed the certificate file")
	}
	// Still due: the next attempt renews.
	p.fail = nil
	if _, err := v.Refresh(context.Background(), p, identity.Identity{}); err != nil {
		t.Fatal(err)
	}
	if p.issues != 2 {
		t.Fatalf("issues = %d after the retry, want 2", p.issues)
	}
	if nr := v.NextRenewal(cur); !nr.Equal(cur.Add(40 * time.Second)) {
		t.Fatalf("NextRenewal = %v, want %v", nr, cur.Add(40*time.Second))
	}
}
