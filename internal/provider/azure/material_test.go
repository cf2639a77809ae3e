package azure

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// chain is a real three-level certificate chain with the leaf's key.
type chain struct {
	root, inter, leaf *x509.Certificate
	leafKey           crypto.Signer
}

func issue(t *testing.T, cn string, isCA bool, pub crypto.PublicKey, parent *x509.Certificate, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  isCA,
		BasicConstraintsValid: true,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		tmpl.DNSNames = []string{cn}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newChain(t *testing.T, cn string) *chain {
	t.Helper()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	interKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	root := issue(t, cn+" root", true, &rootKey.PublicKey, nil, rootKey)
	inter := issue(t, cn+" intermediate", true, &interKey.PublicKey, root, rootKey)
	leaf := issue(t, cn, false, &leafKey.PublicKey, inter, interKey)
	return &chain{root: root, inter: inter, leaf: leaf, leafKey: leafKey}
}

// pfx is the chain as Key Vault stores a certificate's secret: PKCS#12
// with an empty password, CA certificates in the order given.
func (c *chain) pfx(t *testing.T, cas ...*x509.Certificate) []byte {
	t.Helper()
	b, err := pkcs12.Modern.Encode(c.leafKey, c.leaf, cas, "")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (c *chain) pfxBase64(t *testing.T) string {
	// Root before intermediate: the provider must order the chain.
	return base64.StdEncoding.EncodeToString(c.pfx(t, c.root, c.inter))
}

// pemBundle is the chain as Key Vault stores a PEM certificate's secret.
func (c *chain) pemBundle(t *testing.T) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.leafKey)
	if err != nil {
		t.Fatal(err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	for _, x := range []*x509.Certificate{c.leaf, c.inter, c.root} {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: x.Raw})...)
	}
	return string(out)
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// rsaJWK is the public JSON Web Key Key Vault returns for an RSA key.
func rsaJWK(k *rsa.PublicKey, kty string) map[string]any {
	return map[string]any{"kty": kty, "key_ops": []string{"verify", "encrypt"}, "n": b64url(k.N.Bytes()), "e": b64url(big.NewInt(int64(k.E)).Bytes())}
}

// ecJWK is the public JSON Web Key Key Vault returns for an EC key.
func ecJWK(t *testing.T, k *ecdsa.PublicKey, kty, crv string) map[string]any {
	t.Helper()
	raw, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	size := (len(raw) - 1) / 2
	return map[string]any{"kty": kty, "crv": crv, "key_ops": []string{"verify"}, "x": b64url(raw[1 : 1+size]), "y": b64url(raw[1+size:])}
}

// pemBlocks decodes all PEM blocks of b, failing on trailing garbage.
func pemBlocks(t *testing.T, b []byte) []*pem.Block {
	t.Helper()
	var out []*pem.Block
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		out = append(out, blk)
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes after the last PEM block", len(b))
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
