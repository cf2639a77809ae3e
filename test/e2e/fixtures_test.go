//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ssinjector/ssi/internal/chart"
	"github.com/ssinjector/ssi/internal/testing/testenv"
	"github.com/ssinjector/ssi/test/e2e/app/wire"
	"github.com/ssinjector/ssi/test/e2e/cluster"
)

// Names from the seed guide and the suite's own namespaces.
const (
	seedNamespace  = "production"
	seedSA         = "app-service-account"
	seedClass      = "vault-secrets"
	seedDeployment = "app-with-secrets"
	plainNamespace = "e2e-plain" // not enabled for injection
	injectionLabel = "secrets-store-injector.io/injection"
	statusAnnot    = "secrets-store-injector.io/status"
	appPort        = 8080
)

// Values in the e2e Vault. They are test data; the suite checks that none
// of them shows up where secrets must not (events, pod status).
var (
	secretsMu  sync.Mutex
	dbPassword = "e2e-db-password-" + fmt.Sprint(time.Now().Unix())
	apiToken   = "e2e-api-token-" + fmt.Sprint(time.Now().Unix())
	apiKey     = "e2e-api-key-from-synced-secret"
)

func currentPassword() string {
	secretsMu.Lock()
	defer secretsMu.Unlock()
	return dbPassword
}

// rotatePassword writes a new db-password into Vault and returns it.
func rotatePassword(t *testing.T) string {
	t.Helper()
	secretsMu.Lock()
	defer secretsMu.Unlock()
	v := fmt.Sprintf("e2e-db-password-%d", time.Now().UnixNano())
	if err := vault.Put(context.Background(), "myapp/database", map[string]any{"password": v}); err != nil {
		t.Fatal(err)
	}
	dbPassword = v
	return v
}

func seedFile(name string) string {
	return filepath.Join(testenv.RepoRoot(), "test", "testdata", "seed", name)
}

var (
	seedOnce sync.Once
	seedErr  error
)

// setupSeed prepares what the seed guide assumes exists, then applies the
// guide's Vault SecretProviderClass unchanged:
//   - namespace production, labelled for injection;
//   - the service account app-service-account;
//   - Vault: the secrets the class names and the guide's
//     `vault write auth/kubernetes/role/app-role ...` (bound to the guide's
//     service account and namespace, plus the suite's other namespaces);
//   - the Secret app-secrets the guide's Deployment reads API_KEY from
//     (in the guide it comes from the AWS class's sync).
func setupSeed(t *testing.T) {
	t.Helper()
	requireProduct(t)
	seedOnce.Do(func() { seedErr = doSetupSeed(context.Background()) })
	if seedErr != nil {
		t.Fatalf("seed setup: %v", seedErr)
	}
}

func doSetupSeed(ctx context.Context) error {
	cs := cl.Clientset
	for ns, labels := range map[string]map[string]string{
		seedNamespace:  {injectionLabel: "enabled"},
		plainNamespace: nil,
	} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: seedSA}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	if err := vault.Put(ctx, "myapp/database", map[string]any{"password": currentPassword()}); err != nil {
		return err
	}
	if err := vault.Put(ctx, "myapp/api", map[string]any{"token": apiToken}); err != nil {
		return err
	}
	if err := vault.Role(ctx, "app-role", []string{seedSA, "default"}, []string{seedNamespace, plainNamespace}, "app-policy"); err != nil {
		return err
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app-secrets", Namespace: seedNamespace}, StringData: map[string]string{"api-key": apiKey}}
	if _, err := cs.CoreV1().Secrets(seedNamespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		return err
	}
	// The guide's class, byte for byte, in production; the same class in
	// the namespace that is not enabled (only metadata.namespace differs).
	if err := applyFile(ctx, seedFile("vault-secret-provider.yaml")); err != nil {
		return err
	}
	objs, err := readSeed("vault-secret-provider.yaml")
	if err != nil {
		return err
	}
	objs[0].SetNamespace(plainNamespace)
	return applyObjects(ctx, objs)
}

func readSeed(name string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(seedFile(name))
	if err != nil {
		return nil, err
	}
	return chart.Split(data)
}

func getAppState(ctx context.Context, ns, pod string) (*wire.State, error) {
	b, err := proxyGet(ctx, ns, pod, appPort, "state")
	if err != nil {
		return nil, err
	}
	var s wire.State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("state of %s/%s: %w", ns, pod, err)
	}
	return &s, nil
}

// csiVolume is the seed guide's volume for a class.
func csiVolume(class string) corev1.Volume {
	ro := true
	return corev1.Volume{Name: "secrets-store", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
		Driver: csiDriverName, ReadOnly: &ro, VolumeAttributes: map[string]string{"secretProviderClass": class},
	}}}
}

// appPod is a pod like the seed Deployment's: the test application
// watching /mnt/secrets from the class's CSI volume (class "" for none).
func appPod(ns, name, class string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"e2e": name}},
		Spec: corev1.PodSpec{
			ServiceAccountName: seedSA,
			Containers: []corev1.Container{{
				Name: "app", Image: "myapp:latest",
				Env: []corev1.EnvVar{{Name: "DB_PASSWORD_FILE", Value: "/mnt/secrets/db-password"}},
			}},
		},
	}
	if class == "" {
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "WATCH_DIR", Value: "/tmp"}}
		return p
	}
	p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "secrets-store", MountPath: "/mnt/secrets", ReadOnly: true}}
	p.Spec.Volumes = []corev1.Volume{csiVolume(class)}
	return p
}

// createPod creates a pod and deletes it when the test ends.
func createPod(t *testing.T, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	out, err := cl.Clientset.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", p.Namespace, p.Name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		_ = cl.Clientset.CoreV1().Pods(p.Namespace).Delete(context.Background(), p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	})
	return out
}

func injected(p *corev1.Pod) bool { return p.Annotations[statusAnnot] == "injected" }

// agentContainer returns the injected agent: an init container with
// restartPolicy Always (a native sidecar).
func agentContainer(p *corev1.Pod) *corev1.Container {
	for i, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			return &p.Spec.InitContainers[i]
		}
	}
	return nil
}

func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

func startedAt(s *corev1.ContainerStatus) time.Time {
	switch {
	case s == nil:
		return time.Time{}
	case s.State.Running != nil:
		return s.State.Running.StartedAt.Time
	case s.State.Terminated != nil:
		return s.State.Terminated.StartedAt.Time
	}
	return time.Time{}
}

// waitDeployment waits until a Deployment has want ready replicas.
func waitDeployment(t *testing.T, ns, name string, want int32, timeout time.Duration) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var err error
		d, err = cl.Clientset.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return d.Status.ObservedGeneration >= d.Generation && d.Status.ReadyReplicas == want && d.Status.Replicas == want, nil
	})
	if err != nil {
		var pods string
		if d != nil {
			pods = describeSelector(ns, d.Spec.Selector.MatchLabels)
		}
		t.Fatalf("deployment %s/%s: %d ready replicas not within %s\n%s", ns, name, want, timeout, pods)
	}
	return d
}

func listPods(t *testing.T, ns string, labels map[string]string) []corev1.Pod {
	t.Helper()
	sel := metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: labels})
	pods, err := cl.Clientset.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// timeToReady creates a pod and returns the time until the API shows it
// Ready (polled every 50ms).
func timeToReady(t *testing.T, p *corev1.Pod) time.Duration {
	t.Helper()
	start := time.Now()
	createPod(t, p)
	waitPod(t, p.Namespace, p.Name, 90*time.Second, "to be Ready", podReady)
	return time.Since(start)
}

// deletePodAndWait deletes a pod with opts and waits until the API server
// no longer has it; the error says the delete failed or the wait ran out.
func deletePodAndWait(ns, name string, opts metav1.DeleteOptions, timeout time.Duration) error {
	ctx := context.Background()
	if err := cl.Clientset.CoreV1().Pods(ns).Delete(ctx, name, opts); err != nil {
		return fmt.Errorf("delete pod %s/%s: %w", ns, name, err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		_, err := cl.Clientset.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}); err != nil {
		return fmt.Errorf("pod %s/%s not gone after %s", ns, name, timeout)
	}
	return nil
}

var _ = cluster.NodeName
