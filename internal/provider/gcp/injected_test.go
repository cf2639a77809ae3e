package gcp

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/agent/agenttest"
	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/provider"
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
	yes := true
	pod := &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: "web-0"}, Spec: corev1.PodSpec{
		ServiceAccountName: "app",
		Containers:         []corev1.Container{{Name: "app", Image: "app", VolumeMounts: []corev1.VolumeMount{{Name: "secrets", MountPath: "/mnt/secrets", ReadOnly: true}}}},
		Volumes: []corev1.Volume{{Name: "secrets", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
			Driver: inject.CSIDriver, ReadOnly: &yes, VolumeAttributes: map[string]string{inject.ClassAttribute: "keyed"},
			NodePublishSecretRef: &corev1.LocalObjectReference{Name: "gcp-key"}}}}},
	}}
	cfg := inject.DefaultConfig()
	res, err := inject.Rewrite(&cfg, inject.Input{Namespace: r.ns, NamespaceLabels: map[string]string{inject.LabelInjection: inject.LabelValueEnabled},
		Pod: pod, Classes: map[string]*ssiv1.SecretProviderClass{"keyed": class}, ServiceAccount: &metav1.ObjectMeta{Name: "app", Namespace: r.ns}})
	if err != nil || res.Pod == nil {
		t.Fatalf("Rewrite: %v (skipped %q)", err, res.Skipped)
	}
	var env string
	for _, c := range append(res.Pod.Spec.InitContainers, res.Pod.Spec.Containers...) {
		for _, m := range c.VolumeMounts {
			if m.MountPath == inject.SecretsDir+"/secrets" && c.Name != inject.AgentContainerName {
				t.Errorf("container %s mounts the nodePublishSecretRef Secret", c.Name)
			}
		}
		for _, e := range c.Env {
			if c.Name == inject.AgentContainerName && e.Name == agentconfig.EnvConfig {
				env = e.Value
			}
		}
	}
	ac, err := agentconfig.Decode(env)
	if err != nil {
		t.Fatal(err)
	}
	if len(ac.Volumes) != 1 || ac.Volumes[0].SecretsDir == "" || ac.CloudOf(&ac.Volumes[0]).Credentials != identity.CredentialsNodePublishSecret {
		t.Fatalf("agent configuration volumes %+v", ac.Volumes)
	}
	out := filepath.Join(t.TempDir(), "secrets")
	secretDir := filepath.Join(t.TempDir(), "gcp-key")
	stamp := filepath.Join(secretDir, "..2026_12_03_16_00_00.1")
	if err := os.MkdirAll(stamp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stamp, KeyJSONKey), []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(stamp), filepath.Join(secretDir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/"+KeyJSONKey, filepath.Join(secretDir, KeyJSONKey)); err != nil {
		t.Fatal(err)
	}
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
