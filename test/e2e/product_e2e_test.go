//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/ssinjector/ssi/test/e2e/app/wire"
)

var (
	deployOnce sync.Once
	deployErr  error
	deployTook time.Duration
)

// seedDeploymentObject is the guide's deployment-with-secrets.yaml with
// one change: its volume names the guide's Vault class instead of the AWS
// one (the guide shows a Deployment only for AWS). The test checks that
// this is the only difference.
func seedDeploymentObject(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	objs, err := readSeed("deployment-with-secrets.yaml")
	if err != nil || len(objs) != 1 {
		t.Fatalf("deployment-with-secrets.yaml: %v", err)
	}
	orig := objs[0].DeepCopy()
	d := objs[0]
	vols, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "volumes")
	if len(vols) != 1 {
		t.Fatalf("seed Deployment has %d volumes", len(vols))
	}
	v := vols[0].(map[string]any)
	if err := unstructured.SetNestedField(v, seedClass, "csi", "volumeAttributes", "secretProviderClass"); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedSlice(d.Object, vols, "spec", "template", "spec", "volumes"); err != nil {
		t.Fatal(err)
	}
	// Exactly one field differs.
	back := d.DeepCopy()
	bv, _, _ := unstructured.NestedSlice(back.Object, "spec", "template", "spec", "volumes")
	_ = unstructured.SetNestedField(bv[0].(map[string]any), "aws-secrets", "csi", "volumeAttributes", "secretProviderClass")
	_ = unstructured.SetNestedSlice(back.Object, bv, "spec", "template", "spec", "volumes")
	if !equalObjects(back, orig) {
		t.Fatal("seed Deployment changed beyond the class name")
	}
	return d
}

func equalObjects(a, b *unstructured.Unstructured) bool {
	ja, _ := a.MarshalJSON()
	jb, _ := b.MarshalJSON()
	return string(ja) == string(jb)
}

// ensureSeedDeployment applies the guide's Deployment once and waits for
// both replicas.
func ensureSeedDeployment(t *testing.T) {
	t.Helper()
	requireProduct(t)
	setupSeed(t)
	deployOnce.Do(func() {
		start := time.Now()
		deployErr = applyObjects(context.Background(), []*unstructured.Unstructured{seedDeploymentObject(t)})
		if deployErr == nil {
			waitDeployment(t, seedNamespace, seedDeployment, 2, 3*time.Minute)
			deployTook = time.Since(start)
		}
	})
	if deployErr != nil {
		t.Fatalf("apply the seed Deployment: %v", deployErr)
	}
	waitDeployment(t, seedNamespace, seedDeployment, 2, 3*time.Minute)
}

// Test 1: the seed guide's Vault class and Deployment in a namespace
// labelled for injection: both replicas Ready, the application reads the
// right db-password, and the agent started before it.
func TestSeedVaultDeployment(t *testing.T) {
	ensureSeedDeployment(t)
	ctx := context.Background()
	pods := listPods(t, seedNamespace, map[string]string{"app": "web-app"})
	if len(pods) != 2 {
		t.Fatalf("want 2 pods, have %d", len(pods))
	}
	for _, p := range pods {
		t.Run(p.Name, func(t *testing.T) {
			if !injected(&p) {
				t.Fatalf("pod not marked %s=injected: %v", statusAnnot, p.Annotations)
			}
			agent := agentContainer(&p)
			if agent == nil {
				t.Fatalf("no native sidecar agent in %v", p.Spec.InitContainers)
			}
			var vol *corev1.Volume
			for i := range p.Spec.Volumes {
				if p.Spec.Volumes[i].Name == "secrets-store" {
					vol = &p.Spec.Volumes[i]
				}
			}
			if vol == nil || vol.EmptyDir == nil || vol.EmptyDir.Medium != corev1.StorageMediumMemory {
				t.Errorf("secrets-store volume is not an in-memory emptyDir: %+v", vol)
			}
			// App containers gain nothing: the app mounts only what the
			// guide gave it plus the API access every pod gets.
			for _, m := range p.Spec.Containers[0].VolumeMounts {
				if m.Name != "secrets-store" && !strings.HasPrefix(m.Name, "kube-api-access-") {
					t.Errorf("app container gained mount %s at %s", m.Name, m.MountPath)
				}
			}
			as, app := containerStatus(&p, agent.Name), containerStatus(&p, "app")
			if as == nil || app == nil || as.Started == nil || !*as.Started {
				t.Fatalf("agent not started:\n%s", describe(seedNamespace, p.Name))
			}
			if startedAt(as).After(startedAt(app)) {
				t.Errorf("agent started at %s, after the app at %s", startedAt(as), startedAt(app))
			}
			st, err := getAppState(ctx, seedNamespace, p.Name)
			if err != nil {
				t.Fatal(err)
			}
			// What the app read when it started: the files were complete
			// before it ran, which only the agent could have done.
			if got := st.Initial["db-password"]; got != currentPassword() {
				t.Errorf("app read db-password %q at start, want %q", got, currentPassword())
			}
			if got := st.Files["api-token"]; got != apiToken {
				t.Errorf("api-token = %q, want %q", got, apiToken)
			}
			if got := st.Env["API_KEY"]; got != apiKey {
				t.Errorf("API_KEY = %q, want %q", got, apiKey)
			}
		})
	}
	fmt.Printf("e2e: seed Deployment (2 injected replicas) applied to both Ready: %s\n", deployTook.Round(time.Millisecond))
}

// Test 2: a secret changed in Vault reaches the running application's file
// within the rotation interval, and its watcher sees the change under the
// file's own name.
func TestRotationReachesWatcher(t *testing.T) {
	ensureSeedDeployment(t)
	ctx := context.Background()
	pods := listPods(t, seedNamespace, map[string]string{"app": "web-app"})
	start := time.Now()
	v := rotatePassword(t)
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			var st *wire.State
			err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 3*rotationInterval+30*time.Second, true, func(ctx context.Context) (bool, error) {
				s, err := getAppState(ctx, seedNamespace, name)
				if err != nil {
					return false, nil
				}
				st = s
				return s.Files["db-password"] == v && s.SawEvent("db-password", v), nil
			})
			took := time.Since(start)
			if err != nil {
				var evs []string
				if st != nil {
					for _, e := range st.Events {
						evs = append(evs, e.Op+" "+e.Name)
					}
				}
				t.Errorf("%s: watcher did not see the new db-password within %s (file changed: %v; events: %v)", name, took.Round(time.Second), st != nil && st.Files["db-password"] == v, evs)
				return
			}
			// The agent's jitter may add to the interval; twice the
			// interval is the bound a user can rely on.
			if took > 2*rotationInterval+5*time.Second {
				t.Errorf("%s: rotation took %s, rotation interval %s", name, took, rotationInterval)
			}
			fmt.Printf("e2e: rotation reached %s and its watcher in %s (rotation interval %s)\n", name, took.Round(time.Millisecond), rotationInterval)
		}(p.Name)
	}
	wg.Wait()
}

// Test 3: a pod with the same CSI volume in a namespace that is not
// enabled: kubelet calls the node shim, the pod becomes Ready with the same
// files, and a change in Vault reaches it after rotationPollInterval.
func TestShimServesNamespaceNotEnabled(t *testing.T) {
	setupSeed(t)
	ctx := context.Background()
	p := createPod(t, appPod(plainNamespace, "via-shim", seedClass))
	p = waitPod(t, plainNamespace, p.Name, 2*time.Minute, "to be Ready", podReady)
	if injected(p) || agentContainer(p) != nil {
		t.Fatalf("pod in a namespace that is not enabled was rewritten: %v", p.Annotations)
	}
	if p.Spec.Volumes[0].CSI == nil {
		t.Fatalf("CSI volume replaced: %+v", p.Spec.Volumes[0])
	}
	st, err := getAppState(ctx, plainNamespace, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files["db-password"] != currentPassword() || st.Files["api-token"] != apiToken {
		t.Fatalf("files through the shim: %v", keys(st.Files))
	}
	start := time.Now()
	v := rotatePassword(t)
	// The shim refetches when kubelet republishes the volume (every pod
	// sync) and at most once per rotationPollInterval.
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		s, err := getAppState(ctx, plainNamespace, p.Name)
		return err == nil && s.Files["db-password"] == v, nil
	})
	if err != nil {
		t.Fatalf("rotated db-password did not reach the shim's volume within 2m")
	}
	fmt.Printf("e2e: rotation reached the shim-served pod in %s (rotationPollInterval %s)\n", time.Since(start).Round(time.Millisecond), rotationInterval)
}

// Test 4: with the webhook scaled to zero, new pods with secrets-store
// volumes still start, served by the shim.
func TestWebhookDownShimServes(t *testing.T) {
	setupSeed(t)
	ctx := context.Background()
	scale := func(n int32) {
		s, err := cl.Clientset.AppsV1().Deployments(productNamespace).GetScale(ctx, webhookDeployment, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Spec.Replicas = n
		if _, err := cl.Clientset.AppsV1().Deployments(productNamespace).UpdateScale(ctx, webhookDeployment, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	scale(0)
	t.Cleanup(func() {
		scale(1)
		waitDeployment(t, productNamespace, webhookDeployment, 1, 2*time.Minute)
		waitWebhookEndpoint(t)
	})
	// Wait until the webhook pods are gone, terminating ones included: a
	// terminating webhook still answers admission during its grace period
	// (listPods leaves terminating pods out).
	sel := metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/component": "webhook"}})
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := cl.Clientset.CoreV1().Pods(productNamespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		return err == nil && len(pods.Items) == 0, nil
	})
	if err != nil {
		t.Fatal("webhook pods still running after scaling to zero")
	}
	p := createPod(t, appPod(seedNamespace, "webhook-down", seedClass))
	p = waitPod(t, seedNamespace, p.Name, 2*time.Minute, "to be Ready without the webhook", podReady)
	if injected(p) {
		t.Fatal("pod was injected although the webhook is down")
	}
	st, err := getAppState(ctx, seedNamespace, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files["db-password"] != currentPassword() {
		t.Fatalf("shim-served files: %v", keys(st.Files))
	}
}

// waitWebhookEndpoint waits until the webhook Service has a ready endpoint,
// so that later pods are rewritten again.
func waitWebhookEndpoint(t *testing.T) {
	t.Helper()
	if err := webhookEndpointReady(context.Background(), time.Minute); err != nil {
		t.Fatal(err)
	}
}

// Test 5: the seed guide's sync example. The class keeps the guide's
// secretObjects block as it is; its provider is the suite's Vault (the
// guide's sync example is an AWS class, and no AWS endpoint is reachable
// from pods here). The pod spec is the guide's container snippet as it is.
func TestSyncSecretAsEnv(t *testing.T) {
	requireProduct(t)
	setupSeed(t)
	ctx := context.Background()
	objs, err := readSeed("provider-with-sync.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spc := objs[0]
	_ = unstructured.SetNestedField(spc.Object, "vault", "spec", "provider")
	_ = unstructured.SetNestedStringMap(spc.Object, map[string]string{
		"vaultAddress": "http://vault.vault.svc:8200",
		"roleName":     "app-role",
		"objects":      "- objectName: \"database-creds\"\n  secretPath: \"secret/data/myapp/database\"\n  secretKey: \"password\"\n",
	}, "spec", "parameters")
	if err := applyObjects(ctx, []*unstructured.Unstructured{spc}); err != nil {
		t.Fatal(err)
	}
	snippet, err := os.ReadFile(seedFile("sync-container-snippet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	podSpec := map[string]any{}
	if err := yaml.Unmarshal(snippet, &podSpec); err != nil {
		t.Fatal(err)
	}
	dep := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "sync-app", "namespace": seedNamespace},
		"spec": map[string]any{
			"replicas": int64(1),
			"selector": map[string]any{"matchLabels": map[string]any{"app": "sync-app"}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "sync-app"}}, "spec": podSpec},
		},
	}}
	if err := applyObjects(ctx, []*unstructured.Unstructured{dep}); err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, seedNamespace, "sync-app", 1, 3*time.Minute)
	pods := listPods(t, seedNamespace, map[string]string{"app": "sync-app"})
	st, err := getAppState(ctx, seedNamespace, pods[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	want := currentPassword()
	if st.Env["DB_PASSWORD"] != want {
		t.Fatalf("DB_PASSWORD from the synced Secret = %q, want the Vault value", st.Env["DB_PASSWORD"])
	}
	sec, err := cl.Clientset.CoreV1().Secrets(seedNamespace).Get(ctx, "database-credentials", metav1.GetOptions{})
	if err != nil || string(sec.Data["credentials"]) != want {
		t.Fatalf("synced Secret database-credentials: %v", err)
	}
	if err := cl.Clientset.AppsV1().Deployments(seedNamespace).Delete(ctx, "sync-app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := cl.Clientset.CoreV1().Secrets(seedNamespace).Get(ctx, "database-credentials", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatal("synced Secret database-credentials still exists after the Deployment was deleted")
	}
}

// Test 6: a Job with an injected agent completes: the native sidecar does
// not hold it open.
func TestInjectedJobCompletes(t *testing.T) {
	requireProduct(t)
	setupSeed(t)
	ctx := context.Background()
	pod := appPod(seedNamespace, "", seedClass).Spec
	pod.RestartPolicy = corev1.RestartPolicyNever
	pod.Containers[0].Args = []string{"once"}
	pod.Containers[0].Env = append(pod.Containers[0].Env, corev1.EnvVar{Name: "EXPECT_FILES", Value: "db-password,api-token"})
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "injected-job", Namespace: seedNamespace},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To(int32(0)),
			Template:     corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"e2e": "injected-job"}}, Spec: pod},
		},
	}
	start := time.Now()
	if _, err := cl.Clientset.BatchV1().Jobs(seedNamespace).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var j *batchv1.Job
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		j, err = cl.Clientset.BatchV1().Jobs(seedNamespace).Get(ctx, job.Name, metav1.GetOptions{})
		return err == nil && (j.Status.Succeeded > 0 || j.Status.Failed > 0), nil
	})
	pods := listPods(t, seedNamespace, map[string]string{"e2e": "injected-job"})
	if err != nil || j.Status.Succeeded != 1 {
		var d string
		for _, p := range pods {
			d += describe(seedNamespace, p.Name)
		}
		t.Fatalf("job did not complete (succeeded %d): %v\n%s", j.Status.Succeeded, err, d)
	}
	if len(pods) != 1 || !injected(&pods[0]) || agentContainer(&pods[0]) == nil {
		t.Fatalf("job pod was not injected with a native sidecar")
	}
	if s := containerStatus(&pods[0], agentContainer(&pods[0]).Name); s == nil || s.State.Terminated == nil {
		t.Errorf("agent of the completed job is not terminated: %+v", s)
	}
	fmt.Printf("e2e: injected Job completed in %s\n", time.Since(start).Round(time.Millisecond))
}

// causeRE matches how a missing Vault path is reported.
var causeRE = regexp.MustCompile(`(?i)not ?found|404|no (secret|data|value)|does not exist`)

// Test 7: a class naming a missing Vault path: the pod does not start, and
// what `kubectl describe pod` shows names the class, the object and the
// cause, and never a secret value.
func TestMissingVaultPathIsDescribed(t *testing.T) {
	setupSeed(t)
	ctx := context.Background()
	const class = "vault-missing-path"
	missing := func(ns string) *unstructured.Unstructured {
		objs, err := readSeed("vault-secret-provider.yaml")
		if err != nil {
			t.Fatal(err)
		}
		o := objs[0]
		o.SetName(class)
		o.SetNamespace(ns)
		_ = unstructured.SetNestedField(o.Object, "- objectName: \"db-password\"\n  secretPath: \"secret/data/myapp/missing\"\n  secretKey: \"password\"\n", "spec", "parameters", "objects")
		return o
	}
	secrets := func() []string { return []string{currentPassword(), apiToken, apiKey} }
	check := func(t *testing.T, text string) {
		t.Helper()
		for _, want := range []string{class, "db-password"} {
			if !strings.Contains(text, want) {
				t.Errorf("describe does not name %q:\n%s", want, text)
			}
		}
		if !causeRE.MatchString(text) {
			t.Errorf("describe does not give the cause (missing path):\n%s", text)
		}
		for _, s := range secrets() {
			if strings.Contains(text, s) {
				t.Errorf("describe shows a secret value")
			}
		}
	}

	t.Run("injected", func(t *testing.T) {
		requireProduct(t)
		if err := applyObjects(ctx, []*unstructured.Unstructured{missing(seedNamespace)}); err != nil {
			t.Fatal(err)
		}
		p := createPod(t, appPod(seedNamespace, "missing-path", class))
		var text string
		err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, firstFetchTimeout+90*time.Second, true, func(ctx context.Context) (bool, error) {
			text = describe(seedNamespace, p.Name)
			return strings.Contains(text, class) && strings.Contains(text, "db-password"), nil
		})
		got, _ := cl.Clientset.CoreV1().Pods(seedNamespace).Get(ctx, p.Name, metav1.GetOptions{})
		if got != nil && !injected(got) {
			t.Fatalf("pod was not injected")
		}
		if err != nil {
			t.Fatalf("describe never named the class and object:\n%s", text)
		}
		check(t, text)
		t.Logf("what describe shows:\n%s", text)
		if s := containerStatus(got, "app"); s != nil && (s.State.Running != nil || s.State.Terminated != nil) {
			t.Errorf("the app container started although its secrets could not be fetched")
		}
	})
	t.Run("shim", func(t *testing.T) {
		if err := applyObjects(ctx, []*unstructured.Unstructured{missing(plainNamespace)}); err != nil {
			t.Fatal(err)
		}
		p := createPod(t, appPod(plainNamespace, "missing-path", class))
		var text string
		err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
			text = describe(plainNamespace, p.Name)
			return strings.Contains(text, "FailedMount") && strings.Contains(text, "db-password"), nil
		})
		if err != nil {
			t.Fatalf("no FailedMount event naming the object:\n%s", text)
		}
		check(t, text)
		t.Logf("what describe shows:\n%s", text)
		if got, _ := cl.Clientset.CoreV1().Pods(plainNamespace).Get(ctx, p.Name, metav1.GetOptions{}); got != nil && got.Status.Phase == corev1.PodRunning {
			t.Errorf("pod runs without its volume")
		}
	})
}

// Test 8: time from pod creation to Ready for an injected pod, the same
// pod without secrets, and the same pod through the node shim. Printed,
// not asserted (beyond each becoming Ready).
func TestTimeToReady(t *testing.T) {
	setupSeed(t)
	const runs = 3
	cases := []struct{ name, ns, class string }{
		{"without secrets", plainNamespace, ""},
		{"injected (agent sidecar)", seedNamespace, seedClass},
		{"node shim (CSI)", plainNamespace, seedClass},
	}
	results := map[string][]time.Duration{}
	for i := 0; i < runs; i++ {
		for j, c := range cases {
			name := fmt.Sprintf("timing-%d-%d", j, i)
			p := appPod(c.ns, name, c.class)
			d := timeToReady(t, p)
			got, _ := cl.Clientset.CoreV1().Pods(c.ns).Get(context.Background(), name, metav1.GetOptions{})
			if c.ns == seedNamespace && (got == nil || !injected(got)) {
				t.Fatalf("%s: pod not injected", c.name)
			}
			results[c.name] = append(results[c.name], d)
			_ = deletePodAndWait(c.ns, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, time.Minute)
		}
	}
	fmt.Printf("e2e: time from pod creation to Ready (%d runs each, median [min..max]):\n", runs)
	for _, c := range cases {
		ds := results[c.name]
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		fmt.Printf("e2e:   %-26s %8s  [%s .. %s]\n", c.name, ds[len(ds)/2].Round(time.Millisecond), ds[0].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
