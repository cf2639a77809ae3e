//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
)

// capsNamespace is the attacker's namespace; like plainNamespace it is
// not enabled for injection, so the node shim serves its pods.
const capsNamespace = "e2e-caps-attacker"

// capsHugeValue is larger than the shim's response cap (4 MiB + 2 MiB +
// 64 KiB by default) and below Vault's request size limit (32 MiB).
const capsHugeValue = 8 << 20

// TestOversizedClassDoesNotStopOtherTenants (issue 14, finding 1): an
// attacker's classes on the node — one whose vaultCACertPath is /dev/zero,
// one whose Vault value is 8 MiB — fail their own pods' mounts with events
// that name the parameter or the limit, the node shim is not restarted
// (no OOM kill), and a second tenant's pod on the same node starts and
// rotates meanwhile.
func TestOversizedClassDoesNotStopOtherTenants(t *testing.T) {
	setupSeed(t)
	ctx := context.Background()
	cs := cl.Clientset
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: capsNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(capsNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: seedSA}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := vault.Put(ctx, "myapp/huge", map[string]any{"v": strings.Repeat("H", capsHugeValue)}); err != nil {
		t.Fatal(err)
	}
	if err := vault.Role(ctx, "caps-attacker", []string{seedSA}, []string{capsNamespace}, "app-policy"); err != nil {
		t.Fatal(err)
	}
	class := func(name string, params map[string]any) *unstructured.Unstructured {
		p := map[string]any{"vaultAddress": "http://vault.vault.svc:8200", "roleName": "caps-attacker"}
		for k, v := range params {
			p[k] = v
		}
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
			"metadata": map[string]any{"name": name, "namespace": capsNamespace},
			"spec":     map[string]any{"provider": "vault", "parameters": p},
		}}
	}
	attacks := map[string]struct {
		class *unstructured.Unstructured
		want  string // in the pod's FailedMount event
	}{
		"dev-zero": {class("dev-zero", map[string]any{"vaultCACertPath": "/dev/zero",
			"objects": "- objectName: db-password\n  secretPath: secret/data/myapp/database\n  secretKey: password\n"}), "parameters.vaultCACertPath"},
		"huge": {class("huge", map[string]any{
			"objects": "- objectName: db-password\n  secretPath: secret/data/myapp/huge\n  secretKey: v\n"}), "larger than the limit of"},
	}
	restarts := capsShimRestarts(t)
	for name, a := range attacks {
		if err := applyObjects(ctx, []*unstructured.Unstructured{a.class}); err != nil {
			t.Fatal(err)
		}
		createPod(t, appPod(capsNamespace, "attack-"+name, name))
	}

	// The second tenant's pod, on the same (only) node, while the
	// attacker's mounts are retried by kubelet.
	p := createPod(t, appPod(plainNamespace, "caps-victim", seedClass))
	waitPod(t, plainNamespace, p.Name, 2*time.Minute, "to be Ready next to the attacker's pods", podReady)
	st, err := getAppState(ctx, plainNamespace, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files["db-password"] != currentPassword() {
		t.Fatalf("the second tenant's files: %v", keys(st.Files))
	}

	for name, a := range attacks {
		pod := "attack-" + name
		var text string
		err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			text = describe(capsNamespace, pod)
			return strings.Contains(text, "FailedMount") && strings.Contains(text, a.want), nil
		})
		if err != nil {
			t.Errorf("%s: no FailedMount event saying %q:\n%s", pod, a.want, text)
			continue
		}
		if strings.Contains(text, "HHHH") {
			t.Errorf("%s: the event quotes the value", pod)
		}
		if got, _ := cs.CoreV1().Pods(capsNamespace).Get(ctx, pod, metav1.GetOptions{}); got != nil && got.Status.Phase == corev1.PodRunning {
			t.Errorf("%s runs without its volume", pod)
		}
	}

	// The second tenant rotates while the attacker's pods keep failing.
	start := time.Now()
	v := rotatePassword(t)
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		s, err := getAppState(ctx, plainNamespace, p.Name)
		return err == nil && s.Files["db-password"] == v, nil
	})
	if err != nil {
		t.Fatalf("the second tenant's volume did not rotate within 2m while the attack ran")
	}
	fmt.Printf("e2e: the second tenant rotated in %s next to the attacker's classes\n", time.Since(start).Round(time.Millisecond))
	if now := capsShimRestarts(t); now != restarts {
		t.Errorf("the node shim restarted during the attack (%d restarts before, %d after): OOM-killed?", restarts, now)
	}
}

// capsShimRestarts is the sum of the node shim pods' container restarts.
func capsShimRestarts(t *testing.T) int32 {
	t.Helper()
	pods, err := cl.Clientset.CoreV1().Pods(productNamespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var n int32
	found := false
	for _, p := range pods.Items {
		if !strings.HasPrefix(p.Name, nodeDaemonSet+"-") {
			continue
		}
		found = true
		for _, s := range p.Status.ContainerStatuses {
			n += s.RestartCount
		}
	}
	if !found {
		t.Fatalf("no %s pod in %s", nodeDaemonSet, productNamespace)
	}
	return n
}
