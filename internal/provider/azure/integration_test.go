package azure

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/providertest"
	"github.com/ssinjector/ssi/internal/spc"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// One control plane, whose service-account tokens the fakes verify,
// serves every integration test of the package.
var shared = testenv.NewShared(testenv.Options{})

func TestMain(m *testing.M) { os.Exit(shared.Run(m)) }

func controlPlane(t *testing.T) *testenv.Env { return shared.Env(t) }

const testClientID = "8c3b0a5e-3d2f-4f5e-9a51-6f1e2d3c4b5a"

// rig is one test's world: a namespace and service account with a real
// token, the fake Azure, and a provider whose transport trusts the fake.
type rig struct {
	t     *testing.T
	env   *testenv.Env
	ns    string
	token string
	fake  *fakeAzure
	ca    *providertest.CA
	p     *Provider
	env2  map[string]string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	env := controlPlane(t)
	ctx := context.Background()
	ns := env.Namespace(t, "azure", nil)
	env.ServiceAccount(t, ns, "app", nil)
	tok, err := env.Token(ctx, ns, "app", []string{TokenAudience}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	ca := providertest.NewCA(t)
	f := newFakeAzure(t, ca, &providertest.Reviewer{Clientset: env.Clientset})
	f.federate(testClientID, ns, "app")
	r := &rig{t: t, env: env, ns: ns, token: tok, fake: f, ca: ca, env2: map[string]string{}}
	r.p = r.provider(f.dialer())
	return r
}

func (r *rig) provider(d *providertest.Dialer) *Provider {
	return New(Options{
		ClientOptions: azcore.ClientOptions{
			Transport: providertest.HTTPClient(r.ca, d),
			// Errors are asserted on the first answer; retries are the SDK's.
			Retry: policy.RetryOptions{MaxRetries: -1},
		},
		Getenv: func(k string) string { return r.env2[k] },
	})
}

func (r *rig) class(params map[string]string) *spc.Class {
	r.t.Helper()
	if _, ok := params["keyvaultName"]; !ok {
		params["keyvaultName"] = "kv-test"
	}
	if _, ok := params["tenantId"]; !ok {
		params["tenantId"] = r.fake.tenant
	}
	c, err := spc.ParseSpec(r.ns, "azure-class", "azure", params)
	if err != nil {
		r.t.Fatalf("parse class: %v", err)
	}
	return c
}

func (r *rig) request(c *spc.Class) provider.Request {
	return provider.Request{
		Class: c,
		Identity: identity.Identity{
			Pod:    identity.Pod{Namespace: r.ns, Name: "web-0", UID: "uid-1", ServiceAccount: "app"},
			Tokens: identity.StaticTokens{TokenAudience: r.token},
		},
		Permission: 0o644,
	}
}

func objectsParam(items ...string) string {
	var b strings.Builder
	b.WriteString("array:\n")
	for _, it := range items {
		b.WriteString("  - |\n")
		for _, line := range strings.Split(strings.TrimSpace(it), "\n") {
			b.WriteString("    " + strings.TrimSpace(line) + "\n")
		}
	}
	return b.String()
}

func filesByPath(objs []provider.Object) map[string][]byte {
	m := map[string][]byte{}
	for _, o := range objs {
		for _, f := range o.Files {
			m[f.Path] = f.Data
		}
	}
	return m
}

func modesByPath(objs []provider.Object) map[string]fs.FileMode {
	m := map[string]fs.FileMode{}
	for _, o := range objs {
		for _, f := range o.Files {
			m[f.Path] = f.Mode
		}
	}
	return m
}

// TestWorkloadIdentityFetchAndRotate fetches every kind of object through
// the real SDK clients with a real service-account token as the client
// assertion, then rotates: unchanged objects cost no content, new versions
// are picked up.
func TestWorkloadIdentityFetchAndRotate(t *testing.T) {
	r := newRig(t)
	f := r.fake
	ctx := context.Background()

	f.put("secrets", "db-password", kvVer{value: "s3cr3t-db-1"})
	f.put("secrets", "b64-secret", kvVer{value: base64.StdEncoding.EncodeToString([]byte("s3cr3t-\x00binary"))})
	f.put("secrets", "hex-secret", kvVer{value: hex.EncodeToString([]byte("s3cr3t-hex"))})
	pinned := f.put("secrets", "pinned", kvVer{value: "s3cr3t-pinned-1"})
	f.put("secrets", "pinned", kvVer{value: "s3cr3t-pinned-2"})

	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	f.put("keys", "rsa-key", kvVer{jwk: rsaJWK(&rsaKey.PublicKey, "RSA-HSM")})
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	f.put("keys", "ec-key", kvVer{jwk: ecJWK(t, &ecKey.PublicKey, "EC", "P-384")})

	web := newChain(t, "web.example.test")
	f.put("certificates", "web-cert", kvVer{cer: web.leaf.Raw})
	f.put("secrets", "web-cert", kvVer{value: web.pfxBase64(t), contentType: contentTypePFX, certBacked: true})
	api := newChain(t, "api.example.test")
	f.put("secrets", "api-cert", kvVer{value: api.pemBundle(t), contentType: contentTypePEM, certBacked: true})

	var history []string
	for i := 1; i <= 5; i++ {
		history = append(history, f.put("secrets", "rotating", kvVer{value: fmt.Sprintf("s3cr3t-rot-%d", i)}))
	}
	f.disable("secrets", "rotating", history[3]) // the second newest
	// Enabled, newest first: 5, 3, 2, 1.
	var archive []string
	for i := 1; i <= 4; i++ {
		archive = append(archive, f.put("secrets", "archive", kvVer{value: fmt.Sprintf("s3cr3t-arc-%d", i)}))
	}

	c := r.class(map[string]string{
		"clientID": testClientID,
		"objects": objectsParam(
			"objectName: db-password\nobjectType: secret",
			"objectName: b64-secret\nobjectType: secret\nobjectEncoding: base64\nobjectAlias: bin/b64\nfilePermission: \"0600\"",
			"objectName: hex-secret\nobjectType: secret\nobjectEncoding: HEX",
			"objectName: pinned\nobjectType: secret\nobjectVersion: "+pinned,
			"objectName: rsa-key\nobjectType: key",
			"objectName: ec-key\nobjectType: key",
			"objectName: web-cert\nobjectType: cert",
			"objectName: web-cert\nobjectType: secret\nobjectAlias: web.pem",
			"objectName: web-cert\nobjectType: secret\nobjectFormat: pfx\nobjectAlias: web.pfx.b64",
			"objectName: web-cert\nobjectType: secret\nobjectFormat: PFX\nobjectEncoding: base64\nobjectAlias: web.pfx",
			"objectName: api-cert\nobjectType: secret\nobjectFormat: pem",
			"objectName: rotating\nobjectType: secret\nobjectVersionHistory: 3",
			"objectName: archive\nobjectType: secret\nobjectVersionHistory: 2\nobjectVersion: "+archive[2]+"\nobjectAlias: from-3",
		),
	})
	req := r.request(c)
	objs, err := r.p.Fetch(ctx, req)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	first := f.calls.Snapshot()
	t.Logf("first fetch calls: %s", providertest.Format(first))
	if first["entra token"] != 1 {
		t.Errorf("token requests = %d, want 1 (one credential for the three clients)", first["entra token"])
	}
	if first["kv challenge"] != 3 {
		t.Errorf("challenges = %d, want 3 (one per client: secrets, keys, certificates)", first["kv challenge"])
	}

	files := filesByPath(objs)
	want := map[string]string{
		"db-password": "s3cr3t-db-1",
		"bin/b64":     "s3cr3t-\x00binary",
		"hex-secret":  "s3cr3t-hex",
		"pinned":      "s3cr3t-pinned-1",
		"rotating/0":  "s3cr3t-rot-5",
		"rotating/1":  "s3cr3t-rot-3",
		"rotating/2":  "s3cr3t-rot-2",
		"from-3/0":    "s3cr3t-arc-3",
		"from-3/1":    "s3cr3t-arc-2",
	}
	for path, v := range want {
		if string(files[path]) != v {
			t.Errorf("%s = %q, want %q", path, files[path], v)
		}
	}
	if modes := modesByPath(objs); modes["bin/b64"] != 0o600 || modes["db-password"] != 0o644 {
		t.Errorf("modes: bin/b64 %o, db-password %o", modes["bin/b64"], modes["db-password"])
	}
	checkPublicKey(t, files["rsa-key"], &rsaKey.PublicKey)
	checkPublicKey(t, files["ec-key"], &ecKey.PublicKey)

	// cert: the certificate alone.
	if blocks := pemBlocks(t, files["web-cert"]); len(blocks) != 1 || blocks[0].Type != "CERTIFICATE" || !bytes.Equal(blocks[0].Bytes, web.leaf.Raw) {
		t.Errorf("web-cert is not the leaf certificate as one PEM block")
	}
	// secret-backed PFX as pem: PKCS#8 key, then leaf, intermediate, root.
	checkPEMChain(t, "web.pem", files["web.pem"], web)
	// secret-backed PEM: as stored.
	checkPEMChain(t, "api-cert", files["api-cert"], api)
	// pfx: the base64 text; with objectEncoding base64 the PKCS#12 bytes.
	pfxBin, err := base64.StdEncoding.DecodeString(string(files["web.pfx.b64"]))
	if err != nil {
		t.Fatalf("web.pfx.b64 is not base64: %v", err)
	}
	if !bytes.Equal(pfxBin, files["web.pfx"]) {
		t.Errorf("web.pfx is not the decoded web.pfx.b64")
	}
	if _, leaf, cas, err := pkcs12.DecodeChain(files["web.pfx"], ""); err != nil || !leaf.Equal(web.leaf) || len(cas) != 2 {
		t.Errorf("web.pfx does not decode to the chain: %v", err)
	}

	ids := provider.Versions(objs)
	if ids["secret/pinned"] != pinned || ids["secret/rotating/0"] != history[4] || ids["secret/rotating/1"] != history[2] || ids["secret/rotating/2"] != history[1] || ids["secret/archive/0"] != archive[2] {
		t.Errorf("versions: %v", ids)
	}
	if _, ok := ids["key/rsa-key"]; !ok {
		t.Errorf("no id key/rsa-key in %v", ids)
	}
	if _, ok := ids["cert/web-cert"]; !ok {
		t.Errorf("no id cert/web-cert in %v", ids)
	}

	// Rotation with nothing changed.
	req.Current = provider.Versions(objs)
	objs2, err := r.p.Fetch(ctx, req)
	if err != nil {
		t.Fatalf("second fetch: %v", err)
	}
	second := f.calls.Snapshot()
	t.Logf("unchanged rotation calls: %s", providertest.Format(second))
	for _, o := range objs2 {
		shared := strings.HasPrefix(o.ID, "secret/web-cert")
		if o.Unchanged == shared {
			t.Errorf("object %s: Unchanged=%v (objects sharing an id are always fetched in full)", o.ID, o.Unchanged)
		}
	}
	if second["entra token"] != 0 || second["kv challenge"] != 0 {
		t.Errorf("rotation re-authenticated: %v", second)
	}
	// Gets: latest objects only (secrets db, b64, hex, 3x web-cert, api; 2 keys; 1 cert); pinned and history: none.
	if second["kv get secrets"] != 7 || second["kv get keys"] != 2 || second["kv get certificates"] != 1 || second["kv list secrets"] != 2 {
		t.Errorf("rotation calls = %v", second)
	}
	merged, _, err := provider.Merge(objs, objs2)
	if err != nil {
		t.Fatal(err)
	}
	if got := filesByPath(merged); !bytes.Equal(got["web.pem"], files["web.pem"]) || string(got["rotating/1"]) != "s3cr3t-rot-3" {
		t.Errorf("merged files differ from the first fetch")
	}

	// New versions: the latest secret changes; the history shifts by one.
	f.put("secrets", "db-password", kvVer{value: "s3cr3t-db-2"})
	f.put("secrets", "rotating", kvVer{value: "s3cr3t-rot-6"})
	req.Current = provider.Versions(merged)
	objs3, err := r.p.Fetch(ctx, req)
	if err != nil {
		t.Fatalf("third fetch: %v", err)
	}
	third := f.calls.Snapshot()
	t.Logf("rotation after two new versions: %s", providertest.Format(third))
	merged3, _, err := provider.Merge(merged, objs3)
	if err != nil {
		t.Fatal(err)
	}
	got := filesByPath(merged3)
	for path, v := range map[string]string{"db-password": "s3cr3t-db-2", "rotating/0": "s3cr3t-rot-6", "rotating/1": "s3cr3t-rot-5", "rotating/2": "s3cr3t-rot-3", "from-3/0": "s3cr3t-arc-3", "from-3/1": "s3cr3t-arc-2", "pinned": "s3cr3t-pinned-1"} {
		if string(got[path]) != v {
			t.Errorf("after rotation %s = %q, want %q", path, got[path], v)
		}
	}
	// history: 3 versions now differ in position, each fetched once.
	if third["kv get secrets"] != 7+3 {
		t.Errorf("gets after rotation = %d, want 10", third["kv get secrets"])
	}
}

func checkPublicKey(t *testing.T, pemData []byte, want any) {
	t.Helper()
	blocks := pemBlocks(t, pemData)
	if len(blocks) != 1 || blocks[0].Type != "PUBLIC KEY" {
		t.Fatalf("want one PUBLIC KEY block, got %d blocks", len(blocks))
	}
	pub, err := x509.ParsePKIXPublicKey(blocks[0].Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(want) {
		t.Errorf("public key differs from the key's")
	}
}

func checkPEMChain(t *testing.T, name string, data []byte, c *chain) {
	t.Helper()
	blocks := pemBlocks(t, data)
	if len(blocks) != 4 {
		t.Fatalf("%s: %d PEM blocks, want key + 3 certificates", name, len(blocks))
	}
	if blocks[0].Type != "PRIVATE KEY" {
		t.Fatalf("%s: first block %s, want PRIVATE KEY", name, blocks[0].Type)
	}
	key, err := x509.ParsePKCS8PrivateKey(blocks[0].Bytes)
	if err != nil {
		t.Fatalf("%s: key is not PKCS#8: %v", name, err)
	}
	if !key.(*rsa.PrivateKey).Equal(c.leafKey) {
		t.Errorf("%s: wrong private key", name)
	}
	for i, want := range []*x509.Certificate{c.leaf, c.inter, c.root} {
		if blocks[i+1].Type != "CERTIFICATE" || !bytes.Equal(blocks[i+1].Bytes, want.Raw) {
			t.Errorf("%s: block %d is not %s", name, i+1, want.Subject.CommonName)
		}
	}
}

// TestClouds reads a secret from each cloud: the authority host, the Key
// Vault DNS suffix and the token scope all follow cloudName (and for
// AzureStackCloud the environment file).
func TestClouds(t *testing.T) {
	r := newRig(t)
	r.fake.put("secrets", "s", kvVer{value: "s3cr3t-cloud"})
	envFile := filepath.Join(t.TempDir(), "akscustom.json")
	if err := os.WriteFile(envFile, []byte(`{"name":"AzureStackCloud","activeDirectoryEndpoint":"https://login.stack.test/","keyVaultDNSSuffix":"vault.stack.test","resourceManagerEndpoint":"https://management.stack.test/"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		params    map[string]string
		wantScope string
	}{
		"default is public":                  {map[string]string{}, "https://vault.azure.net/.default"},
		"AzurePublicCloud":                   {map[string]string{"cloudName": "AzurePublicCloud"}, "https://vault.azure.net/.default"},
		"AzureUSGovernmentCloud":             {map[string]string{"cloudName": "AzureUSGovernmentCloud"}, "https://vault.usgovcloudapi.net/.default"},
		"AzureChinaCloud (case-insensitive)": {map[string]string{"cloudName": "azurechinacloud"}, "https://vault.azure.cn/.default"},
		"AzureStackCloud":                    {map[string]string{"cloudName": "AzureStackCloud", "cloudEnvFileName": envFile}, "https://vault.stack.test/.default"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			params := map[string]string{"clientID": testClientID, "objects": objectsParam("objectName: s\nobjectType: secret")}
			for k, v := range tc.params {
				params[k] = v
			}
			// A fresh provider, so each cloud authenticates.
			p := r.provider(r.fake.dialer())
			objs, err := p.Fetch(context.Background(), r.request(r.class(params)))
			if err != nil {
				t.Fatal(err)
			}
			if string(filesByPath(objs)["s"]) != "s3cr3t-cloud" {
				t.Fatalf("files: %v", filesByPath(objs))
			}
			r.fake.mu.Lock()
			scope := r.fake.lastScope
			r.fake.mu.Unlock()
			if !strings.Contains(scope, tc.wantScope) {
				t.Errorf("token scope %q, want %q", scope, tc.wantScope)
			}
		})
	}
}

// TestEndpointOverrides points the provider at the fake's loopback address
// with AZURE_AUTHORITY_HOST and SSI_AZURE_KEYVAULT_ENDPOINT, without any
// name mapping in the transport.
func TestEndpointOverrides(t *testing.T) {
	r := newRig(t)
	r.fake.put("secrets", "s", kvVer{value: "s3cr3t-override"})
	base := "https://" + r.fake.addr()
	r.env2[EnvAuthorityHost] = base + "/"
	r.env2[EnvKeyVaultEndpoint] = base
	p := r.provider(nil) // plain dialing: only the overrides reach the fake
	c := r.class(map[string]string{"clientID": testClientID, "objects": objectsParam("objectName: s\nobjectType: secret")})
	objs, err := p.Fetch(context.Background(), r.request(c))
	if err != nil {
		t.Fatal(err)
	}
	if string(filesByPath(objs)["s"]) != "s3cr3t-override" {
		t.Fatalf("files: %v", filesByPath(objs))
	}
	calls := r.fake.calls.Snapshot()
	if calls["entra token"] != 1 || calls["entra instance-discovery"] != 0 {
		t.Errorf("calls %v: want one token request and no instance discovery for a custom authority", calls)
	}
}

// TestClientIDFromServiceAccount takes the client ID from the identity
// derived from the service account annotation when the class has none.
func TestClientIDFromServiceAccount(t *testing.T) {
	r := newRig(t)
	r.fake.put("secrets", "s", kvVer{value: "s3cr3t-annotated"})
	c := r.class(map[string]string{"objects": objectsParam("objectName: s\nobjectType: secret")})
	req := r.request(c)
	req.Identity.Cloud.AzureClientID = testClientID
	objs, err := r.p.Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if string(filesByPath(objs)["s"]) != "s3cr3t-annotated" {
		t.Fatalf("files: %v", filesByPath(objs))
	}
}

// TestVMManagedIdentity authenticates with the node's user-assigned managed
// identity through the (fake) instance metadata service.
func TestVMManagedIdentity(t *testing.T) {
	r := newRig(t)
	const uami = "11111111-2222-3333-4444-555555555555"
	r.fake.mu.Lock()
	r.fake.managed[uami] = true
	r.fake.access["mi:"+uami] = true
	r.fake.mu.Unlock()
	r.fake.put("secrets", "s", kvVer{value: "s3cr3t-mi"})
	c := r.class(map[string]string{"useVMManagedIdentity": "true", "userAssignedIdentityID": uami, "objects": objectsParam("objectName: s\nobjectType: secret")})
	req := r.request(c)
	req.Identity.Tokens = nil // no pod token needed
	objs, err := r.p.Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if string(filesByPath(objs)["s"]) != "s3cr3t-mi" {
		t.Fatalf("files: %v", filesByPath(objs))
	}
	if calls := r.fake.calls.Snapshot(); calls["imds token"] != 1 || calls["entra token"] != 0 {
		t.Errorf("calls %v: want one IMDS token request", calls)
	}
	if Audiences(c) != nil {
		t.Errorf("a VM identity class needs no token audience, got %v", Audiences(c))
	}
}

// TestErrors checks every failure is a *provider.Error naming the class,
// the object and the cause, with the right Reason, and never a value.
func TestErrors(t *testing.T) {
	r := newRig(t)
	f := r.fake
	secretValues := []string{"s3cr3t-ok", "not base64 s3cr3t!", "zz-s3cr3t-not-hex", "s3cr3t-denied", "s3cr3t-throttled", "s3cr3t-odd-type"}
	f.put("secrets", "ok", kvVer{value: secretValues[0]})
	f.put("secrets", "bad-b64", kvVer{value: secretValues[1]})
	f.put("secrets", "bad-hex", kvVer{value: secretValues[2]})
	f.put("secrets", "denied", kvVer{value: secretValues[3]})
	f.put("secrets", "throttled", kvVer{value: secretValues[4]})
	f.put("secrets", "odd-type", kvVer{value: secretValues[5], contentType: "application/json", certBacked: true})
	f.put("keys", "oct-key", kvVer{jwk: map[string]any{"kty": "oct-HSM"}})
	f.denied["denied"] = true
	f.throttled["throttled"] = true
	f.put("secrets", "hist", kvVer{value: "s3cr3t-h1"})

	otherNS := r.env.Namespace(t, "azure-other", nil)
	r.env.ServiceAccount(t, otherNS, "app", nil)
	wrongSATok, err := r.env.Token(context.Background(), otherNS, "app", []string{TokenAudience}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	wrongAudTok, err := r.env.Token(context.Background(), r.ns, "app", []string{"api://something-else"}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}

	obj := func(body string) map[string]string {
		items := []string{"objectName: ok\nobjectType: secret"}
		if body != "" {
			items = append(items, body)
		}
		return map[string]string{"clientID": testClientID, "objects": objectsParam(items...)}
	}
	cases := map[string]struct {
		params  map[string]string
		tokens  identity.TokenSource
		object  string
		reason  provider.Reason
		message string
	}{
		"secret not found":                 {obj("objectName: missing\nobjectType: secret"), nil, "secret/missing", provider.ReasonNotFound, "HTTP 404 SecretNotFound"},
		"key not found":                    {obj("objectName: missing\nobjectType: key"), nil, "key/missing", provider.ReasonNotFound, "HTTP 404 KeyNotFound"},
		"cert not found":                   {obj("objectName: missing\nobjectType: cert"), nil, "cert/missing", provider.ReasonNotFound, "HTTP 404 CertificateNotFound"},
		"version not found":                {obj("objectName: ok\nobjectType: secret\nobjectVersion: 0123456789abcdef0123456789abcdef\nobjectAlias: pinned"), nil, "secret/ok", provider.ReasonNotFound, `version "0123456789abcdef0123456789abcdef": HTTP 404`},
		"history version missing":          {obj("objectName: hist\nobjectType: secret\nobjectVersionHistory: 2\nobjectVersion: feedfeedfeedfeedfeedfeedfeedfeed"), nil, "secret/hist", provider.ReasonNotFound, "is not an enabled version"},
		"access denied":                    {obj("objectName: denied\nobjectType: secret"), nil, "secret/denied", provider.ReasonAccessDenied, "HTTP 403 Forbidden"},
		"throttled":                        {obj("objectName: throttled\nobjectType: secret"), nil, "secret/throttled", provider.ReasonThrottled, "HTTP 429 Throttled"},
		"bad base64":                       {obj("objectName: bad-b64\nobjectType: secret\nobjectEncoding: base64"), nil, "secret/bad-b64", provider.ReasonInvalidContent, "not standard base64"},
		"bad hex":                          {obj("objectName: bad-hex\nobjectType: secret\nobjectEncoding: hex"), nil, "secret/bad-hex", provider.ReasonInvalidContent, "not hexadecimal"},
		"unknown content type":             {obj("objectName: odd-type\nobjectType: secret"), nil, "secret/odd-type", provider.ReasonInvalidContent, `unknown content type "application/json"`},
		"unsupported key type":             {obj("objectName: oct-key\nobjectType: key"), nil, "key/oct-key", provider.ReasonInvalidContent, `key type "oct-HSM" is not supported`},
		"token of another service account": {obj(""), identity.StaticTokens{TokenAudience: wrongSATok}, "secret/ok", provider.ReasonUnauthenticated, "AADSTS700213"},
		"token with the wrong audience":    {obj(""), identity.StaticTokens{TokenAudience: wrongAudTok}, "secret/ok", provider.ReasonUnauthenticated, "AADSTS700212"},
		"no token":                         {obj(""), identity.StaticTokens{}, "secret/ok", provider.ReasonUnauthenticated, "no service-account token"},
		"unknown client":                   {map[string]string{"clientID": "00000000-0000-0000-0000-000000000000", "objects": objectsParam("objectName: ok\nobjectType: secret")}, nil, "secret/ok", provider.ReasonUnauthenticated, "AADSTS700016"},
		"usePodIdentity":                   {map[string]string{"usePodIdentity": "true", "objects": objectsParam("objectName: ok\nobjectType: secret")}, nil, "", provider.ReasonInvalidConfig, "aad-pod-identity is retired and not supported; use Microsoft Entra Workload ID"},
		"useAzureTokenProxy":               {map[string]string{"useAzureTokenProxy": "true", "clientID": testClientID, "objects": objectsParam("objectName: ok\nobjectType: secret")}, nil, "", provider.ReasonInvalidConfig, "identity binding is not supported"},
		"no client ID":                     {map[string]string{"objects": objectsParam("objectName: ok\nobjectType: secret")}, nil, "", provider.ReasonInvalidConfig, "azure.workload.identity/client-id"},
		"missing environment file":         {map[string]string{"clientID": testClientID, "cloudName": "AzureStackCloud", "cloudEnvFileName": "/nonexistent/env.json", "objects": objectsParam("objectName: ok\nobjectType: secret")}, nil, "", provider.ReasonInvalidConfig, "parameters.cloudEnvFileName: open /nonexistent/env.json"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := r.class(tc.params)
			req := r.request(c)
			if tc.tokens != nil {
				req.Identity.Tokens = tc.tokens
			}
			p := r.provider(f.dialer()) // fresh: no cached token
			_, err := p.Fetch(context.Background(), req)
			if err == nil {
				t.Fatal("fetch succeeded")
			}
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *provider.Error: %v", err, err)
			}
			if pe.Class != r.ns+"/azure-class" || pe.Provider != "azure" || pe.Object != tc.object || pe.Reason != tc.reason {
				t.Errorf("error fields: class %q provider %q object %q reason %q; want object %q reason %q", pe.Class, pe.Provider, pe.Object, pe.Reason, tc.object, tc.reason)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.message) || !strings.Contains(msg, r.ns+"/azure-class") {
				t.Errorf("message %q does not name the class and %q", msg, tc.message)
			}
			for _, v := range append(secretValues, r.token, wrongSATok, wrongAudTok) {
				if strings.Contains(msg, v) {
					t.Errorf("message contains a secret value or token: %q", msg)
				}
			}
			t.Logf("%s", msg)
		})
	}
}

// TestRotationCallCounts measures Key Vault calls per rotation cycle for N
// unchanged objects: N secrets that follow the latest version cost N GETs,
// N pinned versions cost none, and no cycle re-authenticates.
func TestRotationCallCounts(t *testing.T) {
	r := newRig(t)
	const n = 20
	var latest, pinned []string
	for i := 0; i < n; i++ {
		r.fake.put("secrets", fmt.Sprintf("latest-%d", i), kvVer{value: fmt.Sprintf("s3cr3t-%d", i)})
		latest = append(latest, fmt.Sprintf("objectName: latest-%d\nobjectType: secret", i))
		v := r.fake.put("secrets", fmt.Sprintf("pinned-%d", i), kvVer{value: fmt.Sprintf("s3cr3t-p%d", i)})
		pinned = append(pinned, fmt.Sprintf("objectName: pinned-%d\nobjectType: secret\nobjectVersion: %s", i, v))
	}
	for i := 0; i < 30; i++ { // two listing pages
		r.fake.put("secrets", "history", kvVer{value: fmt.Sprintf("s3cr3t-h%d", i)})
	}
	cases := map[string]struct {
		objects  []string
		maxCalls int
	}{
		"N latest secrets":              {latest, n},
		"N pinned versions":             {pinned, 0},
		"history of 5 over 30 versions": {[]string{"objectName: history\nobjectType: secret\nobjectVersionHistory: 5"}, 2},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := r.class(map[string]string{"clientID": testClientID, "objects": objectsParam(tc.objects...)})
			req := r.request(c)
			objs, err := r.p.Fetch(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			r.fake.calls.Snapshot()
			const cycles = 3
			total := 0
			for i := 0; i < cycles; i++ {
				req.Current = provider.Versions(objs)
				cur, err := r.p.Fetch(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range cur {
					if !o.Unchanged {
						t.Fatalf("object %s changed", o.ID)
					}
				}
				calls := r.fake.calls.Snapshot()
				perCycle := providertest.Total(calls)
				total += perCycle
				if perCycle > tc.maxCalls {
					t.Errorf("cycle %d: %d calls (%s), want at most %d", i, perCycle, providertest.Format(calls), tc.maxCalls)
				}
			}
			fmt.Printf("azure rotation: %s: %d objects, %.1f Key Vault calls per cycle (target <= %d)\n", name, len(tc.objects), float64(total)/cycles, tc.maxCalls)
		})
	}
}
