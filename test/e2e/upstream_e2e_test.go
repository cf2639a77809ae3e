//go:build e2e

package e2e

// The upstream driver's e2e scenarios (kubernetes-sigs/secrets-store-csi-driver,
// test/bats/e2e-provider.bats) on this suite's real cluster, against the
// suite's Vault instead of upstream's mock provider. Each scenario runs on
// the injected path (agent sidecar, namespace labelled for injection) and,
// where it applies, on the shim path (the same namespace, pods annotated
// secrets-store-injector.io/inject: "false", served by the node CSI shim).

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/ssinjector/ssi/test/e2e/app/wire"
)

const (
	upSA        = "upstream-sa"
	upRole      = "upstream-role"
	injectAnnot = "secrets-store-injector.io/inject"
	upWatchRoot = "/mnt"
)

// upPaths are the two ways a pod's CSI volume is served.
var upPaths = []struct {
	name string
	shim bool
}{{"injected", false}, {"shim", true}}

// upNamespaces are every namespace these tests use; the Vault role is
// bound to their service account upSA.
var upNamespaces = []string{
	"up-multi-injected", "up-multi-shim",
	"up-ns-a", "up-ns-b",
	"up-nested-injected", "up-nested-shim",
	"up-sync-injected", "up-sync-shim",
	"up-neg",
	"up-rot-injected", "up-rot-shim",
	"up-opt-injected", "up-opt-shim",
	"up-revoke-on", "up-revoke-off",
}

var (
	upOnce sync.Once
	upErr  error
	upUser = "e2e-upstream-user-" + fmt.Sprint(time.Now().Unix())
)

// setupUpstream creates the namespaces (labelled for injection), their
// service account, the Vault values and a Vault role bound to them.
func setupUpstream(t *testing.T) {
	t.Helper()
	setupSeed(t)
	upOnce.Do(func() { upErr = doSetupUpstream(context.Background()) })
	if upErr != nil {
		t.Fatalf("upstream setup: %v", upErr)
	}
}

func doSetupUpstream(ctx context.Context) error {
	cs := cl.Clientset
	for _, ns := range upNamespaces {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{injectionLabel: "enabled"}}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: upSA}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	for path, v := range map[string]string{
		"myapp/up-user":  upUser,
		"myapp/up-ns-a":  "value-of-namespace-up-ns-a",
		"myapp/up-ns-b":  "value-of-namespace-up-ns-b",
		"myapp/up-rot-1": "secret",
		"myapp/up-rot-2": "secret",
	} {
		if err := vault.Put(ctx, path, map[string]any{"username": v}); err != nil {
			return err
		}
	}
	return vault.Role(ctx, upRole, []string{upSA}, upNamespaces, "app-policy")
}

// upObject is one Vault object of a class: the file objectName from the
// key username at secret/data/<path>.
type upObject struct{ objectName, path string }

// upSecret is one secretObjects entry with one data key, username.
type upSecret struct {
	name, objectName string
	labels           map[string]string
	annotations      map[string]string
}

// upClass is a Vault SecretProviderClass of the suite's Vault.
func upClass(ns, name string, objects []upObject, secrets ...upSecret) *unstructured.Unstructured {
	var b strings.Builder
	for _, o := range objects {
		fmt.Fprintf(&b, "- objectName: %q\n  secretPath: \"secret/data/%s\"\n  secretKey: \"username\"\n", o.objectName, o.path)
	}
	spec := map[string]any{
		"provider": "vault",
		"parameters": map[string]any{
			"vaultAddress": "http://vault.vault.svc:8200",
			"roleName":     upRole,
			"objects":      b.String(),
		},
	}
	var sos []any
	for _, s := range secrets {
		so := map[string]any{
			"secretName": s.name, "type": "Opaque",
			"data": []any{map[string]any{"objectName": s.objectName, "key": "username"}},
		}
		if s.labels != nil {
			so["labels"] = toAny(s.labels)
		}
		if s.annotations != nil {
			so["annotations"] = toAny(s.annotations)
		}
		sos = append(sos, so)
	}
	if len(sos) > 0 {
		spec["secretObjects"] = sos
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     spec,
	}}
}

func toAny(m map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func applyClasses(t *testing.T, objs ...*unstructured.Unstructured) {
	t.Helper()
	if err := applyObjects(context.Background(), objs); err != nil {
		t.Fatal(err)
	}
}

// upPodSpec is the test application watching /mnt, with one read-only
// CSI volume per class mounted at /mnt/secrets-store-<i> (upstream's
// layout), and env from synced Secrets (name → Secret, key username).
func upPodSpec(classes []string, env map[string]string) corev1.PodSpec {
	spec := corev1.PodSpec{
		ServiceAccountName: upSA,
		Containers: []corev1.Container{{
			Name: "app", Image: "myapp:latest",
			Env: []corev1.EnvVar{{Name: "WATCH_DIR", Value: upWatchRoot}},
		}},
	}
	var report []string
	for n, secret := range env {
		report = append(report, n)
		spec.Containers[0].Env = append(spec.Containers[0].Env, corev1.EnvVar{Name: n, ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: "username"},
		}})
	}
	sort.Strings(report)
	if len(report) > 0 {
		spec.Containers[0].Env = append(spec.Containers[0].Env, corev1.EnvVar{Name: "REPORT_ENV", Value: strings.Join(report, ",")})
	}
	for i, c := range classes {
		v := csiVolume(c)
		v.Name = fmt.Sprintf("secrets-store-%d", i)
		spec.Volumes = append(spec.Volumes, v)
		spec.Containers[0].VolumeMounts = append(spec.Containers[0].VolumeMounts, corev1.VolumeMount{
			Name: v.Name, MountPath: fmt.Sprintf("%s/secrets-store-%d", upWatchRoot, i), ReadOnly: true,
		})
	}
	return spec
}

func upAnnotations(shim bool) map[string]string {
	if shim {
		return map[string]string{injectAnnot: "false"}
	}
	return nil
}

func upPod(ns, name string, shim bool, classes []string, env map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"e2e": name}, Annotations: upAnnotations(shim)},
		Spec:       upPodSpec(classes, env),
	}
}

// checkPath asserts how a Ready pod was served: rewritten with an agent
// on the injected path, left alone with its CSI volumes on the shim path.
func checkPath(t *testing.T, p *corev1.Pod, shim bool) {
	t.Helper()
	if shim {
		if injected(p) || agentContainer(p) != nil {
			t.Fatalf("pod %s annotated inject=false was rewritten: %v", p.Name, p.Annotations)
		}
		for _, v := range p.Spec.Volumes {
			if strings.HasPrefix(v.Name, "secrets-store-") && v.CSI == nil {
				t.Fatalf("CSI volume %s replaced on the shim path", v.Name)
			}
		}
		return
	}
	if !injected(p) || agentContainer(p) == nil {
		t.Fatalf("pod %s not injected: %v", p.Name, p.Annotations)
	}
}

// runReady creates the pod, waits for Ready, checks the path and returns
// what the application reads.
func runReady(t *testing.T, p *corev1.Pod, shim bool) *wire.State {
	t.Helper()
	createPod(t, p)
	got := waitPod(t, p.Namespace, p.Name, 2*time.Minute, "to be Ready", podReady)
	checkPath(t, got, shim)
	st, err := getAppState(context.Background(), p.Namespace, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func wantFiles(t *testing.T, st *wire.State, want map[string]string) {
	t.Helper()
	for f, v := range want {
		if got, ok := st.Files[f]; !ok || got != v {
			t.Errorf("file %s: present %v, content matches %v (files: %v)", f, ok, got == v, keys(st.Files))
		}
	}
}

// waitSecret waits until the Secret exists and cond holds for it.
func waitSecret(t *testing.T, ns, name string, timeout time.Duration, what string, cond func(*corev1.Secret) bool) *corev1.Secret {
	t.Helper()
	var sec *corev1.Secret
	var lastErr error
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		s, err := cl.Clientset.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			lastErr = err
			return false, nil
		}
		sec = s
		return cond(s), nil
	})
	if err != nil {
		var owners []string
		if sec != nil {
			owners = ownerNames(sec)
		}
		t.Fatalf("Secret %s/%s: %s: not within %s (last error %v, owners %v)", ns, name, what, timeout, lastErr, owners)
	}
	return sec
}

func waitSecretGone(t *testing.T, ns, name string, timeout time.Duration) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		_, err := cl.Clientset.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("Secret %s/%s still exists after %s", ns, name, timeout)
	}
}

func ownerNames(s *corev1.Secret) []string {
	var out []string
	for _, o := range s.OwnerReferences {
		out = append(out, o.Kind+"/"+o.Name)
	}
	sort.Strings(out)
	return out
}

func ownersAre(want ...string) func(*corev1.Secret) bool {
	sort.Strings(want)
	return func(s *corev1.Secret) bool {
		return strings.Join(ownerNames(s), ",") == strings.Join(want, ",")
	}
}

// Upstream "deploy pod with multiple secret provider class" / "CSI inline
// volume test with multiple secret provider class": one pod mounts two
// classes; each volume holds its class's files, each class syncs its own
// Secret, owned by the pod alone (upstream: owner count 1).
func TestUpstreamMultipleClasses(t *testing.T) {
	setupUpstream(t)
	for _, path := range upPaths {
		t.Run(path.name, func(t *testing.T) {
			ns := "up-multi-" + path.name
			applyClasses(t,
				upClass(ns, "e2e-provider-spc-0", []upObject{{"username", "myapp/up-user"}}, upSecret{name: "foosecret-0", objectName: "username"}),
				upClass(ns, "e2e-provider-spc-1", []upObject{{"username", "myapp/up-user"}, {"api-token", "myapp/up-ns-a"}}, upSecret{name: "foosecret-1", objectName: "username"}),
			)
			p := upPod(ns, "secrets-store-inline-multiple-crd", path.shim, []string{"e2e-provider-spc-0", "e2e-provider-spc-1"},
				map[string]string{"SECRET_USERNAME_0": "foosecret-0", "SECRET_USERNAME_1": "foosecret-1"})
			st := runReady(t, p, path.shim)
			wantFiles(t, st, map[string]string{
				"secrets-store-0/username":  upUser,
				"secrets-store-1/username":  upUser,
				"secrets-store-1/api-token": "value-of-namespace-up-ns-a",
			})
			if _, ok := st.Files["secrets-store-0/api-token"]; ok {
				t.Errorf("volume of class spc-0 holds spc-1's object api-token")
			}
			for _, n := range []string{"SECRET_USERNAME_0", "SECRET_USERNAME_1"} {
				if st.Env[n] != upUser {
					t.Errorf("env %s from the synced Secret: matches %v", n, st.Env[n] == upUser)
				}
			}
			for _, s := range []string{"foosecret-0", "foosecret-1"} {
				sec := waitSecret(t, ns, s, time.Minute, "owned by the pod alone", ownersAre("Pod/"+p.Name))
				if string(sec.Data["username"]) != upUser {
					t.Errorf("Secret %s: username differs from the Vault value", s)
				}
			}
		})
	}
}

// Upstream "Test Namespaced scope SecretProviderClass": a class of the
// same name in two namespaces; a pod in each reads its own namespace's
// class (different Vault paths), and each namespace's synced Secret holds
// its own value, owned by that namespace's pods only.
func TestUpstreamNamespacedClass(t *testing.T) {
	setupUpstream(t)
	const class = "e2e-provider-sync"
	for _, ns := range []string{"up-ns-a", "up-ns-b"} {
		applyClasses(t, upClass(ns, class, []upObject{{"username", "myapp/" + ns}}, upSecret{name: "foosecret", objectName: "username"}))
	}
	for _, ns := range []string{"up-ns-a", "up-ns-b"} {
		want := "value-of-namespace-" + ns
		var names []string
		// Both pods of the namespace live until the test ends (a subtest's
		// cleanup would delete the first before the owners are counted).
		for _, path := range upPaths {
			name := "busybox-" + path.name
			names = append(names, "Pod/"+name)
			st := runReady(t, upPod(ns, name, path.shim, []string{class}, map[string]string{"SECRET_USERNAME": "foosecret"}), path.shim)
			wantFiles(t, st, map[string]string{"secrets-store-0/username": want})
			if st.Env["SECRET_USERNAME"] != want {
				t.Errorf("%s/%s (%s path): env SECRET_USERNAME is not %s's value", ns, name, path.name, ns)
			}
		}
		sec := waitSecret(t, ns, "foosecret", time.Minute, "owned by this namespace's two pods", ownersAre(names...))
		if string(sec.Data["username"]) != want {
			t.Errorf("Secret %s/foosecret holds another namespace's value", ns)
		}
	}
}

// Nested object paths: objectName with subdirectories (upstream's
// "nested" objects, e.g. Azure objectAlias / GCP path "dir/file") land in
// subdirectories of the volume, and a synced Secret reads them by that
// path.
func TestUpstreamNestedPaths(t *testing.T) {
	setupUpstream(t)
	const class = "nested-paths"
	for _, path := range upPaths {
		t.Run(path.name, func(t *testing.T) {
			ns := "up-nested-" + path.name
			applyClasses(t, upClass(ns, class, []upObject{
				{"top", "myapp/up-user"},
				{"level1/username", "myapp/up-user"},
				{"level1/level2/level3/api-token", "myapp/up-ns-b"},
			}, upSecret{name: "nested-secret", objectName: "level1/level2/level3/api-token"}))
			st := runReady(t, upPod(ns, "nested", path.shim, []string{class}, nil), path.shim)
			wantFiles(t, st, map[string]string{
				"secrets-store-0/top":                            upUser,
				"secrets-store-0/level1/username":                upUser,
				"secrets-store-0/level1/level2/level3/api-token": "value-of-namespace-up-ns-b",
			})
			sec := waitSecret(t, ns, "nested-secret", time.Minute, "synced", func(*corev1.Secret) bool { return true })
			if string(sec.Data["username"]) != "value-of-namespace-up-ns-b" {
				t.Errorf("Secret nested-secret: username is not the nested object's content")
			}
		})
	}
}

func upDeployment(ns, name string, shim bool, class string) *appsv1.Deployment {
	labels := map[string]string{"app": "busybox", "e2e": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: upAnnotations(shim)},
				Spec:       upPodSpec([]string{class}, map[string]string{"SECRET_USERNAME": "foosecret"}),
			},
		},
	}
}

// replicaSetOf returns "ReplicaSet/<name>" of the Deployment's current
// ReplicaSet.
func replicaSetOf(t *testing.T, ns, deployment string) string {
	t.Helper()
	pods := listPods(t, ns, map[string]string{"e2e": deployment})
	if len(pods) != 1 {
		t.Fatalf("deployment %s: %d pods", deployment, len(pods))
	}
	for _, o := range pods[0].OwnerReferences {
		if o.Kind == "ReplicaSet" {
			return "ReplicaSet/" + o.Name
		}
	}
	t.Fatalf("pod %s has no ReplicaSet owner", pods[0].Name)
	return ""
}

// Upstream "Sync with K8s secrets": two Deployments mount one class with
// secretObjects (labels, annotations). The synced Secret carries them plus
// the managed label, its owner references are the ReplicaSets of both
// Deployments (upstream: owner count 2); deleting one Deployment leaves
// one owner, deleting the other deletes the Secret.
func TestUpstreamSyncTwoDeployments(t *testing.T) {
	setupUpstream(t)
	const class = "e2e-provider-sync"
	for _, path := range upPaths {
		t.Run(path.name, func(t *testing.T) {
			ctx := context.Background()
			ns := "up-sync-" + path.name
			applyClasses(t, upClass(ns, class, []upObject{{"username", "myapp/up-user"}}, upSecret{
				name: "foosecret", objectName: "username",
				labels:      map[string]string{"environment": "test"},
				annotations: map[string]string{"e2e.example.com/owner": "team-a"},
			}))
			deps := []string{"busybox-deployment", "busybox-deployment-two"}
			for _, d := range deps {
				if _, err := cl.Clientset.AppsV1().Deployments(ns).Create(ctx, upDeployment(ns, d, path.shim, class), metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			var rss []string
			for _, d := range deps {
				waitDeployment(t, ns, d, 1, 3*time.Minute)
				pod := listPods(t, ns, map[string]string{"e2e": d})[0]
				checkPath(t, &pod, path.shim)
				st, err := getAppState(ctx, ns, pod.Name)
				if err != nil {
					t.Fatal(err)
				}
				wantFiles(t, st, map[string]string{"secrets-store-0/username": upUser})
				if st.Env["SECRET_USERNAME"] != upUser {
					t.Errorf("%s: env SECRET_USERNAME from the synced Secret differs from the Vault value", d)
				}
				rss = append(rss, replicaSetOf(t, ns, d))
			}
			sec := waitSecret(t, ns, "foosecret", time.Minute, "owned by both ReplicaSets", ownersAre(rss...))
			if string(sec.Data["username"]) != upUser {
				t.Errorf("Secret foosecret: username differs from the Vault value")
			}
			if sec.Labels["environment"] != "test" || sec.Labels["secrets-store.csi.k8s.io/managed"] != "true" {
				t.Errorf("Secret foosecret labels: %v", sec.Labels)
			}
			if sec.Annotations["e2e.example.com/owner"] != "team-a" {
				t.Errorf("Secret foosecret annotations: %v", sec.Annotations)
			}
			for _, o := range sec.OwnerReferences {
				if o.APIVersion != "apps/v1" || o.UID == "" || o.Controller != nil || o.BlockOwnerDeletion != nil {
					t.Errorf("owner reference %+v: want apiVersion apps/v1, a uid, no controller/blockOwnerDeletion (as upstream)", o)
				}
			}

			del := func(d string) {
				if err := cl.Clientset.AppsV1().Deployments(ns).Delete(ctx, d, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
					t.Fatal(err)
				}
			}
			del(deps[0])
			waitSecret(t, ns, "foosecret", 2*time.Minute, "owned by the second ReplicaSet only", ownersAre(rss[1]))
			del(deps[1])
			waitSecretGone(t, ns, "foosecret", 2*time.Minute)
		})
	}
}

// Upstream "Should fail when no secret provider class in same namespace":
// the class exists in another namespace only. Injected path: the webhook
// denies the pod, naming the class and namespace. Shim path: kubelet's
// FailedMount event carries upstream's phrase
// "failed to get secretproviderclass NS/NAME, error: ... not found".
func TestUpstreamClassMissingInNamespace(t *testing.T) {
	setupUpstream(t)
	ctx := context.Background()
	const ns, class = "up-neg", "e2e-provider-sync"
	// The class exists, but elsewhere.
	applyClasses(t, upClass("up-ns-a", class, []upObject{{"username", "myapp/up-ns-a"}}))

	t.Run("injected", func(t *testing.T) {
		p := upPod(ns, "busybox-injected", false, []string{class}, nil)
		_, err := cl.Clientset.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err == nil {
			_ = cl.Clientset.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
			t.Fatal("pod naming a class missing from its namespace was admitted")
		}
		msg := err.Error()
		t.Logf("admission: %s", msg)
		want := fmt.Sprintf("SecretProviderClass %q not found in namespace %q", class, ns)
		if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) && !strings.Contains(msg, "denied") {
			t.Errorf("not an admission denial: %v", err)
		}
		if !strings.Contains(msg, want) {
			t.Errorf("denial does not say %s: %s", want, msg)
		}
	})
	t.Run("shim", func(t *testing.T) {
		p := createPod(t, upPod(ns, "busybox-shim", true, []string{class}, nil))
		prefix := fmt.Sprintf("failed to get secretproviderclass %s/%s, error: ", ns, class)
		var mount []string
		err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 90*time.Second, true, func(context.Context) (bool, error) {
			mount = nil
			for _, e := range podEvents(ns, p.Name) {
				if e.Reason == "FailedMount" {
					mount = append(mount, e.Message)
				}
			}
			return len(mount) > 0, nil
		})
		if err != nil {
			t.Fatalf("no FailedMount event:\n%s", describe(ns, p.Name))
		}
		t.Logf("FailedMount: %s", mount[0])
		ok := false
		for _, m := range mount {
			if i := strings.Index(m, prefix); i >= 0 && strings.Contains(m[i:], "not found") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("FailedMount does not carry upstream's %q...not found: %q", prefix, mount)
		}
		if got, _ := cl.Clientset.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{}); got != nil && got.Status.Phase == corev1.PodRunning {
			t.Errorf("pod runs without its volume")
		}
	})
}

// Upstream "Test auto rotation of mount contents and K8s secrets": a
// value changed in the backend reaches both the mounted file and the
// synced Secret. Upstream waits a fixed 120s with a 60s poll; here the
// suite's rotation interval is 10s, and the time is printed.
func TestUpstreamRotationMountAndSecret(t *testing.T) {
	setupUpstream(t)
	var wg sync.WaitGroup
	for i, path := range upPaths {
		t.Run(path.name, func(t *testing.T) {
			ctx := context.Background()
			ns := "up-rot-" + path.name
			vpath := fmt.Sprintf("myapp/up-rot-%d", i+1)
			applyClasses(t, upClass(ns, "e2e-provider-rotation", []upObject{{"username", vpath}}, upSecret{name: "rotationsecret", objectName: "username"}))
			p := upPod(ns, "secrets-store-inline-rotation", path.shim, []string{"e2e-provider-rotation"}, nil)
			st := runReady(t, p, path.shim)
			wantFiles(t, st, map[string]string{"secrets-store-0/username": "secret"})
			waitSecret(t, ns, "rotationsecret", time.Minute, `to hold "secret"`, func(s *corev1.Secret) bool { return string(s.Data["username"]) == "secret" })

			start := time.Now()
			if err := vault.Put(ctx, vpath, map[string]any{"username": "rotated"}); err != nil {
				t.Fatal(err)
			}
			limit := 3*rotationInterval + 30*time.Second
			var fileAt, secretAt time.Duration
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, limit, true, func(ctx context.Context) (bool, error) {
					s, err := getAppState(ctx, ns, p.Name)
					return err == nil && s.Files["secrets-store-0/username"] == "rotated", nil
				})
				fileAt = time.Since(start)
			}()
			waitSecret(t, ns, "rotationsecret", limit, `to hold "rotated"`, func(s *corev1.Secret) bool { return string(s.Data["username"]) == "rotated" })
			secretAt = time.Since(start)
			wg.Wait()
			if fileAt >= limit {
				t.Fatalf("the mounted file did not rotate within %s", limit)
			}
			fmt.Printf("e2e: upstream rotation (%s): file in %s, synced Secret in %s (rotation interval %s)\n",
				path.name, fileAt.Round(time.Millisecond), secretAt.Round(time.Millisecond), rotationInterval)
		})
	}
}
