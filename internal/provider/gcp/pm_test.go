package gcp

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agent/agenttest"
	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/providertest"
	"github.com/ssinjector/ssi/internal/spc"
	"github.com/ssinjector/ssi/internal/testing/logcheck"
)

// Parameter Manager fixtures: a YAML and a JSON parameter in "global"
// whose payloads reference Secret Manager secrets (as upstream's
// test/e2e/mount_parametermanager_test.go sets them up), and a regional
// one in us-east1.
const (
	pmYAML     = "projects/my-project/locations/global/parameters/app-yaml"
	pmJSON     = "projects/my-project/locations/global/parameters/app-json"
	pmRegional = "projects/my-project/locations/us-east1/parameters/app-regional"
	pmRefDB    = "projects/my-project/secrets/pm-ref-db"
)

const pmEntries = `
- resourceName: projects/my-project/locations/global/parameters/app-yaml/versions/v1
  path: app.yaml
- resourceName: projects/my-project/locations/global/parameters/app-yaml/versions/latest
  fileName: app-latest.yaml
  mode: 0600
- resourceName: projects/my-project/locations/global/parameters/app-json/versions/v1
  path: nested/db_pwd
  extractJSONKey: db_pwd
- resourceName: projects/my-project/locations/global/parameters/app-yaml/versions/v1
  path: yaml-user
  extractYAMLKey: user
- resourceName: projects/my-project/locations/us-east1/parameters/app-regional/versions/r1
  path: regional.txt
- resourceName: projects/my-project/secrets/db/versions/1
  path: sm-db.txt
`

func (r *rig) seedPM() {
	f, pm := r.fake, r.fake.pm
	f.addVersion("projects/my-project/secrets/db", []byte("s3cr3t-db-1"))
	f.addVersion(pmRefDB, []byte("s3cr3t-ref-1"))
	pm.addVersion(pmYAML, "v1", []byte("user: admin\ndb_pwd: __REF__(//secretmanager.googleapis.com/"+pmRefDB+"/versions/latest)\n"))
	pm.addVersion(pmYAML, "v2", []byte("user: s3cr3t-support\n"))
	pm.addVersion(pmJSON, "v1", []byte(`{"user": "admin", "db_pwd": "__REF__(//secretmanager.googleapis.com/`+pmRefDB+`/versions/1)", "port": 5432}`))
	pm.addVersion(pmRegional, "r1", []byte("s3cr3t-regional-param"))
}

func (r *rig) checkPM(objs []provider.Object, refValue string) {
	r.t.Helper()
	got := files(objs)
	want := map[string]string{
		"app.yaml":        "user: admin\ndb_pwd: " + refValue + "\n",
		"app-latest.yaml": "user: s3cr3t-support\n",
		"nested/db_pwd":   "s3cr3t-ref-1",
		"yaml-user":       "admin",
		"regional.txt":    "s3cr3t-regional-param",
		"sm-db.txt":       "s3cr3t-db-1",
	}
	for k, v := range want {
		if got[k] != v {
			r.t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		r.t.Errorf("files %v", got)
	}
	for _, o := range objs {
		for _, f := range o.Files {
			wantMode := uint32(0o644)
			if f.Path == "app-latest.yaml" {
				wantMode = 0o600
			}
			if uint32(f.Mode) != wantMode {
				r.t.Errorf("%s mode %o, want %o", f.Path, f.Mode, wantMode)
			}
		}
	}
	vers := provider.Versions(objs)
	for id, v := range map[string]string{
		pmYAML + "/versions/latest": "projects/" + projectNumber + "/locations/global/parameters/app-yaml/versions/v2",
		pmYAML + "/versions/v1":     "projects/" + projectNumber + "/locations/global/parameters/app-yaml/versions/v1",
		pmRegional + "/versions/r1": "projects/" + projectNumber + "/locations/us-east1/parameters/app-regional/versions/r1",
	} {
		if vers[id] != v {
			r.t.Errorf("version of %s = %q, want %q", id, vers[id], v)
		}
	}
}

// TestParameterManager renders global and regional Parameter Manager
// versions (named and latest) with the real REST client over TLS, next to
// a Secret Manager secret of the same class, with the pod's ADC from the
// metadata server: the files hold the rendered payloads (references to
// Secret Manager resolved), extractJSONKey and extractYAMLKey pick keys of
// the rendered payload, each parameter arrives at its location's endpoint,
// and rotation renders again, picking up a new latest version and a
// changed referenced secret under the same version name.
func TestParameterManager(t *testing.T) {
	r := newRig(t)
	r.seedPM()
	f := r.fake
	f.accessors["sa:"+gsaEmail] = true
	f.pm.renderers["sa:"+gsaEmail] = true
	p := r.provider(true)
	req := r.request(r.class(map[string]string{"secrets": pmEntries}), identity.Cloud{}, nil)
	objs, err := p.Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	r.checkPM(objs, "s3cr3t-ref-1")
	calls := f.calls.Snapshot()
	t.Logf("first fetch: %s", providertest.Format(calls))
	if calls["pm render"] != 5 || calls["sm AccessSecretVersion"] != 1 || calls["metadata token"] != 1 {
		t.Errorf("calls %v: want 5 renders, 1 Secret Manager access and one token", calls)
	}
	hosts := strings.Join(f.pm.requestHosts(), " ")
	if !strings.Contains(hosts, "parametermanager.googleapis.com") || !strings.Contains(hosts, "parametermanager.us-east1.rep.googleapis.com") {
		t.Errorf("hosts %s: want the global and the regional endpoint", hosts)
	}

	// A new latest version and a new value of the referenced secret.
	f.pm.addVersion(pmYAML, "v3", []byte("user: s3cr3t-v3\n"))
	f.addVersion(pmRefDB, []byte("s3cr3t-ref-2"))
	req.Current = provider.Versions(objs)
	cur, err := p.Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	merged, _, err := provider.Merge(objs, cur)
	if err != nil {
		t.Fatal(err)
	}
	got := files(merged)
	if got["app-latest.yaml"] != "user: s3cr3t-v3\n" || got["app.yaml"] != "user: admin\ndb_pwd: s3cr3t-ref-2\n" || got["nested/db_pwd"] != "s3cr3t-ref-1" {
		t.Errorf("after rotation %v", got)
	}
	if v := provider.Versions(merged)[pmYAML+"/versions/latest"]; !strings.HasSuffix(v, "/versions/v3") {
		t.Errorf("latest now resolves to %q", v)
	}
	calls = f.calls.Snapshot()
	t.Logf("rotation: %s", providertest.Format(calls))
	if calls["pm render"] != 5 || calls["sm AccessSecretVersion"] != 0 {
		t.Errorf("rotation calls %v: want every parameter rendered and the numbered secret not read", calls)
	}
}

// TestParameterManagerEndpointsFromEnvironment sends every parameter to
// SSI_GCP_PARAMETERMANAGER_ENDPOINT, with {location} replaced.
func TestParameterManagerEndpointsFromEnvironment(t *testing.T) {
	p := New(Options{Getenv: func(k string) string {
		if k == EnvParameterManagerEndpoint {
			return "https://pm.internal.example/{location}"
		}
		return ""
	}})
	def := New(Options{Getenv: func(string) string { return "" }})
	for rn, want := range map[string][2]string{
		pmYAML + "/versions/v1":                                         {"https://pm.internal.example/global/", "https://parametermanager.googleapis.com/"},
		pmRegional + "/versions/r1":                                     {"https://pm.internal.example/us-east1/", "https://parametermanager.us-east1.rep.googleapis.com/"},
		"projects/p/locations/eu/parameters/x/versions/latest":          {"https://pm.internal.example/eu/", "https://parametermanager.eu.rep.googleapis.com/"},
		"projects/p/locations/europe-west4/parameters/x/versions/ver_1": {"https://pm.internal.example/europe-west4/", "https://parametermanager.europe-west4.rep.googleapis.com/"},
	} {
		c := mustClass(t, "- resourceName: "+rn+"\n  path: f\n")
		s := &c.GCP.Secrets[0]
		if got := p.parameterEndpoint(s); got != want[0] {
			t.Errorf("%s: endpoint %q with the variable, want %q", rn, got, want[0])
		}
		if got := def.parameterEndpoint(s); got != want[1] {
			t.Errorf("%s: endpoint %q, want %q", rn, got, want[1])
		}
	}

	// And over the wire, with the fake reached only through the variable.
	r := newRig(t)
	r.seedPM()
	r.fake.mu.Lock()
	r.fake.checkAuthority = false
	r.fake.mu.Unlock()
	r.fake.accessors["sa:"+gsaEmail] = true
	r.fake.pm.renderers["sa:"+gsaEmail] = true
	r.vars[EnvParameterManagerEndpoint] = "https://" + r.fake.httpsAddr() + "/"
	r.vars[EnvSecretManagerEndpoint] = r.fake.grpcAddr()
	objs, err := r.provider(false).Fetch(context.Background(), r.request(r.class(map[string]string{"secrets": pmEntries}), identity.Cloud{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	r.checkPM(objs, "s3cr3t-ref-1")
}

// TestParameterManagerShimPath fetches as the node shim does
// (Options.OutsidePod, builtin.Shared): the pod's projected token is
// exchanged at STS and impersonates the annotated service account, and a
// class without a workload identity provider is refused instead of being
// served with the node's credentials.
func TestParameterManagerShimPath(t *testing.T) {
	r := newRig(t)
	r.seedPM()
	f := r.fake
	subject := "system:serviceaccount:" + r.ns + ":app"
	fedPrincipal := "principal://iam.googleapis.com/projects/" + projectNumber + "/subject/" + subject
	f.federated[subject] = fedPrincipal
	f.tokenCreators[gsaEmail] = map[string]bool{fedPrincipal: true}
	f.accessors["sa:"+gsaEmail] = true
	f.pm.renderers["sa:"+gsaEmail] = true
	// The node's own identity (the metadata server) may render too: the
	// refusal below must come from the shim's rule, not from a denial.
	f.metadataEmail = nodeEmail
	f.pm.renderers["sa:"+nodeEmail] = true
	aud := TokenAudience(wipResource)
	tokens := identity.StaticTokens{aud: r.token(aud)}
	p := r.providerWith(true, func(o *Options) { o.OutsidePod = true })
	class := r.class(map[string]string{"secrets": pmEntries})
	objs, err := p.Fetch(context.Background(), r.request(class, identity.Cloud{GCPWorkloadIdentityProvider: wipResource, GCPServiceAccount: gsaEmail}, tokens))
	if err != nil {
		t.Fatal(err)
	}
	r.checkPM(objs, "s3cr3t-ref-1")
	calls := f.calls.Snapshot()
	if calls["sts token"] != 1 || calls["iam generateAccessToken"] != 1 || calls["metadata token"] != 0 || calls["pm render"] != 5 {
		t.Errorf("calls %v: want federation and impersonation, never the node's metadata token", calls)
	}

	_, err = p.Fetch(context.Background(), r.request(class, identity.Cloud{}, nil))
	if err == nil || provider.ReasonOf(err) != provider.ReasonInvalidConfig || !strings.Contains(err.Error(), "auth: pod-adc needs the pod's workload identity provider") {
		t.Errorf("pod-adc without a workload identity provider in the shim: %v", err)
	}
	if calls := f.calls.Snapshot(); calls["pm render"] != 0 || calls["metadata token"] != 0 {
		t.Errorf("the refused class caused calls %v", calls)
	}
}

// TestParameterManagerErrors checks that every failure of a parameter is a
// *provider.Error naming the class, the object and the cause, with the
// Reason the HTTP status gives (provider.ReasonForHTTP), and never holds
// a value or a token; an answer over the response cap is InvalidContent.
func TestParameterManagerErrors(t *testing.T) {
	r := newRig(t)
	f := r.fake
	values := []string{"s3cr3t-ok", `{"user": s3cr3t-broken`, "user: [s3cr3t-broken", `{"port": 5432, "user": "s3cr3t-u"}`, "s3cr3t-denied", "s3cr3t-throttled", strings.Repeat("s3cr3t-big ", 1000)}
	const base = "projects/my-project/locations/global/parameters/"
	f.pm.addVersion(base+"ok", "v1", []byte(values[0]))
	f.pm.addVersion(base+"badjson", "v1", []byte(values[1]))
	f.pm.addVersion(base+"badyaml", "v1", []byte(values[2]))
	f.pm.addVersion(base+"typed", "v1", []byte(values[3]))
	f.pm.addVersion(base+"denied", "v1", []byte(values[4]))
	f.pm.addVersion(base+"throttled", "v1", []byte(values[5]))
	f.pm.addVersion(base+"big", "v1", []byte(values[6]))
	f.pm.addVersion(base+"dangling", "v1", []byte(`{"k": "__REF__(//secretmanager.googleapis.com/projects/my-project/secrets/gone/versions/1)"}`))
	f.pm.denied["denied"] = true
	f.pm.throttled["throttled"] = true
	f.accessors["sa:"+gsaEmail] = true
	f.pm.renderers["sa:"+gsaEmail] = true

	one := func(rn, extra string) map[string]string {
		return map[string]string{"secrets": "- resourceName: " + base + "ok/versions/v1\n  path: ok\n- resourceName: " + rn + "\n  path: f\n" + extra}
	}
	cases := map[string]struct {
		name    string
		extra   string
		reason  provider.Reason
		message string
	}{
		"parameter not found":   {base + "missing/versions/v1", "", provider.ReasonNotFound, "HTTP 404 NOT_FOUND: Parameter [projects/123456789012/locations/global/parameters/missing] not found"},
		"version not found":     {base + "ok/versions/v9", "", provider.ReasonNotFound, "Parameter Version [projects/123456789012/locations/global/parameters/ok/versions/v9] not found"},
		"regional not found":    {"projects/my-project/locations/europe-west4/parameters/ok/versions/v1", "", provider.ReasonNotFound, "HTTP 404"},
		"permission denied":     {base + "denied/versions/v1", "", provider.ReasonAccessDenied, "HTTP 403 PERMISSION_DENIED: Permission 'parametermanager.parameterVersions.render' denied"},
		"throttled":             {base + "throttled/versions/latest", "", provider.ReasonThrottled, "HTTP 429 RESOURCE_EXHAUSTED"},
		"unresolved reference":  {base + "dangling/versions/v1", "", provider.ReasonInvalidConfig, "HTTP 400 FAILED_PRECONDITION"},
		"oversize":              {base + "big/versions/v1", "", provider.ReasonInvalidContent, "larger than the limit of 4096 bytes"},
		"malformed JSON":        {base + "badjson/versions/v1", "  extractJSONKey: user\n", provider.ReasonInvalidContent, "the payload is not valid JSON"},
		"JSON key missing":      {base + "typed/versions/v1", "  extractJSONKey: password\n", provider.ReasonInvalidContent, `key "password" not found`},
		"JSON value not string": {base + "typed/versions/v1", "  extractJSONKey: port\n", provider.ReasonInvalidContent, "is a number, not a string"},
		"malformed YAML":        {base + "badyaml/versions/v1", "  extractYAMLKey: user\n", provider.ReasonInvalidContent, "the payload is not a YAML mapping"},
		"YAML key missing":      {base + "typed/versions/v1", "  extractYAMLKey: password\n", provider.ReasonInvalidContent, `key "password" not found`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := r.providerWith(true, func(o *Options) { o.MaxResponseBytes = 4096 })
			objs, _, err := provider.FetchMerged(context.Background(), p, r.request(r.class(one(tc.name, tc.extra)), identity.Cloud{}, nil), nil)
			if err == nil {
				t.Fatalf("fetch succeeded: %v", files(objs))
			}
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *provider.Error: %v", err, err)
			}
			if pe.Class != r.ns+"/gcp-class" || pe.Provider != "gcp" || pe.Object != tc.name || pe.Reason != tc.reason {
				t.Errorf("error fields: class %q provider %q object %q reason %q; want object %q reason %q", pe.Class, pe.Provider, pe.Object, pe.Reason, tc.name, tc.reason)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.message) || !strings.Contains(msg, r.ns+"/gcp-class") {
				t.Errorf("message %q does not name the class and %q", msg, tc.message)
			}
			if strings.Contains(msg, "s3cr3t") || strings.Contains(msg, "ya29.") {
				t.Errorf("message contains a value or token: %q", msg)
			}
			t.Logf("%s", msg)
		})
	}
}

// TestAgentParameterManager runs the real agent runtime (sidecar mode, as
// in a pod) with the gcp provider, authenticating by workload identity
// federation and impersonation, against the Parameter Manager fake: the
// first fetch writes a global rendered parameter, a regional one and a key
// extracted from a JSON parameter; a new version behind "latest" and a
// new value of a referenced secret are rotated in; a permission denial
// mid-run keeps the files; the agent's log holds none of the values.
func TestAgentParameterManager(t *testing.T) {
	r := newRig(t)
	f := r.fake
	subject := "system:serviceaccount:" + r.ns + ":app"
	fedPrincipal := "principal://iam.googleapis.com/projects/" + projectNumber + "/subject/" + subject
	f.mu.Lock()
	f.federated[subject] = fedPrincipal
	f.tokenCreators[gsaEmail] = map[string]bool{fedPrincipal: true}
	f.pm.renderers["sa:"+gsaEmail] = true
	f.mu.Unlock()

	logs := logcheck.New()
	secret := logs.NewSecret
	ref1, regional1, cfg1, user := secret("ref"), secret("regional"), secret("cfg"), secret("user")
	f.addVersion(pmRefDB, []byte(ref1))
	f.pm.addVersion(pmYAML, "v1", []byte("mode: "+cfg1+"\npwd: __REF__(//secretmanager.googleapis.com/"+pmRefDB+"/versions/latest)\n"))
	f.pm.addVersion(pmRegional, "r1", []byte(regional1))
	f.pm.addVersion(pmJSON, "v1", []byte(`{"user": "`+user+`"}`))

	aud := TokenAudience(wipResource)
	tok := r.token(aud)
	tokenFile := agenttest.TokenFile(t, logs, tok)
	entries := "- resourceName: " + pmYAML + "/versions/latest\n  path: app.yaml\n" +
		"- resourceName: " + pmRegional + "/versions/r1\n  path: regional.txt\n" +
		"- resourceName: " + pmJSON + "/versions/v1\n  path: user\n  extractJSONKey: user\n"
	dir := filepath.Join(t.TempDir(), "secrets")
	config := agenttest.SidecarConfig(dir, 20*time.Second, agentconfig.Token{Audience: aud, Path: tokenFile},
		identity.Cloud{GCPWorkloadIdentityProvider: wipResource, GCPServiceAccount: gsaEmail}, agentconfig.Class{
			Namespace: r.ns, Name: "app-params", Provider: "gcp", Parameters: map[string]string{"secrets": entries},
		})
	providers := func(*slog.Logger) provider.Set { return provider.NewSet(r.provider(true)) }
	pod := identity.Pod{Namespace: r.ns, Name: "app-0", UID: "uid-1", ServiceAccount: "app"}
	a := agenttest.Start(t, agenttest.Options{Config: config, NewProviders: providers, Pod: pod, Logs: logs})
	a.Eventually(20*time.Second, "readiness", a.Ready)
	file := func(name string) string { return filepath.Join(dir, name) }
	for name, want := range map[string]string{"app.yaml": "mode: " + cfg1 + "\npwd: " + ref1 + "\n", "regional.txt": regional1, "user": user} {
		if !agenttest.FileIs(file(name), want)() {
			b, _ := os.ReadFile(file(name))
			t.Errorf("%s after the first fetch holds %d bytes, not the rendered parameter", name, len(b))
		}
	}

	// Nothing changed: the agent renders again and writes nothing.
	a.WaitUnchangedRotation()

	cfg2, ref2 := secret("cfg"), secret("ref")
	f.pm.addVersion(pmYAML, "v2", []byte("mode: "+cfg2+"\npwd: __REF__(//secretmanager.googleapis.com/"+pmRefDB+"/versions/latest)\n"))
	f.addVersion(pmRefDB, []byte(ref2))
	a.Eventually(10*time.Second, "the new app.yaml", agenttest.FileIs(file("app.yaml"), "mode: "+cfg2+"\npwd: "+ref2+"\n"))

	a.RotationsFailWhile(provider.ReasonAccessDenied, func(on bool) { f.pm.mu.Lock(); f.pm.denied["app-regional"] = on; f.pm.mu.Unlock() })
	if !agenttest.FileIs(file("regional.txt"), regional1)() || !a.Ready() {
		t.Error("files changed, or readiness failed, while Parameter Manager refused")
	}
	a.StopCleanly()

	f.mu.Lock()
	for at := range f.tokens {
		logs.Secret(at)
	}
	f.mu.Unlock()
	agenttest.CheckLogs(t, logs, agenttest.Expect{
		Class: r.ns + "/app-params", Provider: "gcp",
		Objects:        []string{"app.yaml", "regional.txt", "user", pmRegional + "/versions/r1"},
		FailureReasons: []provider.Reason{provider.ReasonAccessDenied},
		MinLines:       5,
	})
}

func mustClass(t *testing.T, secrets string) *spc.Class {
	t.Helper()
	c, err := spc.ParseSpec("team", "cls", spc.ProviderGCP, map[string]string{"secrets": secrets})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
