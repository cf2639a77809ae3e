package gcp

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

// TestInjectedKeyJSON is the injected path end to end for GCP: the pod's
// CSI volume names a nodePublishSecretRef; inject.Rewrite mounts it into
// the agent only and records the volume's credentials; the agent, run
// with that configuration (paths moved into the test's directories, the
// Secret laid out as kubelet lays out a Secret volume), signs a JWT with
// the Secret's key.json, exchanges it at the fake's OAuth 2.0 token
// endpoint and writes the Secret Manager secret. The private key never
// reaches a log line.
func TestInjectedKeyJSON(t *testing.T) {
	r := newRig(t)
	r.seed()
	const keyEmail = "keyed@my-project.iam.gserviceaccount.com"
	r.fake.accessors["sa:"+keyEmail] = true
	key := serviceAccountKey(t, r.fake, keyEmail)
	logs := logcheck.New()
	logs.Secret(key, "s3cr3t-db-2")

	class := &ssiv1.SecretProviderClass{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: "keyed"}, Spec: ssiv1.SecretProviderClassSpec{
		Provider: "gcp", Parameters: map[string]string{"secrets": "- resourceName: projects/my-project/secrets/db/versions/latest\n  path: db.txt\n"}}}
	ac := providertest.InjectWithSecretRef(t, class, "gcp-key")
	if ac.CloudOf(&ac.Volumes[0]).Credentials != identity.CredentialsNodePublishSecret {
		t.Fatalf("agent configuration volumes %+v", ac.Volumes)
	}
	out := filepath.Join(t.TempDir(), "secrets")
	secretDir := t.TempDir()
	providertest.WriteSecretDir(t, secretDir, map[string]string{KeyJSONKey: key})
	ac.Volumes[0].Path, ac.Volumes[0].SecretsDir = out, secretDir
	ac.FirstFetchTimeout = agentconfig.Duration{Duration: 20 * time.Second}
	ac.RotationInterval = agentconfig.Duration{Duration: 250 * time.Millisecond}
	ac.HealthAddr = "127.0.0.1:0"
	p := r.provider(true)
	a := agenttest.Start(t, agenttest.Options{Config: ac, NewProviders: func(*slog.Logger) provider.Set { return provider.NewSet(p) },
		Pod: identity.Pod{Namespace: r.ns, Name: "web-0", UID: "uid-1", ServiceAccount: "app"}, Logs: logs})
	a.Eventually(20*time.Second, "the first fetch", agenttest.FileIs(filepath.Join(out, "db.txt"), "s3cr3t-db-2"))
	a.StopCleanly()
	if n := r.fake.calls.Snapshot()["oauth2 jwt-bearer token"]; n < 1 {
		t.Errorf("jwt-bearer token requests = %d, want at least 1", n)
	}
	logs.Check(t)
}
