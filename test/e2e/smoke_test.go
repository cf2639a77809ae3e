//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/ssinjector/ssi/test/e2e/app/wire"
	"github.com/ssinjector/ssi/test/e2e/cluster"
)

// TestClusterSmoke proves the cluster runs what the product relies on: a
// native sidecar (an init container with restartPolicy Always) that starts
// before the app container and does not keep the pod from completing, an
// in-memory emptyDir, a projected service-account token with a custom
// audience, cluster DNS, and the API server through the kubernetes
// Service.
func TestClusterSmoke(t *testing.T) {
	ctx := context.Background()
	const ns = "e2e-smoke"
	namespace(t, ns, nil)
	probe := &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/app", "once"}}},
		PeriodSeconds:    1,
		FailureThreshold: 30,
	}
	env := []corev1.EnvVar{{Name: "MARKER", Value: "/work/marker"}, {Name: "WATCH_DIR", Value: "/work"}, {Name: "EXPECT_FILES", Value: "marker"}}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			InitContainers: []corev1.Container{{
				Name: "sidecar", Image: cluster.AppImage, ImagePullPolicy: corev1.PullIfNotPresent,
				Args: []string{"sidecar"}, Env: env, RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
				StartupProbe: probe,
				VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/work"}},
			}},
			Containers: []corev1.Container{{
				Name: "main", Image: cluster.AppImage, ImagePullPolicy: corev1.PullIfNotPresent,
				Args: []string{"smoke"},
				Env:  append(env, corev1.EnvVar{Name: "TOKEN_FILE", Value: "/var/run/secrets/tokens/vault-token"}),
				VolumeMounts: []corev1.VolumeMount{
					{Name: "work", MountPath: "/work"},
					{Name: "token", MountPath: "/var/run/secrets/tokens", ReadOnly: true},
				},
			}},
			Volumes: []corev1.Volume{
				{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
				{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
					ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "vault", ExpirationSeconds: ptr.To(int64(600)), Path: "vault-token"},
				}}}}},
			},
		},
	}
	// The default service account appears shortly after the namespace.
	waitServiceAccount(t, ns, "default")
	start := time.Now()
	if _, err := cl.Clientset.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	var readyAt time.Duration
	done := waitPod(t, ns, "smoke", 3*time.Minute, "to succeed", func(p *corev1.Pod) bool {
		if readyAt == 0 && podReady(p) {
			readyAt = time.Since(start)
		}
		if p.Status.Phase == corev1.PodFailed {
			t.Fatalf("smoke pod failed:\n%s\nmain log:\n%s", describe(ns, "smoke"), podLogs(t, ns, "smoke", "main"))
		}
		return p.Status.Phase == corev1.PodSucceeded
	})
	succeeded := time.Since(start)

	out := podLogs(t, ns, "smoke", "main")
	var r wire.SmokeResult
	line := strings.TrimSpace(out)
	if i := strings.LastIndex(line, "\n"); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("main printed %q: %v", out, err)
	}
	user := "system:serviceaccount:" + ns + ":default"
	checks := map[string]struct{ got, want any }{
		"sidecar wrote its marker before main started": {r.MarkerFromSidecar, true},
		"emptyDir medium Memory is tmpfs":              {r.MarkerFSType, "tmpfs"},
		"projected token audience":                     {r.ProjectedAudience, "vault"},
		"API via the kubernetes Service IP":            {r.APIByServiceIP, user},
		"API via kubernetes.default.svc":               {r.APIByDNS, user},
		"cluster DNS resolves kubernetes.default.svc":  {r.ResolvedService, "10.0.0.1"},
	}
	for name, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s: got %v, want %v", name, c.got, c.want)
		}
	}
	if len(r.Errors) > 0 {
		t.Errorf("smoke errors: %v", r.Errors)
	}
	// The sidecar started first and was stopped after main completed.
	var sidecar, main *corev1.ContainerStatus
	for i := range done.Status.InitContainerStatuses {
		sidecar = &done.Status.InitContainerStatuses[i]
	}
	for i := range done.Status.ContainerStatuses {
		main = &done.Status.ContainerStatuses[i]
	}
	if sidecar == nil || main == nil || sidecar.State.Terminated == nil || main.State.Terminated == nil {
		t.Fatalf("want both containers terminated:\n%s", describe(ns, "smoke"))
	}
	if sidecar.State.Terminated.StartedAt.After(main.State.Terminated.StartedAt.Time) {
		t.Errorf("sidecar started at %s, after main at %s", sidecar.State.Terminated.StartedAt, main.State.Terminated.StartedAt)
	}
	if main.State.Terminated.ExitCode != 0 {
		t.Errorf("main exit code %d", main.State.Terminated.ExitCode)
	}
	if ip := net.ParseIP(done.Status.PodIP); ip == nil || !strings.HasPrefix(done.Status.PodIP, "10.213.0.") {
		t.Errorf("pod IP %q is not on the bridge network %s", done.Status.PodIP, cluster.PodCIDR)
	}
	t.Logf("smoke pod: created to Ready %s, to Succeeded %s", readyAt.Round(time.Millisecond), succeeded.Round(time.Millisecond))
	fmt.Printf("e2e: smoke pod (native sidecar, memory emptyDir, projected token): created to Ready %s, to Succeeded %s\n",
		readyAt.Round(time.Millisecond), succeeded.Round(time.Millisecond))
}

// TestVaultReachableFromPods checks that vault.vault.svc:8200 resolves and
// reaches the real Vault from a pod, and that Vault's Kubernetes auth
// accepts a pod's service-account token (TokenReview against this
// cluster): the path every Vault test relies on.
func TestVaultReachableFromPods(t *testing.T) {
	ctx := context.Background()
	const ns = "e2e-vault"
	namespace(t, ns, nil)
	waitServiceAccount(t, ns, "default")
	if err := vault.Role(ctx, "e2e-probe", []string{"default"}, []string{ns}, "app-policy"); err != nil {
		t.Fatal(err)
	}
	if err := vault.Put(ctx, "myapp/probe", map[string]any{"value": "reachable"}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "vault-probe", Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "probe", Image: cluster.AppImage, ImagePullPolicy: corev1.PullIfNotPresent,
				Args: []string{"vault-login"},
				Env: []corev1.EnvVar{
					{Name: "VAULT_ADDR", Value: "http://vault.vault.svc:8200"},
					{Name: "VAULT_ROLE", Value: "e2e-probe"},
					{Name: "VAULT_PATH", Value: "secret/data/myapp/probe"},
				},
			}},
		},
	}
	if _, err := cl.Clientset.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	waitPod(t, ns, "vault-probe", 2*time.Minute, "to complete", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	out := podLogs(t, ns, "vault-probe", "probe")
	if !strings.Contains(out, `"value":"reachable"`) {
		t.Fatalf("pod did not read the secret through Vault's Kubernetes auth; log:\n%s\n%s", out, describe(ns, "vault-probe"))
	}
}

func waitServiceAccount(t *testing.T, ns, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := cl.Clientset.CoreV1().ServiceAccounts(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("service account %s/%s: %v", ns, name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
