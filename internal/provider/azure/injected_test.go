package azure

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
	yes := true
	pod := &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: "web-0"}, Spec: corev1.PodSpec{
		ServiceAccountName: "app",
		Containers:         []corev1.Container{{Name: "app", Image: "app", VolumeMounts: []corev1.VolumeMount{{Name: "secrets", MountPath: "/mnt/secrets", ReadOnly: true}}}},
		Volumes: []corev1.Volume{{Name: "secrets", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
			Driver: inject.CSIDriver, ReadOnly: &yes, VolumeAttributes: map[string]string{inject.ClassAttribute: "sp"},
			NodePublishSecretRef: &corev1.LocalObjectReference{Name: "sp-creds"}}}}},
	}}
	cfg := inject.DefaultConfig()
	res, err := inject.Rewrite(&cfg, inject.Input{Namespace: r.ns, NamespaceLabels: map[string]string{inject.LabelInjection: inject.LabelValueEnabled},
		Pod: pod, Classes: map[string]*ssiv1.SecretProviderClass{"sp": class}, ServiceAccount: &metav1.ObjectMeta{Name: "app", Namespace: r.ns}})
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
	if len(ac.Volumes) != 1 || ac.Volumes[0].SecretsDir != inject.SecretsDir+"/secrets" || len(ac.Tokens) != 0 {
		t.Fatalf("agent configuration: volumes %+v tokens %+v", ac.Volumes, ac.Tokens)
	}
	// The pod's paths, moved into the test's directories.
	out := filepath.Join(t.TempDir(), "secrets")
	secretDir := kubeletSecretDir(t, map[string]string{"clientid": spClientID, "clientsecret": spSecret1})
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
	stamp := filepath.Join(secretDir, "..2026_12_03_16_00_00.000000002")
	if err := os.Mkdir(stamp, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(stamp, "clientid"), spClientID)
	writeFile(t, filepath.Join(stamp, "clientsecret"), spSecret2)
	if err := os.Symlink(filepath.Base(stamp), filepath.Join(secretDir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(secretDir, "..data_tmp"), filepath.Join(secretDir, "..data")); err != nil {
		t.Fatal(err)
	}
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
