//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ssinjector/ssi/internal/render"
	"github.com/ssinjector/ssi/test/e2e/app/wire"
)

const (
	templatedClass      = "vault-secrets-templated"
	templatedDeployment = "app-with-templates"
)

// templatedConfig is what the class's config.json template renders for a
// database password and an API token.
func templatedConfig(password, token string) string {
	return fmt.Sprintf(`{"database": {"host": "db.production.svc", "password": %q}, "api": {"token": %q}}`+"\n", password, token)
}

// Test: the seed guide's Vault class, with a config.json template in its
// templates annotation, mounted by the seed guide's Deployment (named after
// that class and run as one replica): the test application reads the
// rendered config.json, complete before it started, and sees it change
// when the password rotates in Vault.
func TestSeedVaultDeploymentWithTemplate(t *testing.T) {
	requireProduct(t)
	setupSeed(t)
	ctx := context.Background()

	objs, err := readSeed("vault-secret-provider.yaml")
	if err != nil || len(objs) != 1 {
		t.Fatalf("vault-secret-provider.yaml: %v", err)
	}
	class := objs[0]
	class.SetName(templatedClass)
	class.SetAnnotations(map[string]string{render.Annotation: `- path: config.json
  mode: "0644"
  template: |
    {"database": {"host": "db.production.svc", "password": {{ object "db-password" | jsonString }}}, "api": {"token": {{ object "api-token" | jsonString }}}}
`})
	if err := applyObjects(ctx, []*unstructured.Unstructured{class}); err != nil {
		t.Fatal(err)
	}

	dep := seedDeploymentObject(t)
	dep.SetName(templatedDeployment)
	labels := map[string]any{"app": "web-app-templates"}
	_ = unstructured.SetNestedField(dep.Object, int64(1), "spec", "replicas")
	_ = unstructured.SetNestedMap(dep.Object, labels, "spec", "selector", "matchLabels")
	_ = unstructured.SetNestedMap(dep.Object, labels, "spec", "template", "metadata", "labels")
	vols, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "volumes")
	_ = unstructured.SetNestedField(vols[0].(map[string]any), templatedClass, "csi", "volumeAttributes", "secretProviderClass")
	_ = unstructured.SetNestedSlice(dep.Object, vols, "spec", "template", "spec", "volumes")
	start := time.Now()
	if err := applyObjects(ctx, []*unstructured.Unstructured{dep}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cl.Clientset.AppsV1().Deployments(seedNamespace).Delete(context.Background(), templatedDeployment, metav1.DeleteOptions{})
	})
	waitDeployment(t, seedNamespace, templatedDeployment, 1, 3*time.Minute)
	ready := time.Since(start)
	pods := listPods(t, seedNamespace, map[string]string{"app": "web-app-templates"})
	if len(pods) != 1 {
		t.Fatalf("want 1 pod, have %d", len(pods))
	}
	p := pods[0]
	if !injected(&p) {
		t.Fatalf("pod not marked %s=injected: %v", statusAnnot, p.Annotations)
	}
	st, err := getAppState(ctx, seedNamespace, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	want := templatedConfig(currentPassword(), apiToken)
	if got := st.Initial["config.json"]; got != want {
		t.Errorf("app read config.json %q at start, want %q", got, want)
	}
	if got := st.Files["db-password"]; got != currentPassword() {
		t.Errorf("raw db-password = %q beside the template, want %q", got, currentPassword())
	}

	// A rotation in Vault re-renders config.json; the app's watcher sees
	// the new file under its own name.
	rotated := time.Now()
	want = templatedConfig(rotatePassword(t), apiToken)
	var last *wire.State
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 3*rotationInterval+30*time.Second, true, func(ctx context.Context) (bool, error) {
		s, err := getAppState(ctx, seedNamespace, p.Name)
		if err != nil {
			return false, nil
		}
		last = s
		return s.Files["config.json"] == want && s.SawEvent("config.json", want), nil
	})
	if err != nil {
		got := ""
		if last != nil {
			got = last.Files["config.json"]
		}
		t.Fatalf("the app did not see the re-rendered config.json within %s: it reads %q, want %q", 3*rotationInterval+30*time.Second, got, want)
	}
	fmt.Printf("e2e: templated seed Deployment Ready in %s; re-rendered config.json reached the app's watcher %s after the Vault write (rotation interval %s)\n",
		ready.Round(time.Millisecond), time.Since(rotated).Round(time.Millisecond), rotationInterval)
}
