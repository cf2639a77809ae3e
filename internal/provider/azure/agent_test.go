package azure

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"

	"github.com/ssinjector/ssi/internal/agent/agenttest"
	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/testing/logcheck"
)

// TestAgentLogScan runs the real agent runtime (agent.Run in sidecar mode,
// as in a pod) with the azure provider against the Key Vault fake over TLS,
// authenticating with Microsoft Entra Workload ID: the projected token for
// api://AzureADTokenExchange is the client assertion, which the fake token
// endpoint accepts only after the test kube-apiserver's TokenReview, for
// the client ID the webhook derived from the service account; Key Vault
// answers only after the bearer challenge. The agent fetches a plain
// secret, a base64-encoded one and a version history, rotates new
// versions, keeps the files through an access denial and throttling
// injected mid-run, recovers, and a second agent fails its first fetch on
// a missing secret. Everything the agent logged (at debug, as JSON), the
// Azure SDK's own log (every event, as AZURE_SDK_GO_LOGGING=all turns on),
// everything written to the process's standard error, the errors and the
// termination message must hold none of the values (nor the assertion or
// the access tokens Entra issued), and must show each of those phases.
func TestAgentLogScan(t *testing.T) {
	r := newRig(t)
	f := r.fake
	logs := logcheck.New()
	secret := logs.NewSecret
	db1, apiRaw1, hist1, hist2 := secret("db-password"), secret("api-token"), secret("history"), secret("history")
	f.put("secrets", "db-password", kvVer{value: db1})
	// objectEncoding base64: Key Vault holds the encoded text, the file the
	// decoded bytes.
	f.put("secrets", "api-token", kvVer{value: base64.StdEncoding.EncodeToString([]byte(apiRaw1))})
	f.put("secrets", "history", kvVer{value: hist1})
	f.put("secrets", "history", kvVer{value: hist2})

	// The Azure SDK's log, every event, as AZURE_SDK_GO_LOGGING=all would
	// print it to standard error.
	azlog.SetListener(func(ev azlog.Event, msg string) { _, _ = fmt.Fprintf(logs, "azure-sdk [%s] %s\n", ev, msg) })
	t.Cleanup(func() { azlog.SetListener(nil) })
	logs.CaptureStderr(t)

	tokenFile := agenttest.TokenFile(t, logs, r.token)
	objects := []string{
		"objectName: db-password\nobjectType: secret",
		"objectName: api-token\nobjectType: secret\nobjectEncoding: base64\nobjectAlias: api/token",
		"objectName: history\nobjectType: secret\nobjectVersionHistory: 2",
	}
	config := func(dir string, firstTimeout time.Duration, objs ...string) *agentconfig.Config {
		// The client ID is the service account's azure.workload.identity/client-id.
		return agenttest.SidecarConfig(dir, firstTimeout, agentconfig.Token{Audience: TokenAudience, Path: tokenFile}, identity.Cloud{AzureClientID: testClientID}, agentconfig.Class{
			Namespace: r.ns, Name: "app-secrets", Provider: "azure",
			Parameters: map[string]string{"keyvaultName": "kv-test", "tenantId": f.tenant, "objects": objectsParam(objs...)},
		})
	}
	providers := func(*slog.Logger) provider.Set { return provider.NewSet(r.provider(f.dialer())) }
	pod := identity.Pod{Namespace: r.ns, Name: "app-0", UID: "uid-1", ServiceAccount: "app"}

	dir := filepath.Join(t.TempDir(), "secrets")
	a := agenttest.Start(t, agenttest.Options{Config: config(dir, 20*time.Second, objects...), NewProviders: providers, Pod: pod, Logs: logs})
	a.Eventually(20*time.Second, "readiness", a.Ready)
	file := func(name string) string { return filepath.Join(dir, name) }
	for name, want := range map[string]string{"db-password": db1, "api/token": apiRaw1, "history/0": hist2, "history/1": hist1} {
		if !agenttest.FileIs(file(name), want)() {
			t.Errorf("%s after the first fetch does not hold the value in Key Vault", name)
		}
	}
	if calls := f.calls.Snapshot(); calls["entra token"] < 1 || calls["kv challenge"] < 1 {
		t.Fatalf("calls %v: the workload identity path (challenge, token exchange) was not taken", calls)
	}
	a.WaitUnchangedRotation()

	// New versions: the latest secrets change, the history shifts.
	db2, apiRaw2, hist3 := secret("db-password"), secret("api-token"), secret("history")
	f.put("secrets", "db-password", kvVer{value: db2})
	f.put("secrets", "api-token", kvVer{value: base64.StdEncoding.EncodeToString([]byte(apiRaw2))})
	f.put("secrets", "history", kvVer{value: hist3})
	a.Eventually(10*time.Second, "the new db-password", agenttest.FileIs(file("db-password"), db2))
	a.Eventually(10*time.Second, "the new api/token", agenttest.FileIs(file("api/token"), apiRaw2))
	a.Eventually(10*time.Second, "the shifted history", func() bool {
		return agenttest.FileIs(file("history/0"), hist3)() && agenttest.FileIs(file("history/1"), hist2)()
	})

	// Access denied, then throttling, mid-run: rotations fail, files stay.
	a.RotationsFailWhile(provider.ReasonAccessDenied, func(on bool) { f.mu.Lock(); f.denied["db-password"] = on; f.mu.Unlock() })
	a.RotationsFailWhile(provider.ReasonThrottled, func(on bool) { f.mu.Lock(); f.throttled["api-token"] = on; f.mu.Unlock() })
	if !agenttest.FileIs(file("db-password"), db2)() || !agenttest.FileIs(file("api/token"), apiRaw2)() {
		t.Error("files changed while Key Vault refused")
	}
	if !a.Ready() {
		t.Error("/readyz failed while the last good files are in place")
	}
	db3 := secret("db-password")
	f.put("secrets", "db-password", kvVer{value: db3})
	a.Eventually(10*time.Second, "recovery with the newest db-password", agenttest.FileIs(file("db-password"), db3))
	a.StopCleanly()

	// A second pod whose class names a secret that does not exist.
	b := agenttest.Start(t, agenttest.Options{
		Config:       config(filepath.Join(t.TempDir(), "secrets"), 1500*time.Millisecond, append(objects, "objectName: missing\nobjectType: secret")...),
		NewProviders: providers, Pod: pod, Logs: logs,
	})
	b.FailsFirstFetch([]string{"first fetch did not complete within 1.5s", "volume secrets", "SecretProviderClass " + r.ns + "/app-secrets (provider azure)", `object "secret/missing"`, "NotFound", "HTTP 404 SecretNotFound"},
		db1, db2, db3, apiRaw1, apiRaw2, hist1, hist2, hist3, r.token)

	// The access tokens Entra issued must not have been logged either.
	f.mu.Lock()
	for tok := range f.tokens {
		logs.Secret(tok)
	}
	f.mu.Unlock()
	if n := strings.Count(logs.Text(), "azure-sdk ["); n < 10 {
		t.Errorf("only %d Azure SDK log events captured", n)
	}
	agenttest.CheckLogs(t, logs, agenttest.Expect{
		Class: r.ns + "/app-secrets", Provider: "azure",
		Objects:        []string{"db-password", "api", "history", "secret/missing", "secret/db-password", "secret/api-token"},
		FailureReasons: []provider.Reason{provider.ReasonAccessDenied, provider.ReasonThrottled, provider.ReasonNotFound},
		MinLines:       15,
	})
}
