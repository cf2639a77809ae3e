package gcp

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agent/agenttest"
	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/testing/logcheck"
)

// TestAgentLogScan runs the real agent runtime (agent.Run in sidecar mode,
// as in a pod) with the gcp provider against the Secret Manager fake over
// real gRPC with TLS, authenticating by workload identity federation: the
// projected token for the workload identity provider's audience is
// exchanged at the fake STS, which accepts it only after the test
// kube-apiserver's TokenReview, and the federated principal impersonates
// the service account named by iam.gke.io/gcp-service-account through IAM
// Credentials. The agent fetches a global and a regional secret and a key
// extracted from a JSON secret, rotates new versions, keeps the files
// through a permission denial and throttling injected mid-run, recovers,
// and a second agent fails its first fetch on a missing secret. The Google
// client libraries run with GOOGLE_SDK_GO_LOGGING_LEVEL=debug, which makes
// them log every request and response to standard error. Everything the
// agent logged (at debug, as JSON), everything written to standard error,
// the errors and the termination message must hold none of the values
// (nor the pod's token or the access tokens issued), and must show each
// of those phases.
func TestAgentLogScan(t *testing.T) {
	r := newRig(t)
	f := r.fake
	subject := "system:serviceaccount:" + r.ns + ":app"
	fedPrincipal := "principal://iam.googleapis.com/projects/" + projectNumber + "/locations/global/workloadIdentityPools/k8s-pool/subject/" + subject
	f.mu.Lock()
	f.federated[subject] = fedPrincipal
	f.tokenCreators[gsaEmail] = map[string]bool{fedPrincipal: true}
	f.accessors["sa:"+gsaEmail] = true
	f.viewers["sa:"+gsaEmail] = true
	f.mu.Unlock()

	logs := logcheck.New()
	secret := logs.NewSecret
	const (
		dbName       = "projects/my-project/secrets/db"
		regionalName = "projects/my-project/locations/us-east1/secrets/regional"
		jsonName     = "projects/my-project/secrets/json"
	)
	db1, regional1, user := secret("db-password"), secret("regional"), secret("db-user")
	payload := fmt.Sprintf(`{"username":%q,"port":5432}`, user)
	logs.Secret(payload)
	f.addVersion(dbName, []byte(db1))
	f.addVersion(regionalName, []byte(regional1))
	f.addVersion(jsonName, []byte(payload))

	aud := TokenAudience(wipResource)
	tok := r.token(aud)
	tokenFile := agenttest.TokenFile(t, logs, tok)
	// The client libraries' own debug log (requests and responses) goes to
	// standard error, which is captured with the agent's log.
	t.Setenv("GOOGLE_SDK_GO_LOGGING_LEVEL", "debug")
	logs.CaptureStderr(t)

	entries := dbName + "/versions/latest\n  path: db-password\n" +
		"- resourceName: " + regionalName + "/versions/latest\n  path: regional.txt\n" +
		"- resourceName: " + jsonName + "/versions/latest\n  path: db-user\n  extractJSONKey: username\n"
	config := func(dir string, firstTimeout time.Duration, extra string) *agentconfig.Config {
		return agenttest.SidecarConfig(dir, firstTimeout, agentconfig.Token{Audience: aud, Path: tokenFile},
			identity.Cloud{GCPWorkloadIdentityProvider: wipResource, GCPServiceAccount: gsaEmail}, agentconfig.Class{
				Namespace: r.ns, Name: "app-secrets", Provider: "gcp",
				Parameters: map[string]string{"secrets": "- resourceName: " + entries + extra},
			})
	}
	providers := func(*slog.Logger) provider.Set { return provider.NewSet(r.provider(true)) }
	pod := identity.Pod{Namespace: r.ns, Name: "app-0", UID: "uid-1", ServiceAccount: "app"}

	dir := filepath.Join(t.TempDir(), "secrets")
	a := agenttest.Start(t, agenttest.Options{Config: config(dir, 20*time.Second, ""), NewProviders: providers, Pod: pod, Logs: logs})
	a.Eventually(20*time.Second, "readiness", a.Ready)
	file := func(name string) string { return filepath.Join(dir, name) }
	for name, want := range map[string]string{"db-password": db1, "regional.txt": regional1, "db-user": user} {
		if !agenttest.FileIs(file(name), want)() {
			t.Errorf("%s after the first fetch does not hold the value in Secret Manager", name)
		}
	}
	if calls := f.calls.Snapshot(); calls["sts token"] < 1 || calls["iam generateAccessToken"] < 1 || calls["metadata token"] != 0 {
		t.Fatalf("calls %v: want the federation and impersonation path, not the metadata server", calls)
	}
	a.WaitUnchangedRotation()

	// New versions of the global and the regional secret.
	db2, regional2 := secret("db-password"), secret("regional")
	f.addVersion(dbName, []byte(db2))
	f.addVersion(regionalName, []byte(regional2))
	a.Eventually(10*time.Second, "the new db-password", agenttest.FileIs(file("db-password"), db2))
	a.Eventually(10*time.Second, "the new regional.txt", agenttest.FileIs(file("regional.txt"), regional2))

	// Permission denied, then throttling, mid-run: rotations fail, files stay.
	a.RotationsFailWhile(provider.ReasonAccessDenied, func(on bool) { f.mu.Lock(); f.denied["db"] = on; f.mu.Unlock() })
	a.RotationsFailWhile(provider.ReasonThrottled, func(on bool) { f.mu.Lock(); f.throttled["regional"] = on; f.mu.Unlock() })
	if !agenttest.FileIs(file("db-password"), db2)() || !agenttest.FileIs(file("regional.txt"), regional2)() {
		t.Error("files changed while Secret Manager refused")
	}
	if !a.Ready() {
		t.Error("/readyz failed while the last good files are in place")
	}
	db3 := secret("db-password")
	f.addVersion(dbName, []byte(db3))
	a.Eventually(10*time.Second, "recovery with the newest db-password", agenttest.FileIs(file("db-password"), db3))
	a.StopCleanly()

	// A second pod whose class names a secret that does not exist.
	const missing = "projects/my-project/secrets/missing/versions/latest"
	b := agenttest.Start(t, agenttest.Options{
		Config:       config(filepath.Join(t.TempDir(), "secrets"), 1500*time.Millisecond, "- resourceName: "+missing+"\n  path: missing\n"),
		NewProviders: providers, Pod: pod, Logs: logs,
	})
	b.FailsFirstFetch([]string{"first fetch did not complete within 1.5s", "volume secrets", "SecretProviderClass " + r.ns + "/app-secrets (provider gcp)", `object "` + missing + `"`, "NotFound"},
		db1, db2, db3, regional1, regional2, user, payload, tok)

	// The access tokens STS, IAM Credentials and the metadata server
	// issued must not have been logged either.
	f.mu.Lock()
	for at := range f.tokens {
		logs.Secret(at)
	}
	f.mu.Unlock()
	agenttest.CheckLogs(t, logs, agenttest.Expect{
		Class: r.ns + "/app-secrets", Provider: "gcp",
		Objects:        []string{"db-password", "regional.txt", dbName + "/versions/latest", regionalName + "/versions/latest", missing},
		FailureReasons: []provider.Reason{provider.ReasonAccessDenied, provider.ReasonThrottled, provider.ReasonNotFound},
		MinLines:       15,
	})
}
