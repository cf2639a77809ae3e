package gcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

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

type rig struct {
	t    *testing.T
	env  *testenv.Env
	ns   string
	ca   *providertest.CA
	fake *fakeGCP
	vars map[string]string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	env := controlPlane(t)
	ns := env.Namespace(t, "gcp", nil)
	env.ServiceAccount(t, ns, "app", nil)
	ca := providertest.NewCA(t)
	f := newFakeGCP(t, ca, &providertest.Reviewer{Clientset: env.Clientset})
	// ADC must come from the fake metadata server only.
	t.Setenv("GCE_METADATA_HOST", f.metadata.Listener.Addr().String())
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("CLOUDSDK_CONFIG", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	return &rig{t: t, env: env, ns: ns, ca: ca, fake: f, vars: map[string]string{}}
}

// provider returns a provider that reaches the fake under the real
// Google host names (mapped=true) or only through the endpoint variables.
func (r *rig) provider(mapped bool) *Provider { return r.providerWith(mapped, nil) }

// providerWith is provider with Options changed by mod (nil: none).
func (r *rig) providerWith(mapped bool, mod func(*Options)) *Provider {
	dial := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(r.ca.ClientTLS()))}
	var d *providertest.Dialer
	if mapped {
		d = &providertest.Dialer{Fallback: r.fake.httpsAddr()}
		gd := &providertest.Dialer{Fallback: r.fake.grpcAddr()}
		dial = append(dial, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return gd.DialContext(ctx, "tcp", addr) }))
	}
	opts := Options{
		GRPCDialOptions: dial,
		HTTPClient:      providertest.HTTPClient(r.ca, d),
		Getenv:          func(k string) string { return r.vars[k] },
		DisableRetries:  true,
	}
	if mod != nil {
		mod(&opts)
	}
	p := New(opts)
	r.t.Cleanup(func() { _ = p.Close() })
	return p
}

func (r *rig) class(params map[string]string) *spc.Class {
	r.t.Helper()
	c, err := spc.ParseSpec(r.ns, "gcp-class", "gcp", params)
	if err != nil {
		r.t.Fatalf("parse class: %v", err)
	}
	return c
}

func (r *rig) token(aud string) string {
	r.t.Helper()
	tok, err := r.env.Token(context.Background(), r.ns, "app", []string{aud}, time.Hour, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return tok
}

func (r *rig) request(c *spc.Class, cloud identity.Cloud, tokens identity.TokenSource) provider.Request {
	return provider.Request{
		Class:      c,
		Identity:   identity.Identity{Pod: identity.Pod{Namespace: r.ns, Name: "web-0", UID: "uid-1", ServiceAccount: "app"}, Cloud: cloud, Tokens: tokens},
		Permission: 0o644,
	}
}

func files(objs []provider.Object) map[string]string {
	m := map[string]string{}
	for _, o := range objs {
		for _, f := range o.Files {
			m[f.Path] = string(f.Data)
		}
	}
	return m
}

const allSecrets = `
- resourceName: projects/my-project/secrets/db/versions/latest
  path: db.txt
- resourceName: projects/my-project/secrets/db/versions/1
  fileName: db-v1.txt
  mode: 0600
- resourceName: projects/my-project/secrets/db/versions/stable
  path: nested/dir/db-stable.txt
  fileName: ignored-because-path-wins
- resourceName: projects/my-project/locations/us-east1/secrets/regional/versions/latest
  path: regional.txt
- resourceName: projects/my-project/secrets/json/versions/latest
  path: json-user
  extractJSONKey: username
- resourceName: projects/my-project/secrets/yaml/versions/latest
  path: yaml-pass
  extractYAMLKey: password
  mode: 256
`

func (r *rig) seed() {
	f := r.fake
	f.addVersion("projects/my-project/secrets/db", []byte("s3cr3t-db-1"))
	f.addVersion("projects/my-project/secrets/db", []byte("s3cr3t-db-2"))
	f.alias("projects/my-project/secrets/db", "stable", 1)
	f.addVersion("projects/my-project/locations/us-east1/secrets/regional", []byte("s3cr3t-regional"))
	f.addVersion("projects/my-project/secrets/json", []byte(`{"username":"s3cr3t-user","port":5432}`))
	f.addVersion("projects/my-project/secrets/yaml", []byte("password: s3cr3t-pass\nnested:\n  a: b\n"))
}

func (r *rig) checkAll(objs []provider.Object) {
	r.t.Helper()
	got := files(objs)
	want := map[string]string{
		"db.txt": "s3cr3t-db-2", "db-v1.txt": "s3cr3t-db-1", "nested/dir/db-stable.txt": "s3cr3t-db-1",
		"regional.txt": "s3cr3t-regional", "json-user": "s3cr3t-user", "yaml-pass": "s3cr3t-pass",
	}
	for k, v := range want {
		if got[k] != v {
			r.t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		r.t.Errorf("files %v", got)
	}
	modes := map[string]uint32{}
	for _, o := range objs {
		for _, f := range o.Files {
			modes[f.Path] = uint32(f.Mode)
		}
	}
	if modes["db-v1.txt"] != 0o600 || modes["yaml-pass"] != 0o400 || modes["db.txt"] != 0o644 {
		r.t.Errorf("modes %v", modes)
	}
	vers := provider.Versions(objs)
	if vers["projects/my-project/secrets/db/versions/latest"] != "projects/"+projectNumber+"/secrets/db/versions/2" ||
		vers["projects/my-project/secrets/db/versions/stable"] != "projects/"+projectNumber+"/secrets/db/versions/1" ||
		vers["projects/my-project/locations/us-east1/secrets/regional/versions/latest"] != "projects/"+projectNumber+"/locations/us-east1/secrets/regional/versions/1" {
		r.t.Errorf("versions %v", vers)
	}
}

// TestMetadataADC fetches every kind of entry with the pod's application
// default credentials from the (fake) GKE metadata server, over real gRPC
// to the global and the regional endpoint, then rotates.
func TestMetadataADC(t *testing.T) {
	r := newRig(t)
	r.seed()
	f := r.fake
	f.accessors["sa:"+gsaEmail] = true
	f.viewers["sa:"+gsaEmail] = true
	p := r.provider(true)
	// The annotated service account is who the metadata server already is:
	// no impersonation.
	req := r.request(r.class(map[string]string{"auth": "pod-adc", "secrets": allSecrets}), identity.Cloud{GCPServiceAccount: gsaEmail}, nil)
	objs, err := p.Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	r.checkAll(objs)
	calls := f.calls.Snapshot()
	t.Logf("first fetch: %s", providertest.Format(calls))
	if calls["metadata token"] != 1 || calls["iam generateAccessToken"] != 0 || calls["sm AccessSecretVersion"] != 6 {
		t.Errorf("calls %v", calls)
	}
	f.mu.Lock()
	auths := strings.Join(f.authorities, " ")
	f.authorities = nil
	f.mu.Unlock()
	if !strings.Contains(auths, "secretmanager.us-east1.rep.googleapis.com") || !strings.Contains(auths, "secretmanager.googleapis.com") {
		t.Errorf("authorities %s: want the global and the regional endpoint", auths)
	}

	// Nothing changed: latest and aliases cost one metadata call each,
	// the numbered version none.
	req.Current = provider.Versions(objs)
	cur, err := p.Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range cur {
		if !o.Unchanged {
			t.Errorf("%s changed", o.ID)
		}
	}
	calls = f.calls.Snapshot()
	t.Logf("unchanged rotation: %s", providertest.Format(calls))
	if calls["sm GetSecretVersion"] != 5 || calls["sm AccessSecretVersion"] != 0 || calls["metadata token"] != 0 {
		t.Errorf("calls %v", calls)
	}

	// A new version of db: only latest changes.
	f.addVersion("projects/my-project/secrets/db", []byte("s3cr3t-db-3"))
	req.Current = provider.Versions(objs)
	cur, err = p.Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	merged, _, err := provider.Merge(objs, cur)
	if err != nil {
		t.Fatal(err)
	}
	if got := files(merged); got["db.txt"] != "s3cr3t-db-3" || got["db-v1.txt"] != "s3cr3t-db-1" {
		t.Errorf("after rotation %v", got)
	}
	if calls := f.calls.Snapshot(); calls["sm AccessSecretVersion"] != 1 {
		t.Errorf("rotation read %d payloads, want 1", calls["sm AccessSecretVersion"])
	}
}

// TestProviderADC uses the fetching process's own credentials and ignores
// the pod's identity.
func TestProviderADC(t *testing.T) {
	r := newRig(t)
	r.fake.metadataEmail = nodeEmail
	r.fake.accessors["sa:"+nodeEmail] = true
	r.fake.addVersion("projects/my-project/secrets/db", []byte("s3cr3t-node"))
	c := r.class(map[string]string{"auth": "provider-adc", "secrets": "- resourceName: projects/my-project/secrets/db/versions/latest\n  path: db"})
	objs, err := r.provider(true).Fetch(context.Background(), r.request(c, identity.Cloud{GCPServiceAccount: gsaEmail, GCPWorkloadIdentityProvider: wipResource}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if files(objs)["db"] != "s3cr3t-node" {
		t.Fatalf("files %v", files(objs))
	}
	if calls := r.fake.calls.Snapshot(); calls["sts token"] != 0 || calls["iam generateAccessToken"] != 0 {
		t.Errorf("provider-adc used the pod's identity: %v", calls)
	}
}

// TestImpersonationFromADC impersonates the annotated service account when
// the metadata server answers as another account.
func TestImpersonationFromADC(t *testing.T) {
	r := newRig(t)
	r.fake.metadataEmail = nodeEmail
	r.fake.tokenCreators[gsaEmail] = map[string]bool{"sa:" + nodeEmail: true}
	r.fake.accessors["sa:"+gsaEmail] = true
	r.fake.addVersion("projects/my-project/secrets/db", []byte("s3cr3t-imp"))
	c := r.class(map[string]string{"secrets": "- resourceName: projects/my-project/secrets/db/versions/latest\n  path: db"})
	objs, err := r.provider(true).Fetch(context.Background(), r.request(c, identity.Cloud{GCPServiceAccount: gsaEmail}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if files(objs)["db"] != "s3cr3t-imp" {
		t.Fatalf("files %v", files(objs))
	}
	if calls := r.fake.calls.Snapshot(); calls["iam generateAccessToken"] != 1 || calls["metadata email"] != 1 {
		t.Errorf("calls %v", calls)
	}
}

// TestWorkloadIdentityFederation exchanges the pod's real service-account
// token at STS, directly and with impersonation of a service account.
func TestWorkloadIdentityFederation(t *testing.T) {
	r := newRig(t)
	r.seed()
	subject := "system:serviceaccount:" + r.ns + ":app"
	fedPrincipal := "principal://iam.googleapis.com/" + strings.Replace(wipResource, "/providers/test-cluster", "", 1) + "/subject/" + subject
	r.fake.federated[subject] = fedPrincipal
	aud := TokenAudience(wipResource)
	if aud != "https://iam.googleapis.com/"+wipResource {
		t.Fatalf("token audience %q", aud)
	}
	tokens := identity.StaticTokens{aud: r.token(aud)}
	cases := map[string]struct {
		cloud   identity.Cloud
		grant   func()
		sts     int
		imp     int
		mapped  bool
		envVars bool
	}{
		"federated token used directly": {
			cloud: identity.Cloud{GCPWorkloadIdentityProvider: wipResource},
			grant: func() { r.fake.accessors[fedPrincipal] = true; r.fake.viewers[fedPrincipal] = true },
			sts:   1, mapped: true,
		},
		"federation then impersonation": {
			cloud: identity.Cloud{GCPWorkloadIdentityProvider: "//iam.googleapis.com/" + wipResource, GCPServiceAccount: gsaEmail},
			grant: func() {
				r.fake.accessors[fedPrincipal] = false
				r.fake.tokenCreators[gsaEmail] = map[string]bool{fedPrincipal: true}
				r.fake.accessors["sa:"+gsaEmail] = true
			},
			sts: 1, imp: 1, mapped: true,
		},
		"endpoints from the environment": {
			cloud: identity.Cloud{GCPWorkloadIdentityProvider: wipResource, GCPServiceAccount: gsaEmail},
			grant: func() {
				r.fake.tokenCreators[gsaEmail] = map[string]bool{fedPrincipal: true}
				r.fake.accessors["sa:"+gsaEmail] = true
			},
			sts: 1, imp: 1, envVars: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r.fake.mu.Lock()
			tc.grant()
			r.fake.checkAuthority = !tc.envVars
			r.fake.mu.Unlock()
			r.fake.calls.Snapshot()
			r.vars = map[string]string{}
			if tc.envVars {
				r.vars[EnvSecretManagerEndpoint] = r.fake.grpcAddr()
				r.vars[EnvSTSEndpoint] = "https://" + r.fake.httpsAddr()
				r.vars[EnvIAMCredentialsEndpoint] = "https://" + r.fake.httpsAddr() + "/"
			}
			p := r.provider(tc.mapped)
			objs, err := p.Fetch(context.Background(), r.request(r.class(map[string]string{"secrets": allSecrets}), tc.cloud, tokens))
			if err != nil {
				t.Fatal(err)
			}
			r.checkAll(objs)
			calls := r.fake.calls.Snapshot()
			t.Logf("calls: %s", providertest.Format(calls))
			if calls["sts token"] != tc.sts || calls["iam generateAccessToken"] != tc.imp || calls["metadata token"] != 0 {
				t.Errorf("calls %v: want %d STS exchanges and %d impersonations", calls, tc.sts, tc.imp)
			}
		})
	}
}

// TestErrors checks every failure is a *provider.Error naming the class,
// the object and the cause, with the right Reason, and never a value or a
// token.
func TestErrors(t *testing.T) {
	r := newRig(t)
	f := r.fake
	values := []string{"s3cr3t-ok", `{"username": s3cr3t-broken`, "password: [s3cr3t-broken", `{"port": 5432, "user": "s3cr3t-u"}`, "s3cr3t-disabled", "s3cr3t-denied", "s3cr3t-throttled"}
	f.addVersion("projects/my-project/secrets/ok", []byte(values[0]))
	f.addVersion("projects/my-project/secrets/badjson", []byte(values[1]))
	f.addVersion("projects/my-project/secrets/badyaml", []byte(values[2]))
	f.addVersion("projects/my-project/secrets/typed", []byte(values[3]))
	f.addVersion("projects/my-project/secrets/disabled", []byte(values[4]))
	f.setState("projects/my-project/secrets/disabled", 1, secretmanagerpb.SecretVersion_DISABLED)
	f.addVersion("projects/my-project/secrets/denied", []byte(values[5]))
	f.addVersion("projects/my-project/secrets/throttled", []byte(values[6]))
	f.denied["denied"] = true
	f.throttled["throttled"] = true
	f.accessors["sa:"+gsaEmail] = true
	f.viewers["sa:"+gsaEmail] = true
	subject := "system:serviceaccount:" + r.ns + ":app"
	f.federated[subject] = "principal://test/" + subject
	goodTok := r.token(TokenAudience(wipResource))
	wrongAudTok := r.token("https://example.test/other")

	one := func(rn, extra string) map[string]string {
		return map[string]string{"secrets": "- resourceName: projects/my-project/secrets/ok/versions/latest\n  path: ok\n- resourceName: " + rn + "\n  path: f\n" + extra}
	}
	cases := map[string]struct {
		params  map[string]string
		cloud   identity.Cloud
		tokens  identity.TokenSource
		object  string
		reason  provider.Reason
		message string
	}{
		"secret not found":      {one("projects/my-project/secrets/missing/versions/latest", ""), identity.Cloud{}, nil, "projects/my-project/secrets/missing/versions/latest", provider.ReasonNotFound, "NotFound: Secret [projects/123456789012/secrets/missing] not found"},
		"version not found":     {one("projects/my-project/secrets/ok/versions/99", ""), identity.Cloud{}, nil, "projects/my-project/secrets/ok/versions/99", provider.ReasonNotFound, "Secret Version [projects/123456789012/secrets/ok/versions/99] not found"},
		"alias not found":       {one("projects/my-project/secrets/ok/versions/nope", ""), identity.Cloud{}, nil, "projects/my-project/secrets/ok/versions/nope", provider.ReasonNotFound, "not found"},
		"disabled version":      {one("projects/my-project/secrets/disabled/versions/1", ""), identity.Cloud{}, nil, "projects/my-project/secrets/disabled/versions/1", provider.ReasonNotFound, "FailedPrecondition"},
		"permission denied":     {one("projects/my-project/secrets/denied/versions/latest", ""), identity.Cloud{}, nil, "projects/my-project/secrets/denied/versions/latest", provider.ReasonAccessDenied, "PermissionDenied: Permission 'secretmanager.versions.access' denied"},
		"throttled":             {one("projects/my-project/secrets/throttled/versions/latest", ""), identity.Cloud{}, nil, "projects/my-project/secrets/throttled/versions/latest", provider.ReasonThrottled, "ResourceExhausted: Quota exceeded"},
		"malformed JSON":        {one("projects/my-project/secrets/badjson/versions/latest", "  extractJSONKey: username\n"), identity.Cloud{}, nil, "projects/my-project/secrets/badjson/versions/latest", provider.ReasonInvalidContent, "the payload is not valid JSON"},
		"JSON key missing":      {one("projects/my-project/secrets/typed/versions/latest", "  extractJSONKey: password\n"), identity.Cloud{}, nil, "projects/my-project/secrets/typed/versions/latest", provider.ReasonInvalidContent, `key "password" not found`},
		"JSON value not string": {one("projects/my-project/secrets/typed/versions/latest", "  extractJSONKey: port\n"), identity.Cloud{}, nil, "projects/my-project/secrets/typed/versions/latest", provider.ReasonInvalidContent, "is a number, not a string"},
		"malformed YAML":        {one("projects/my-project/secrets/badyaml/versions/latest", "  extractYAMLKey: password\n"), identity.Cloud{}, nil, "projects/my-project/secrets/badyaml/versions/latest", provider.ReasonInvalidContent, "the payload is not a YAML mapping"},
		"YAML value not string": {one("projects/my-project/secrets/typed/versions/latest", "  extractYAMLKey: port\n"), identity.Cloud{}, nil, "projects/my-project/secrets/typed/versions/latest", provider.ReasonInvalidContent, "is a number, not a string"},
		"STS rejects the audience": {one("projects/my-project/secrets/ok/versions/1", ""), identity.Cloud{GCPWorkloadIdentityProvider: wipResource},
			identity.StaticTokens{TokenAudience(wipResource): wrongAudTok}, "", provider.ReasonUnauthenticated, "invalid_grant"},
		"no pod token": {one("projects/my-project/secrets/ok/versions/1", ""), identity.Cloud{GCPWorkloadIdentityProvider: wipResource},
			identity.StaticTokens{}, "", provider.ReasonUnauthenticated, "no service-account token for audience"},
		"impersonation denied": {one("projects/my-project/secrets/ok/versions/1", ""), identity.Cloud{GCPWorkloadIdentityProvider: wipResource, GCPServiceAccount: "other@my-project.iam.gserviceaccount.com"},
			identity.StaticTokens{TokenAudience(wipResource): goodTok}, "", provider.ReasonUnauthenticated, "403"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := r.provider(true)
			_, err := p.Fetch(context.Background(), r.request(r.class(tc.params), tc.cloud, tc.tokens))
			if err == nil {
				t.Fatal("fetch succeeded")
			}
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *provider.Error: %v", err, err)
			}
			if pe.Class != r.ns+"/gcp-class" || pe.Provider != "gcp" || pe.Object != tc.object || pe.Reason != tc.reason {
				t.Errorf("error fields: class %q provider %q object %q reason %q; want object %q reason %q", pe.Class, pe.Provider, pe.Object, pe.Reason, tc.object, tc.reason)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.message) || !strings.Contains(msg, r.ns+"/gcp-class") {
				t.Errorf("message %q does not name the class and %q", msg, tc.message)
			}
			for _, v := range append(values, "s3cr3t", goodTok, wrongAudTok) {
				if strings.Contains(msg, v) {
					t.Errorf("message contains a value or token: %q", msg)
				}
			}
			t.Logf("%s", msg)
		})
	}
}

// TestRotationCallCounts measures Secret Manager calls per rotation cycle
// for N unchanged entries.
func TestRotationCallCounts(t *testing.T) {
	r := newRig(t)
	const n = 20
	var latest, pinned strings.Builder
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("projects/my-project/secrets/s%d", i)
		r.fake.addVersion(name, []byte(fmt.Sprintf("s3cr3t-%d", i)))
		fmt.Fprintf(&latest, "- resourceName: %s/versions/latest\n  path: l%d\n", name, i)
		fmt.Fprintf(&pinned, "- resourceName: %s/versions/1\n  path: p%d\n", name, i)
	}
	cases := map[string]struct {
		secrets  string
		viewer   bool
		maxCalls int
	}{
		"N latest, versions.get granted": {latest.String(), true, n},
		"N latest, only versions.access": {latest.String(), false, n},
		"N numbered versions":            {pinned.String(), true, 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r.fake.mu.Lock()
			r.fake.accessors["sa:"+gsaEmail] = true
			r.fake.viewers["sa:"+gsaEmail] = tc.viewer
			r.fake.mu.Unlock()
			p := r.provider(true)
			req := r.request(r.class(map[string]string{"secrets": tc.secrets}), identity.Cloud{}, nil)
			objs, err := p.Fetch(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			req.Current = provider.Versions(objs)
			// Warm-up cycle: learns whether metadata may be read.
			if _, err := p.Fetch(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			r.fake.calls.Snapshot()
			const cycles = 3
			total := 0
			for i := 0; i < cycles; i++ {
				cur, err := p.Fetch(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range cur {
					if !o.Unchanged {
						t.Fatalf("%s changed", o.ID)
					}
				}
				calls := r.fake.calls.Snapshot()
				c := providertest.Total(calls, "sm ")
				total += c
				if c > tc.maxCalls {
					t.Errorf("cycle %d: %d calls (%s), want at most %d", i, c, providertest.Format(calls), tc.maxCalls)
				}
			}
			fmt.Printf("gcp rotation: %s: %d entries, %.1f Secret Manager calls per cycle (target <= %d)\n", name, n, float64(total)/cycles, tc.maxCalls)
		})
	}
}

// TestIdentityEvictionClosesItsClients fetches for one pod more than the
// provider keeps identities for (as the node shim does): the least recently
// used identity goes, and with it its Secret Manager clients (closed);
// every kept identity has its own client for the endpoint, never one
// created for another identity.
func TestIdentityEvictionClosesItsClients(t *testing.T) {
	r := newRig(t)
	r.seed()
	subject := "system:serviceaccount:" + r.ns + ":app"
	fedPrincipal := "principal://iam.googleapis.com/" + strings.Replace(wipResource, "/providers/test-cluster", "", 1) + "/subject/" + subject
	r.fake.mu.Lock()
	r.fake.federated[subject] = fedPrincipal
	r.fake.accessors[fedPrincipal], r.fake.viewers[fedPrincipal] = true, true
	r.fake.mu.Unlock()
	aud := TokenAudience(wipResource)
	tokens := identity.StaticTokens{aud: r.token(aud)}
	p := r.provider(true)
	c := r.class(map[string]string{"secrets": "- resourceName: projects/my-project/secrets/db/versions/latest\n  path: db.txt\n"})
	var first *podIdentity
	for i := 0; i <= maxCached; i++ {
		req := r.request(c, identity.Cloud{GCPWorkloadIdentityProvider: wipResource}, tokens)
		req.Identity.Pod.UID = fmt.Sprintf("uid-%d", i)
		if _, err := p.Fetch(context.Background(), req); err != nil {
			t.Fatalf("pod %d: %v", i, err)
		}
		if i == 0 {
			p.mu.Lock()
			for _, id := range p.idents {
				first = id
			}
			p.mu.Unlock()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idents) != maxCached {
		t.Errorf("%d identities kept, want %d", len(p.idents), maxCached)
	}
	seen := map[*secretmanager.Client]bool{}
	for _, id := range p.idents {
		if id == first {
			t.Error("the least recently used identity was kept")
		}
		if len(id.clients) != 1 {
			t.Errorf("an identity has %d clients, want 1", len(id.clients))
		}
		for _, cl := range id.clients {
			if seen[cl] {
				t.Error("two identities share a client")
			}
			seen[cl] = true
		}
	}
	if first == nil || len(first.clients) != 0 {
		t.Error("the evicted identity's clients were not closed")
	}
}
