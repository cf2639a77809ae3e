package vault

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/providertest"
)

// TestRequests checks what goes over the wire: the login (mount, role,
// JWT, namespace), token and namespace headers, query strings, methods,
// secretArgs bodies, and one response per (path, method) per fetch.
func TestRequests(t *testing.T) {
	unitEnv(t)
	fv := newFakeVault(t)
	fv.reply("GET", "/v1/secret/data/app", 200, bodyKV2)
	fv.reply("PUT", "/v1/pki/issue/web", 200, `{"request_id":"p1","data":{"certificate":"CERT-PUT","private_key":"KEY-PUT"}}`)
	fv.reply("POST", "/v1/pki/issue/web", 200, `{"request_id":"p2","data":{"certificate":"CERT-POST"}}`)
	p, logs := unitProvider(t, Options{}, contentSecrets...)
	c := unitClass(t, fv.srv.URL, map[string]string{
		"roleName":                 "r1",
		"vaultKubernetesMountPath": "kubernetes-staging",
		"vaultNamespace":           "team-a",
		"audience":                 "vault",
		"objects": `
- objectName: a
  secretPath: secret/data/app?version=2
  secretKey: password
- objectName: b
  secretPath: /v1/secret/data/app?version=2
  secretKey: port
- objectName: latest
  secretPath: secret/data/app
  secretKey: port
- objectName: crt
  secretPath: pki/issue/web
  method: PUT
  secretKey: certificate
  secretArgs:
    common_name: web.example.com
    alt_names: [a.example.com, b.example.com]
    ttl: 1h
- objectName: key
  secretPath: pki/issue/web
  method: PUT
  secretKey: private_key
  secretArgs:
    common_name: ignored-shared-response.example.com
- objectName: post
  secretPath: pki/issue/web
  method: POST
  secretKey: certificate
  secretArgs:
    common_name: post.example.com
`})
	objs, err := unitFetch(t, p, logs, unitRequest(c, nil))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range objs {
		got[o.ID] = string(o.Files[0].Data)
	}
	want := map[string]string{"a": "p@ss-kv2-value", "b": "5432", "latest": "5432", "crt": "CERT-PUT", "key": "KEY-PUT", "post": "CERT-POST"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("contents %v, want %v", got, want)
	}

	logins := fv.requests("POST", "/v1/auth/kubernetes-staging/login")
	if len(logins) != 1 {
		t.Fatalf("%d logins at the custom mount, want 1", len(logins))
	}
	if l := logins[0]; l.Body["role"] != "r1" || l.Body["jwt"] != testJWT || l.Namespace != "team-a" || l.Token != "" {
		t.Errorf("login: role %v, jwt sent %v, namespace %q, token header set %v", l.Body["role"], l.Body["jwt"] == testJWT, l.Namespace, l.Token != "")
	}
	reads := fv.requests("GET", "/v1/secret/data/app")
	if len(reads) != 2 {
		t.Fatalf("%d reads of secret/data/app, want 2 (one with ?version=2 shared by a and b, one without)", len(reads))
	}
	// Distinct paths are read in parallel, so in either order.
	queries := []string{reads[0].Query.Encode(), reads[1].Query.Encode()}
	sort.Strings(queries)
	if queries[0] != "" || queries[1] != "version=2" {
		t.Errorf("queries %q, want none and version=2", queries)
	}
	for _, r := range reads {
		if r.Token != "hvs.token-1" || r.Namespace != "team-a" {
			t.Errorf("read sent token %q namespace %q", r.Token, r.Namespace)
		}
	}
	puts := fv.requests("PUT", "/v1/pki/issue/web")
	if len(puts) != 1 {
		t.Fatalf("%d PUTs, want 1 shared by crt and key", len(puts))
	}
	wantBody := map[string]any{"common_name": "web.example.com", "alt_names": []any{"a.example.com", "b.example.com"}, "ttl": "1h"}
	if !reflect.DeepEqual(puts[0].Body, wantBody) {
		t.Errorf("PUT body %v, want %v", puts[0].Body, wantBody)
	}
	posts := fv.requests("POST", "/v1/pki/issue/web")
	if len(posts) != 1 || posts[0].Body["common_name"] != "post.example.com" {
		t.Errorf("POSTs %v", posts)
	}

	// The token is kept for the next fetch.
	if _, err := unitFetch(t, p, logs, unitRequest(c, provider.Versions(objs))); err != nil {
		t.Fatal(err)
	}
	if n := fv.loginCount(); n != 1 {
		t.Errorf("%d logins after two fetches, want 1", n)
	}
}

// TestEnvironment: VAULT_ADDR and VAULT_NAMESPACE apply when the class has
// no address or namespace; VAULT_TOKEN only with Options.EnvToken and only
// without a service-account token.
func TestEnvironment(t *testing.T) {
	objects := map[string]string{"objects": "- {objectName: out, secretPath: secret/data/app, secretKey: password}"}
	for name, tc := range map[string]struct {
		env       map[string]string
		params    map[string]string
		envToken  bool
		noTokens  bool
		wantNS    string
		wantToken string
		wantErr   provider.Reason
	}{
		"VAULT_ADDR":                         {wantToken: "hvs.token-1"},
		"VAULT_NAMESPACE":                    {env: map[string]string{"VAULT_NAMESPACE": "env-ns"}, wantNS: "env-ns", wantToken: "hvs.token-1"},
		"class namespace wins":               {env: map[string]string{"VAULT_NAMESPACE": "env-ns"}, params: map[string]string{"vaultNamespace": "class-ns"}, wantNS: "class-ns", wantToken: "hvs.token-1"},
		"VAULT_TOKEN is not used implicitly": {env: map[string]string{"VAULT_TOKEN": "hvs.env-token"}, noTokens: true, wantErr: provider.ReasonUnauthenticated},
		"VAULT_TOKEN with EnvToken":          {env: map[string]string{"VAULT_TOKEN": "hvs.env-token"}, noTokens: true, envToken: true, wantToken: "hvs.env-token"},
		"service account beats VAULT_TOKEN":  {env: map[string]string{"VAULT_TOKEN": "hvs.env-token"}, envToken: true, wantToken: "hvs.token-1"},
	} {
		t.Run(name, func(t *testing.T) {
			unitEnv(t)
			fv := newFakeVault(t)
			fv.reply("GET", "/v1/secret/data/app", 200, bodyKV2)
			t.Setenv("VAULT_ADDR", fv.srv.URL)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			p, logs := unitProvider(t, Options{EnvToken: tc.envToken}, append(contentSecrets, "hvs.env-token")...)
			params := map[string]string{}
			for k, v := range objects {
				params[k] = v
			}
			for k, v := range tc.params {
				params[k] = v
			}
			c := unitClass(t, "", params)
			req := unitRequest(c, nil)
			if tc.noTokens {
				req.Identity.Tokens = nil
			}
			_, err := unitFetch(t, p, logs, req)
			if tc.wantErr != "" {
				providerError(t, err, c.Key(), "out", tc.wantErr)
				if n := fv.count("GET", "/v1/secret/data/app"); n != 0 {
					t.Errorf("%d reads without a token", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			reads := fv.requests("GET", "/v1/secret/data/app")
			if len(reads) != 1 || reads[0].Token != tc.wantToken || reads[0].Namespace != tc.wantNS {
				t.Fatalf("reads %+v, want token %q namespace %q", reads, tc.wantToken, tc.wantNS)
			}
		})
	}
}

// TestTLS runs the TLS options against a server that requires a client
// certificate and whose certificate names only vault.test.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := providertest.NewCA(t)
	caDir := filepath.Join(dir, "cas")
	if err := os.Mkdir(caDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Certificates name only their common name (no IP SANs).
	serverCert := ca.KeyPair(t, providertest.Leaf{CommonName: "vault.test", DNSNames: []string{"vault.test"}})
	clientPEM, clientKeyPEM := ca.Issue(t, providertest.Leaf{CommonName: "client", DNSNames: []string{"client"}, Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	for path, data := range map[string][]byte{
		filepath.Join(dir, "ca.pem"): ca.PEM(), filepath.Join(caDir, "ca.pem"): ca.PEM(),
		filepath.Join(dir, "client.pem"): clientPEM, filepath.Join(dir, "client-key.pem"): clientKeyPEM,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := ca.Pool()

	client := map[string]string{"vaultTLSClientCertPath": filepath.Join(dir, "client.pem"), "vaultTLSClientKeyPath": filepath.Join(dir, "client-key.pem")}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	merge := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	for name, tc := range map[string]struct {
		params map[string]string
		env    map[string]string
		want   []string // error substrings; empty means success
		files  limits.Files
		config []string // InvalidConfig error substrings
	}{
		"CA file, server name, client certificate": {params: merge(client, with("vaultCACertPath", filepath.Join(dir, "ca.pem"), "vaultTLSServerName", "vault.test"))},
		"CA directory":                                  {params: merge(client, with("vaultCADirectory", caDir, "vaultTLSServerName", "vault.test"))},
		"skip verify":                                   {params: merge(client, with("vaultSkipTLSVerify", "true"))},
		"CA from VAULT_CACERT, name from class":         {params: merge(client, with("vaultTLSServerName", "vault.test")), env: with("VAULT_CACERT", filepath.Join(dir, "ca.pem"))},
		"unknown authority":                             {params: merge(client, with("vaultTLSServerName", "vault.test")), want: []string{"certificate signed by unknown authority"}},
		"wrong server name":                             {params: merge(client, with("vaultCACertPath", filepath.Join(dir, "ca.pem"))), want: []string{"127.0.0.1"}},
		"no client certificate":                         {params: with("vaultCACertPath", filepath.Join(dir, "ca.pem"), "vaultTLSServerName", "vault.test"), want: []string{"certificate"}},
		"shared, files under the class files directory": {params: merge(client, with("vaultCADirectory", caDir, "vaultTLSServerName", "vault.test")), files: limits.Files{Shared: true, Dir: dir}},
		"shared, no class files directory":              {params: merge(client, with("vaultCACertPath", filepath.Join(dir, "ca.pem"), "vaultTLSServerName", "vault.test")), files: limits.Files{Shared: true}, config: []string{"parameters.vaultCACertPath", "--class-files-dir, which is not set"}},
		"shared, client key outside":                    {params: merge(client, with("vaultTLSClientKeyPath", "/etc/hostname", "vaultCACertPath", filepath.Join(dir, "ca.pem"))), files: limits.Files{Shared: true, Dir: dir}, config: []string{"parameters.vaultTLSClientKeyPath", "is not inside the class files directory"}},
		"CA file is a device":                           {params: merge(client, with("vaultCACertPath", "/dev/zero")), config: []string{"parameters.vaultCACertPath", "is not a regular file"}},
		"CA file holds no certificate":                  {params: merge(client, with("vaultCACertPath", filepath.Join(dir, "client-key.pem"))), config: []string{"holds no PEM certificate"}},
	} {
		t.Run(name, func(t *testing.T) {
			unitEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fv := newFakeVaultWith(t, func(h http.Handler) *httptest.Server {
				s := httptest.NewUnstartedServer(h)
				s.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
				s.Config.ErrorLog = log.New(io.Discard, "", 0)
				s.StartTLS()
				return s
			})
			fv.reply("GET", "/v1/secret/data/app", 200, bodyKV2)
			p, logs := unitProvider(t, Options{Files: tc.files}, contentSecrets...)
			c := unitClass(t, fv.srv.URL, merge(tc.params, with("objects", "- {objectName: out, secretPath: secret/data/app, secretKey: password}")))
			objs, err := unitFetch(t, p, logs, unitRequest(c, nil))
			if len(tc.config) > 0 {
				if provider.ReasonOf(err) != provider.ReasonInvalidConfig {
					t.Fatalf("err %v, want InvalidConfig", err)
				}
				for _, w := range tc.config {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err %v, want %q", err, w)
					}
				}
				if strings.Contains(err.Error(), "PRIVATE KEY") {
					t.Errorf("the error quotes a file: %v", err)
				}
				return
			}
			if len(tc.want) > 0 {
				providerError(t, err, c.Key(), "out", provider.ReasonUnavailable, tc.want...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(objs[0].Files[0].Data) != "p@ss-kv2-value" {
				t.Error("wrong content over TLS")
			}
		})
	}
}

// TestResponseLimit: a response body over MaxResponseBytes fails the object
// with InvalidContent naming the limit, after reading no more than it.
func TestResponseLimit(t *testing.T) {
	unitEnv(t)
	fv := newFakeVault(t)
	huge := strings.Repeat("Z", 1<<20)
	fv.reply("GET", "/v1/secret/data/app", 200, `{"request_id":"r","data":{"data":{"password":"`+huge+`"}}}`)
	p, logs := unitProvider(t, Options{MaxResponseBytes: 64 << 10}, contentSecrets...)
	c := unitClass(t, fv.srv.URL, map[string]string{"objects": "- {objectName: out, secretPath: secret/data/app, secretKey: password}"})
	_, err := unitFetch(t, p, logs, unitRequest(c, nil))
	if provider.ReasonOf(err) != provider.ReasonInvalidContent || !strings.Contains(err.Error(), "larger than the limit of 65536 bytes") || strings.Contains(err.Error(), "ZZZ") {
		t.Fatalf("err %v, want InvalidContent naming the 65536-byte limit", err)
	}
}
