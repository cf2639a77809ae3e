package azure

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/agent/agenttest"
	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/providertest"
	"github.com/ssinjector/ssi/internal/testing/logcheck"
)

// TestInjectedServicePrincipal is the injected path end to end: the pod's
// CSI volume names a nodePublishSecretRef; inject.Rewrite (the webhook's
// rewrite) mounts that Secret into the agent only and writes the agent
// configuration; the agent runs with that configuration (its paths moved
// into the test's directories, the Secret laid out as kubelet lays out a
// Secret volume), authenticates at the Entra fake with the Secret's client
// credentials and writes the Key Vault secret. The Secret then rotates
// (kubelet swaps ..data) together with the principal's secret at Entra, and
// the agent's next rotations use the new one. No log line holds a
// credential or a value.
func TestInjectedServicePrincipal(t *testing.T) {
	r := newRig(t)
	r.fake.mu.Lock()
	r.fake.principals[spClientID] = spSecret1
	r.fake.access[spClientID] = true
	r.fake.mu.Unlock()
	logs := logcheck.New()
	logs.Secret(spSecret1, spSecret2)
	v1, v2 := logs.NewSecret("db"), logs.NewSecret("db")
	r.fake.put("secrets", "db", kvVer{value: v1})

	class := &ssiv1.SecretProviderClass{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: "sp"}, Spec: ssiv1.SecretProviderClassSpec{
		Provider: "azure", Parameters: map[string]string{"keyvaultName": "kv-test", "tenantId": r.fake.tenant, "objects": objectsParam("objectName: db\nobjectType: secret")}}}
	ac := providertest.InjectWithSecretRef(t, class, "sp-creds")
	if len(ac.Tokens) != 0 {
		t.Fatalf("agent configuration tokens %+v, want none", ac.Tokens)
	}
	out := filepath.Join(t.TempDir(), "secrets")
	secretDir := t.TempDir()
	providertest.WriteSecretDir(t, secretDir, map[string]string{"clientid": spClientID, "clientsecret": spSecret1})
	ac.Volumes[0].Path, ac.Volumes[0].SecretsDir = out, secretDir
	ac.RotationInterval = agentconfig.Duration{Duration: 250 * time.Millisecond}
	ac.FirstFetchTimeout = agentconfig.Duration{Duration: 20 * time.Second}
	ac.HealthAddr = "127.0.0.1:0"

	a := agenttest.Start(t, agenttest.Options{Config: ac, NewProviders: func(*slog.Logger) provider.Set { return provider.NewSet(r.p) },
		Pod: identity.Pod{Namespace: r.ns, Name: "web-0", UID: "uid-1", ServiceAccount: "app"}, Logs: logs})
	a.Eventually(20*time.Second, "the first fetch", agenttest.FileIs(filepath.Join(out, "db"), v1))

	// Rotate the Secret as kubelet does, and the principal's secret with it.
	r.fake.mu.Lock()
	r.fake.principals[spClientID] = spSecret2
	r.fake.mu.Unlock()
	providertest.WriteSecretDir(t, secretDir, map[string]string{"clientid": spClientID, "clientsecret": spSecret2})
	r.fake.put("secrets", "db", kvVer{value: v2})
	a.Eventually(20*time.Second, "the new version with the rotated Secret", agenttest.FileIs(filepath.Join(out, "db"), v2))
	a.StopCleanly()
	// One client-credentials grant per Secret: the rotated one was used
	// (the fake no longer accepts the first).
	if n := r.fake.calls.Snapshot()["entra client secret"]; n != 2 {
		t.Errorf("client-secret token requests = %d, want 2", n)
	}
	logs.Check(t)
}
