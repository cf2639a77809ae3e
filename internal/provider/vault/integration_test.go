package vault

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// fixture is a real kube-apiserver and a real Vault whose Kubernetes auth
// validates the test service account's TokenRequest tokens by TokenReview.
type fixture struct {
	env    *testenv.Env
	vault  *testenv.Vault
	audit  *testenv.VaultAudit
	ns, sa string
	tokens identity.TokenSource
}

const kvPolicy = `
path "secret/data/app" { capabilities = ["read"] }
path "secret/data/changing" { capabilities = ["read"] }
path "kv1/*" { capabilities = ["read"] }
path "pki/issue/example-dot-com" { capabilities = ["create", "update"] }
path "database/creds/app" { capabilities = ["read"] }
`

func newFixture(t *testing.T, env *testenv.Env, v *testenv.Vault) *fixture {
	t.Helper()
	f := &fixture{env: env, vault: v, sa: "app"}
	f.ns = env.Namespace(t, "vault-provider", nil)
	env.ServiceAccount(t, f.ns, f.sa, nil)
	f.tokens = env.Tokens(f.ns, f.sa, 0)
	f.audit = v.EnableFileAudit(t)
	v.EnableKubernetesAuth(t, env, "")
	v.Policy(t, "app", kvPolicy)
	bound := testenv.KubernetesRole{ServiceAccounts: []string{f.sa}, Namespaces: []string{f.ns}, Policies: []string{"app"}}
	r := bound
	r.Name = "app"
	v.KubernetesRole(t, "", r)
	r = bound
	r.Name, r.Audience = "aud", "vault"
	v.KubernetesRole(t, "", r)
	r = bound
	r.Name, r.TokenTTL, r.TokenMaxTTL = "short", 9*time.Second, time.Hour
	v.KubernetesRole(t, "", r)
	v.KubernetesRole(t, "", testenv.KubernetesRole{Name: "other-sa", ServiceAccounts: []string{"someone-else"}, Namespaces: []string{f.ns}, Policies: []string{"app"}})
	return f
}

// class parses a vault class with the fixture's address and the given
// parameters (objects as YAML).
func (f *fixture) class(t *testing.T, name string, params map[string]string) *spc.Class {
	t.Helper()
	p := map[string]string{"vaultAddress": f.vault.Addr, "roleName": "app"}
	for k, v := range params {
		p[k] = v
	}
	c, err := spc.ParseSpec(f.ns, name, "vault", p)
	if err != nil {
		t.Fatalf("parse class: %v", err)
	}
	return c
}

func (f *fixture) request(c *spc.Class, current map[string]string) provider.Request {
	return provider.Request{
		Class:      c,
		Identity:   identity.Identity{Pod: identity.Pod{Namespace: f.ns, Name: "web-0", UID: "uid-1", ServiceAccount: f.sa}, Tokens: f.tokens},
		Current:    current,
		Permission: 0o644,
	}
}

// fetch runs a fetch and records its error for the leak check.
func fetch(t *testing.T, p *Provider, logs *logCapture, req provider.Request) ([]provider.Object, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objs, err := p.Fetch(ctx, req)
	logs.record(err)
	return objs, err
}

func mustFetch(t *testing.T, p *Provider, logs *logCapture, req provider.Request) map[string]provider.Object {
	t.Helper()
	objs, err := fetch(t, p, logs, req)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	out := map[string]provider.Object{}
	for _, o := range objs {
		out[o.ID] = o
	}
	if len(out) != len(req.Class.Vault.Objects) {
		t.Fatalf("fetch returned %d objects, class has %d", len(out), len(req.Class.Vault.Objects))
	}
	return out
}

func content(t *testing.T, o provider.Object) string {
	t.Helper()
	if o.Unchanged || len(o.Files) != 1 {
		t.Fatalf("object %s: unchanged=%v files=%d, want one file", o.ID, o.Unchanged, len(o.Files))
	}
	return string(o.Files[0].Data)
}

func randomValue(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// TestIntegration runs the provider against a real Vault and a real
// kube-apiserver. Subtests share both; each uses its own Provider.
func TestIntegration(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	v := testenv.StartVault(t, testenv.VaultOptions{})
	f := newFixture(t, env, v)

	kv2Password := randomValue("kv2-password")
	kv2Number := "12345"
	v.PutKV2(t, "secret", "app", map[string]any{"username": "app-user", "password": kv2Password, "port": json.Number(kv2Number), "b64": "aGVsbG8gd29ybGQ=", "nested": map[string]any{"a": "b"}})
	v.EnableKV1(t, "kv1")
	kv1Password := randomValue("kv1-password")
	v.PutKV1(t, "kv1", "legacy", map[string]any{"password": kv1Password})
	secrets := []string{kv2Password, kv1Password}

	start := func(t *testing.T) (*Provider, *logCapture) {
		log, logs := newLogCapture(t, secrets...)
		p := New(Options{Logger: log})
		t.Cleanup(func() { _ = p.Close() })
		return p, logs
	}

	t.Run("KVv2", func(t *testing.T) {
		p, logs := start(t)
		c := f.class(t, "kv2", map[string]string{"objects": `
- objectName: password
  secretPath: secret/data/app
  secretKey: password
  filePermission: 0600
- objectName: port
  secretPath: /v1/secret/data/app
  secretKey: port
- objectName: nested/value.json
  secretPath: v1/secret/data/app
  secretKey: nested
- objectName: decoded
  secretPath: secret/data/app
  secretKey: b64
  encoding: base64
`})
		reads := f.audit.Count(t, "secret/data/app")
		objs := mustFetch(t, p, logs, f.request(c, nil))
		if got := content(t, objs["password"]); got != kv2Password {
			t.Errorf("password file does not hold the KV v2 value (len %d)", len(got))
		}
		if m := objs["password"].Files[0].Mode; m != 0o600 {
			t.Errorf("password mode = %v, want 0600", m)
		}
		if m := objs["port"].Files[0].Mode; m != 0o644 {
			t.Errorf("port mode = %v, want the request's 0644", m)
		}
		if got := content(t, objs["port"]); got != kv2Number {
			t.Errorf("port = %q, want the number's text %q", got, kv2Number)
		}
		if got := content(t, objs["nested/value.json"]); got != `{"a":"b"}` {
			t.Errorf("nested = %q", got)
		}
		if got := content(t, objs["decoded"]); got != "hello world" {
			t.Errorf("decoded = %q", got)
		}
		for id, o := range objs {
			if o.Version == "" || strings.Contains(o.Version, kv2Password) {
				t.Errorf("object %s version %q", id, o.Version)
			}
		}
		// One read serves every object on the same path and method.
		if n := f.audit.Count(t, "secret/data/app") - reads; n != 1 {
			t.Errorf("Vault saw %d reads of secret/data/app, want 1 shared by 4 objects", n)
		}
	})

	t.Run("KVv1", func(t *testing.T) {
		p, logs := start(t)
		c := f.class(t, "kv1", map[string]string{"objects": `
- objectName: legacy-password
  secretPath: kv1/legacy
  secretKey: password
- objectName: legacy.json
  secretPath: kv1/legacy
`})
		objs := mustFetch(t, p, logs, f.request(c, nil))
		if got := content(t, objs["legacy-password"]); got != kv1Password {
			t.Errorf("legacy-password does not hold the KV v1 value")
		}
		var whole struct {
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal([]byte(content(t, objs["legacy.json"])), &whole); err != nil {
			t.Fatal(err)
		}
		if whole.Data["password"] != kv1Password {
			t.Errorf("KV v1 whole response: data has keys %v, want password at the top", keys(whole.Data))
		}
	})

	t.Run("WholeResponseWhenSecretKeyEmpty", func(t *testing.T) {
		p, logs := start(t)
		c := f.class(t, "whole", map[string]string{"objects": `
- objectName: app.json
  secretPath: secret/data/app
`})
		objs := mustFetch(t, p, logs, f.request(c, nil))
		raw := content(t, objs["app.json"])
		// Field order as upstream writes api.Secret.
		for i, k := range []string{`{"request_id":"`, `","lease_id":""`, `,"lease_duration":0`, `,"renewable":false`, `,"data":{"data":{`, `,"warnings":null`} {
			if !strings.Contains(raw, k) {
				t.Errorf("whole response lacks %s (field %d): %s", k, i, "(content not shown)")
			}
		}
		var whole struct {
			Data struct {
				Data     map[string]any `json:"data"`
				Metadata map[string]any `json:"metadata"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(raw), &whole); err != nil {
			t.Fatal(err)
		}
		if whole.Data.Data["password"] != kv2Password || whole.Data.Metadata["version"] == nil {
			t.Errorf("whole KV v2 response: data.data keys %v, metadata %v", keys(whole.Data.Data), whole.Data.Metadata)
		}
		// A second read differs only in request_id: the version stands.
		again := mustFetch(t, p, logs, f.request(c, provider.Versions([]provider.Object{objs["app.json"]})))
		if !again["app.json"].Unchanged || again["app.json"].Version != objs["app.json"].Version {
			t.Errorf("re-read of an unchanged secret: unchanged=%v, version %q -> %q", again["app.json"].Unchanged, objs["app.json"].Version, again["app.json"].Version)
		}
	})

	t.Run("MissingSecretKey", func(t *testing.T) {
		p, logs := start(t)
		c := f.class(t, "missing-key", map[string]string{"objects": `
- objectName: password
  secretPath: secret/data/app
  secretKey: password
- objectName: api-key
  secretPath: secret/data/app
  secretKey: api_key
`})
		_, err := fetch(t, p, logs, f.request(c, nil))
		providerError(t, err, c.Key(), "api-key", provider.ReasonNotFound, `key "api_key" does not exist at secret path "secret/data/app"`)
	})

	t.Run("MissingSecretPath", func(t *testing.T) {
		p, logs := start(t)
		v.Policy(t, "app-missing", `path "secret/data/*" { capabilities = ["read"] }`)
		v.KubernetesRole(t, "", testenv.KubernetesRole{Name: "wide", ServiceAccounts: []string{f.sa}, Namespaces: []string{f.ns}, Policies: []string{"app-missing"}})
		c := f.class(t, "missing-path", map[string]string{"roleName": "wide", "objects": `
- objectName: nothing
  secretPath: secret/data/does-not-exist
  secretKey: x
`})
		_, err := fetch(t, p, logs, f.request(c, nil))
		providerError(t, err, c.Key(), "nothing", provider.ReasonNotFound, "/v1/secret/data/does-not-exist", "404")
	})

	t.Run("ChangedSecretChangesVersion", func(t *testing.T) {
		p, logs := start(t)
		first := randomValue("first")
		second := randomValue("second")
		secrets = append(secrets, first, second)
		v.PutKV2(t, "secret", "changing", map[string]any{"value": first})
		c := f.class(t, "changing", map[string]string{"objects": `
- objectName: value
  secretPath: secret/data/changing
  secretKey: value
- objectName: pinned
  secretPath: secret/data/changing?version=1
  secretKey: value
`})
		objs := mustFetch(t, p, logs, f.request(c, nil))
		if content(t, objs["value"]) != first {
			t.Fatal("first read does not hold the first value")
		}
		cur := provider.Versions([]provider.Object{objs["value"], objs["pinned"]})
		same := mustFetch(t, p, logs, f.request(c, cur))
		if !same["value"].Unchanged || same["value"].Version != cur["value"] {
			t.Errorf("unchanged secret: unchanged=%v version %q, want %q", same["value"].Unchanged, same["value"].Version, cur["value"])
		}
		v.PutKV2(t, "secret", "changing", map[string]any{"value": second})
		changed := mustFetch(t, p, logs, f.request(c, cur))
		if changed["value"].Version == cur["value"] {
			t.Error("version did not change with the secret")
		}
		if got := content(t, changed["value"]); got != second {
			t.Error("second read does not hold the new value")
		}
		if !changed["pinned"].Unchanged || changed["pinned"].Version != cur["pinned"] {
			t.Errorf("object pinned to ?version=1 changed: unchanged=%v", changed["pinned"].Unchanged)
		}
	})

	t.Run("PKIIssueWithSecretArgs", func(t *testing.T) {
		p, logs := start(t)
		ca := v.EnablePKI(t, "pki", "SSI Test Root", testenv.PKIRole{Name: "example-dot-com", AllowedDomains: []string{"example.com"}, AllowSubdomains: true, MaxTTL: time.Hour})
		c := f.class(t, "pki", map[string]string{"objects": `
- objectName: certs.json
  secretPath: pki/issue/example-dot-com
  method: POST
  secretArgs:
    common_name: test.example.com
    ttl: 10m
- objectName: tls.crt
  secretPath: pki/issue/example-dot-com
  method: POST
  secretKey: certificate
  secretArgs:
    common_name: test.example.com
    ttl: 10m
- objectName: tls.key
  secretPath: pki/issue/example-dot-com
  method: POST
  secretKey: private_key
  filePermission: 0400
  secretArgs:
    common_name: test.example.com
    ttl: 10m
`})
		objs := mustFetch(t, p, logs, f.request(c, nil))
		certPEM, keyPEM := content(t, objs["tls.crt"]), content(t, objs["tls.key"])
		secrets = append(secrets, keyPEM)
		block, _ := pem.Decode([]byte(certPEM))
		if block == nil {
			t.Fatal("tls.crt is not PEM")
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("tls.crt: %v", err)
		}
		if cert.Subject.CommonName != "test.example.com" {
			t.Errorf("certificate CN = %q, want test.example.com", cert.Subject.CommonName)
		}
		if _, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM)); err != nil {
			t.Errorf("tls.key does not match tls.crt: %v", err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM([]byte(ca))
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "test.example.com"}); err != nil {
			t.Errorf("certificate does not chain to the PKI root: %v", err)
		}
		if m := objs["tls.key"].Files[0].Mode; m != 0o400 {
			t.Errorf("tls.key mode %v, want 0400", m)
		}
		var whole struct {
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal([]byte(content(t, objs["certs.json"])), &whole); err != nil {
			t.Fatal(err)
		}
		if whole.Data["certificate"] != certPEM {
			t.Error("certs.json and tls.crt come from different responses")
		}
		if n := f.audit.Count(t, "pki/issue/example-dot-com"); n != 1 {
			t.Errorf("Vault issued %d certificates for one fetch, want 1 shared", n)
		}
	})

	t.Run("WrongRole", func(t *testing.T) {
		p, logs := start(t)
		for name, tc := range map[string]struct {
			role string
			want []string
		}{
			"unknown role":     {role: "no-such-role", want: []string{`role "no-such-role"`, "auth/kubernetes/login", "invalid role name"}},
			"unbound identity": {role: "other-sa", want: []string{`role "other-sa"`, "service account name not authorized"}},
		} {
			t.Run(name, func(t *testing.T) {
				c := f.class(t, "wrong-role", map[string]string{"roleName": tc.role, "objects": "- {objectName: password, secretPath: secret/data/app, secretKey: password}"})
				_, err := fetch(t, p, logs, f.request(c, nil))
				providerError(t, err, c.Key(), "password", provider.ReasonUnauthenticated, tc.want...)
			})
		}
	})

	t.Run("PolicyDenies", func(t *testing.T) {
		p, logs := start(t)
		c := f.class(t, "denied", map[string]string{"objects": "- {objectName: other, secretPath: secret/data/other, secretKey: x}"})
		before := f.audit.Count(t, "auth/kubernetes/login")
		_, err := fetch(t, p, logs, f.request(c, nil))
		providerError(t, err, c.Key(), "other", provider.ReasonAccessDenied, "403", "permission denied", "GET /v1/secret/data/other")
		// Upstream logs in again once on 403 before giving up.
		if n := f.audit.Count(t, "auth/kubernetes/login") - before; n != 2 {
			t.Errorf("%d logins, want 2 (first, and once again after the 403)", n)
		}
	})

	t.Run("Audience", func(t *testing.T) {
		p, logs := start(t)
		obj := "- {objectName: password, secretPath: secret/data/app, secretKey: password}"
		ok := f.class(t, "aud-ok", map[string]string{"roleName": "aud", "audience": "vault", "objects": obj})
		if got := content(t, mustFetch(t, p, logs, f.request(ok, nil))["password"]); got != kv2Password {
			t.Error("fetch with the role's audience did not return the value")
		}
		for name, aud := range map[string]string{"other audience": "other", "default audience": ""} {
			t.Run(name, func(t *testing.T) {
				c := f.class(t, "aud-bad", map[string]string{"roleName": "aud", "audience": aud, "objects": obj})
				_, err := fetch(t, p, logs, f.request(c, nil))
				providerError(t, err, c.Key(), "password", provider.ReasonUnauthenticated, `role "aud"`, "aud")
			})
		}
	})

	t.Run("TokenRenewal", func(t *testing.T) {
		p, logs := start(t)
		c := f.class(t, "short", map[string]string{"roleName": "short", "objects": "- {objectName: password, secretPath: secret/data/app, secretKey: password}"})
		logins, renewals := f.audit.Count(t, "auth/kubernetes/login"), f.audit.Count(t, "auth/token/renew-self")
		loggedIn := time.Now()
		mustFetch(t, p, logs, f.request(c, nil))
		// The role's tokens live 9 s; the provider renews them in the
		// background, two thirds into each grant.
		waitUntil(t, 60*time.Second, "a token renewal, and the first grant to pass", func() bool {
			return f.audit.Count(t, "auth/token/renew-self")-renewals >= 1 && time.Since(loggedIn) > 10*time.Second
		})
		// Past the original TTL the kept token still works: no new login.
		mustFetch(t, p, logs, f.request(c, nil))
		if n := f.audit.Count(t, "auth/kubernetes/login") - logins; n != 1 {
			t.Errorf("%d logins, want 1 (the token was renewed, not replaced)", n)
		}
	})

	t.Run("ReloginAfterRevocation", func(t *testing.T) {
		p, logs := start(t)
		c := f.class(t, "revoked", map[string]string{"objects": "- {objectName: password, secretPath: secret/data/app, secretKey: password}"})
		logins := f.audit.Count(t, "auth/kubernetes/login")
		mustFetch(t, p, logs, f.request(c, nil))
		// Revoke every token the Kubernetes auth mount issued.
		v.Write(t, "sys/leases/revoke-prefix/auth/kubernetes/login", nil)
		if got := content(t, mustFetch(t, p, logs, f.request(c, nil))["password"]); got != kv2Password {
			t.Error("fetch after revocation did not return the value")
		}
		if n := f.audit.Count(t, "auth/kubernetes/login") - logins; n != 2 {
			t.Errorf("%d logins, want 2 (once more after the revocation)", n)
		}
	})

	t.Run("DynamicDatabaseCredentials", func(t *testing.T) {
		testDynamicDatabase(t, f, start)
	})

	t.Run("VaultStoppedAndRestarted", func(t *testing.T) {
		testStopRestart(t, env, start)
	})
}

func testDynamicDatabase(t *testing.T, f *fixture, start func(*testing.T) (*Provider, *logCapture)) {
	pg := testenv.StartPostgres(t)
	// Leases of 8 s renewed every 5.3 s up to 20 s: two full renewals, a
	// capped one, then the maximum TTL ends them.
	f.vault.EnablePostgresDatabase(t, "database", pg, testenv.DatabaseRole{Name: "app", DefaultTTL: 8 * time.Second, MaxTTL: 20 * time.Second})
	p, logs := start(t)
	c := f.class(t, "db", map[string]string{"objects": `
- objectName: dbUsername
  secretPath: database/creds/app
  secretKey: username
- objectName: dbPassword
  secretPath: database/creds/app
  secretKey: password
- objectName: creds.json
  secretPath: database/creds/app
`})
	objs := mustFetch(t, p, logs, f.request(c, nil))
	user1, pass1 := content(t, objs["dbUsername"]), content(t, objs["dbPassword"])
	defer logs.assertClean(t, pass1)
	var whole struct {
		LeaseID   string `json:"lease_id"`
		Renewable bool   `json:"renewable"`
		Data      map[string]any
	}
	if err := json.Unmarshal([]byte(content(t, objs["creds.json"])), &whole); err != nil {
		t.Fatal(err)
	}
	if whole.LeaseID == "" || !whole.Renewable || whole.Data["username"] != user1 {
		t.Fatalf("database response: lease %q renewable %v, username shared %v", whole.LeaseID, whole.Renewable, whole.Data["username"] == user1)
	}
	if n := f.audit.Count(t, "database/creds/app"); n != 1 {
		t.Fatalf("%d credential reads for one fetch, want 1 shared by three objects", n)
	}
	current := provider.Versions([]provider.Object{objs["dbUsername"], objs["dbPassword"], objs["creds.json"]})

	// While the lease is renewable, fetches answer Unchanged and mint
	// nothing; the provider renews the lease in the background.
	waitUntil(t, 30*time.Second, "a lease renewal", func() bool {
		again := mustFetch(t, p, logs, f.request(c, current))
		for id, o := range again {
			if !o.Unchanged || o.Version != current[id] {
				t.Fatalf("object %s changed while its lease was renewable (unchanged=%v)", id, o.Unchanged)
			}
		}
		// The audit log records a request before Vault handles it, so
		// the renewal counts once the lease itself shows it.
		if f.audit.Count(t, "sys/leases/renew") < 1 {
			return false
		}
		lookup := f.vault.Write(t, "sys/leases/lookup", map[string]any{"lease_id": whole.LeaseID})
		return lookup.Data["last_renewal"] != nil
	})
	if n := f.audit.Count(t, "database/creds/app"); n != 1 {
		t.Fatalf("%d credential reads while the lease was renewable, want 1", n)
	}

	// When the maximum TTL nears, the provider wakes the agent and the
	// next fetch reads new credentials.
	select {
	case <-p.Wake():
	case <-time.After(60 * time.Second):
		t.Fatal("no wake-up before the lease's maximum TTL")
	}
	objs2 := mustFetch(t, p, logs, f.request(c, current))
	user2 := content(t, objs2["dbUsername"])
	logs.assertClean(t, content(t, objs2["dbPassword"]))
	if user2 == user1 || objs2["dbUsername"].Version == current["dbUsername"] {
		t.Errorf("after the lease ran out the username is unchanged (%v)", user2 == user1)
	}
	if n := f.audit.Count(t, "database/creds/app"); n != 2 {
		t.Errorf("%d credential reads, want 2 (once more when the lease ran out)", n)
	}
}

func testStopRestart(t *testing.T, env *testenv.Env, start func(*testing.T) (*Provider, *logCapture)) {
	v := testenv.StartVault(t, testenv.VaultOptions{Persistent: true})
	f := newFixture(t, env, v)
	value := randomValue("persistent")
	v.PutKV2(t, "secret", "app", map[string]any{"password": value})
	p, logs := start(t)
	defer logs.assertClean(t, value)
	c := f.class(t, "stopped", map[string]string{"objects": "- {objectName: password, secretPath: secret/data/app, secretKey: password}"})
	objs := mustFetch(t, p, logs, f.request(c, nil))
	if content(t, objs["password"]) != value {
		t.Fatal("first fetch does not hold the value")
	}
	v.Stop()
	_, err := fetch(t, p, logs, f.request(c, provider.Versions([]provider.Object{objs["password"]})))
	providerError(t, err, c.Key(), "password", provider.ReasonUnavailable, "GET /v1/secret/data/app")
	v.Restart()
	again := mustFetch(t, p, logs, f.request(c, nil))
	if content(t, again["password"]) != value {
		t.Error("fetch after restart does not hold the value")
	}
	if again["password"].Version != objs["password"].Version {
		t.Error("version changed across a restart with the same content")
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
