// Package providertest holds what the cloud providers' tests share to run
// their SDKs against in-process fakes: a test certificate authority whose
// server certificates carry the real service host names, an HTTP transport
// and dialer that send every connection to a loopback listener, a verifier
// that checks service-account tokens with the test kube-apiserver's
// TokenReview (as a cloud's identity federation checks them), and a
// call counter.
//
// It is imported by tests only.
package providertest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ssinjector/ssi/internal/testing/testpki"
)

// CA is a throwaway certificate authority for test servers (see testpki).
type CA struct {
	*testpki.CA
	pool *x509.CertPool
}

// NewCA creates a certificate authority.
func NewCA(t testing.TB) *CA {
	t.Helper()
	ca, err := testpki.NewCA("providertest CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &CA{CA: ca, pool: pool}
}

// Pool trusts only this CA.
func (ca *CA) Pool() *x509.CertPool { return ca.pool }

// Leaf is what Issue certifies: exactly these names and addresses.
type Leaf = testpki.Leaf

// Issue signs a certificate for leaf and returns it and its new key, PEM
// encoded ("CERTIFICATE", "EC PRIVATE KEY").
func (ca *CA) Issue(t testing.TB, leaf Leaf) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := ca.CA.Issue(leaf)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

// KeyPair is Issue's certificate and key as a tls.Certificate.
func (ca *CA) KeyPair(t testing.TB, leaf Leaf) tls.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(ca.Issue(t, leaf))
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// ServerTLS returns a server configuration whose certificate is valid for
// the DNS names given (wildcards allowed) and for 127.0.0.1 and ::1.
func (ca *CA) ServerTLS(t testing.TB, names ...string) *tls.Config {
	t.Helper()
	return &tls.Config{
		Certificates: []tls.Certificate{ca.KeyPair(t, Leaf{CommonName: "providertest server", DNSNames: names, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}})},
		NextProtos:   []string{"h2", "http/1.1"},
		MinVersion:   tls.VersionTLS12,
	}
}

// ClientTLS trusts only this CA.
func (ca *CA) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12}
}

// Dialer connects every address to a loopback listener: routes maps
// "host:port" to a listener address, loopback addresses not in routes are
// dialled as they are, and every other address goes to fallback (when
// empty, such a dial fails). This lets SDKs use real service host names
// while all traffic stays on this machine.
type Dialer struct {
	Routes   map[string]string
	Fallback string
}

// DialContext implements the net.Dialer method of the same name.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	target, ok := d.Routes[addr]
	if !ok {
		target = d.Fallback
		if host, _, err := net.SplitHostPort(addr); err == nil && net.ParseIP(host) != nil && net.ParseIP(host).IsLoopback() {
			target = addr
		}
	}
	if target == "" {
		return nil, fmt.Errorf("providertest: no route for %s", addr)
	}
	if host, _, err := net.SplitHostPort(target); err != nil || !net.ParseIP(host).IsLoopback() {
		return nil, fmt.Errorf("providertest: refusing non-loopback target %q", target)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, target)
}

// HTTPClient is an HTTP client that trusts ca and dials through d.
func HTTPClient(ca *CA, d *Dialer) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.TLSClientConfig = ca.ClientTLS()
	if d != nil {
		tr.DialContext = d.DialContext
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Bytes counts what a fake sent back (response bodies, or serialized gRPC
// responses) and how often those contained Marker, the text every secret
// value of a test carries: so a test states what a rotation cycle
// downloads, values included or not. Safe for concurrent use; the zero
// value counts bytes only (SetMarker adds values).
type Bytes struct {
	mu     sync.Mutex
	marker string
	n      int64
	values int
}

// SetMarker sets the text that marks a secret value in a response.
func (b *Bytes) SetMarker(m string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.marker = m
}

// Record counts one piece of a response.
func (b *Bytes) Record(p []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n += int64(len(p))
	if b.marker != "" {
		b.values += bytes.Count(p, []byte(b.marker))
	}
}

// Writer returns w, counting what is written through it.
func (b *Bytes) Writer(w http.ResponseWriter) http.ResponseWriter {
	return &countingWriter{ResponseWriter: w, b: b}
}

// Snapshot returns the bytes and the values (occurrences of Marker)
// counted since the last Snapshot, and resets them.
func (b *Bytes) Snapshot() (n int64, values int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, values = b.n, b.values
	b.n, b.values = 0, 0
	return n, values
}

type countingWriter struct {
	http.ResponseWriter
	b *Bytes
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.b.Record(p)
	return w.ResponseWriter.Write(p)
}

// Counter counts calls by name; safe for concurrent use.
type Counter struct {
	mu sync.Mutex
	m  map[string]int
}

// Add counts one call.
func (c *Counter) Add(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[name]++
}

// Snapshot returns the counts and resets them.
func (c *Counter) Snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.m
	c.m = nil
	if out == nil {
		out = map[string]int{}
	}
	return out
}

// Total sums counts whose name has one of the prefixes (all when none).
func Total(m map[string]int, prefixes ...string) int {
	n := 0
	for k, v := range m {
		if len(prefixes) == 0 {
			n += v
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				n += v
				break
			}
		}
	}
	return n
}

// Format renders counts sorted by name, for logs.
func Format(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

// Reviewer verifies service-account tokens the way a cloud's identity
// federation does: the signature, expiry and audience through the API
// server's TokenReview, and the issuer against the API server's discovery
// document.
type Reviewer struct {
	Clientset kubernetes.Interface
}

// Subject is who a verified token belongs to.
type Subject struct {
	// Username is "system:serviceaccount:<ns>:<name>".
	Username string
	// Issuer is the token's iss claim, equal to the API server's issuer.
	Issuer string
	// Audiences are the token's audiences that were requested.
	Audiences []string
}

// Review checks token for audience and returns its subject.
func (r *Reviewer) Review(ctx context.Context, token, audience string) (*Subject, error) {
	tr, err := r.Clientset.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{audience}},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("TokenReview: %w", err)
	}
	if !tr.Status.Authenticated {
		return nil, fmt.Errorf("token not authenticated for audience %q: %s", audience, tr.Status.Error)
	}
	if !strings.HasPrefix(tr.Status.User.Username, "system:serviceaccount:") {
		return nil, fmt.Errorf("token is not a service-account token (user %q)", tr.Status.User.Username)
	}
	iss, err := claim(token, "iss")
	if err != nil {
		return nil, err
	}
	want, err := r.Issuer(ctx)
	if err != nil {
		return nil, err
	}
	if iss != want {
		return nil, fmt.Errorf("token issuer %q is not the API server's %q", iss, want)
	}
	return &Subject{Username: tr.Status.User.Username, Issuer: iss, Audiences: tr.Status.Audiences}, nil
}

// Issuer is the API server's service-account issuer, from its OIDC
// discovery document.
func (r *Reviewer) Issuer(ctx context.Context) (string, error) {
	b, err := r.Clientset.Discovery().RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil {
		return "", fmt.Errorf("read the API server's OIDC discovery document: %w", err)
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Issuer == "" {
		return "", errors.New("the API server's OIDC discovery document has no issuer")
	}
	return doc.Issuer, nil
}

// claim reads one string claim of a JWT without verifying it (TokenReview
// did that).
func claim(token, name string) (string, error) {
	m, err := Claims(token)
	if err != nil {
		return "", err
	}
	s, _ := m[name].(string)
	return s, nil
}

// Claims decodes the payload of a JWT without verifying it.
func Claims(token string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("token payload is not base64url")
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, errors.New("token payload is not JSON")
	}
	return m, nil
}

// HasAudience reports whether a JWT's aud claim (string or list) has aud.
func HasAudience(token, aud string) bool {
	m, err := Claims(token)
	if err != nil {
		return false
	}
	switch v := m["aud"].(type) {
	case string:
		return v == aud
	case []any:
		for _, a := range v {
			if a == aud {
				return true
			}
		}
	}
	return false
}

// KeepAll is a Request.Keep holding every object of current, as the volume
// passes it for certificates before their renewal point.
func KeepAll(current map[string]string) map[string]bool {
	keep := make(map[string]bool, len(current))
	for id := range current {
		keep[id] = true
	}
	return keep
}
