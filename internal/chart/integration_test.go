package chart

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// permissiveCRD defines a kind whose real CRD is not available here
// (cert-manager's, prometheus-operator's), so that the dry run reaches the
// objects of that kind; their schema is not checked by the server (the
// unit tests check their fields).
func permissiveCRD(group, kind, plural string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": plural + "." + group},
		"spec": map[string]any{
			"group": group,
			"scope": "Namespaced",
			"names": map[string]any{"kind": kind, "plural": plural, "singular": strings.ToLower(kind), "listKind": kind + "List"},
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
			}},
		},
	}}
}

const fieldOwner = client.FieldOwner("ssi-chart-test")

// apply server-side-applies obj; dryRun asks the server to run every
// admission and validation step without persisting. A kind the server does
// not know yet (a CRD created a moment ago) is retried briefly.
func apply(ctx context.Context, c client.Client, obj *unstructured.Unstructured, dryRun bool) error {
	opts := []client.PatchOption{fieldOwner, client.ForceOwnership}
	if dryRun {
		opts = append(opts, client.DryRunAll)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		o := obj.DeepCopy()
		o.SetManagedFields(nil)
		err := c.Patch(ctx, o, client.Apply, opts...) //nolint:staticcheck // client.Apply with unstructured objects is the generic server-side apply
		if err == nil || (!meta.IsNoMatchError(err) && !apierrors.IsNotFound(err)) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestChartAgainstAPIServer(t *testing.T) {
	r := runner(t)
	env := testenv.Start(t, testenv.Options{
		// Run the ServiceAccount admission plugin like a real cluster.
		APIServerArgs: map[string]string{"disable-admission-plugins": "DefaultStorageClass"},
	})
	ctx := context.Background()
	for _, crd := range []*unstructured.Unstructured{
		permissiveCRD("cert-manager.io", "Certificate", "certificates"),
		permissiveCRD("cert-manager.io", "Issuer", "issuers"),
		permissiveCRD("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
	} {
		if err := apply(ctx, env.Client, crd, false); err != nil {
			t.Fatalf("install %s: %v", crd.GetName(), err)
		}
	}

	manifests, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "manifests", ManifestsFile))
	if err != nil {
		t.Fatal(err)
	}
	dryRuns := map[string]struct {
		o      Options
		stream []byte // a committed stream instead of a rendering
	}{
		"defaults":                  {o: Options{Namespace: "dry-defaults"}},
		"defaults for 1.37":         {o: Options{Namespace: "dry-137", KubeVersion: "1.37.0"}},
		"non-default":               {o: nonDefault},
		"cert-manager, own CA":      {o: Options{Namespace: "dry-cm", Set: []string{"webhook.tls.mode=cert-manager", "serviceMonitor.enabled=true"}}},
		"secret, no shim, no CRDs":  {o: Options{Namespace: "dry-secret", Set: []string{"webhook.tls.mode=secret", "webhook.tls.caBundle=Zm9v", "linux.enabled=false", "crds.install=false"}}},
		"manifests for kubectl":     {stream: manifests},
		"sync enabled, 1 replica":   {o: Options{Namespace: "dry-sync", Set: []string{"syncSecret.enabled=true", "webhook.replicas=1"}}},
		"min Kubernetes, no rotate": {o: Options{Namespace: "dry-min", KubeVersion: MinKubeVersion, Set: []string{"enableSecretRotation=false", "tokenRequests=null"}}},
	}
	for name, tc := range dryRuns {
		t.Run("dry run/"+name, func(t *testing.T) {
			var objs []*unstructured.Unstructured
			if tc.stream != nil {
				var err error
				if objs, err = Split(tc.stream); err != nil {
					t.Fatal(err)
				}
			} else {
				objs = render(t, r, tc.o)
			}
			// Namespaces and CRDs are created for real: the namespaced
			// objects and the custom resources need them.
			ns := tc.o.Namespace
			if ns == "" {
				ns = DefaultNamespace
			}
			if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
			var rest []*unstructured.Unstructured
			for _, o := range objs {
				switch o.GetKind() {
				case "Namespace", "CustomResourceDefinition":
					if err := apply(ctx, env.Client, o, false); err != nil {
						t.Fatalf("apply %s %s: %v", o.GetKind(), o.GetName(), err)
					}
				default:
					rest = append(rest, o)
				}
			}
			kinds := map[string]int{}
			for _, o := range rest {
				if o.GetNamespace() == "" && isNamespaced(o.GetKind()) {
					t.Errorf("%s %s has no namespace", o.GetKind(), o.GetName())
				}
				if err := apply(ctx, env.Client, o, true); err != nil {
					t.Errorf("server rejects %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
				}
				kinds[o.GetKind()]++
			}
			for _, k := range []string{"Deployment", "Service", "ServiceAccount", "MutatingWebhookConfiguration", "ClusterRole", "ClusterRoleBinding"} {
				if kinds[k] == 0 {
					t.Errorf("no %s accepted", k)
				}
			}
			t.Logf("server accepted %d objects: %v", len(rest), kinds)
		})
	}

	t.Run("helm install and upgrade keep the webhook CA", func(t *testing.T) {
		user, err := env.Env.AddUser(envtest.User{Name: "helm", Groups: []string{"system:masters"}}, env.Config)
		if err != nil {
			t.Fatal(err)
		}
		kc, err := user.KubeConfig()
		if err != nil {
			t.Fatal(err)
		}
		kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
		if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
			t.Fatal(err)
		}
		const ns = "ssi-helm"
		helm := func(args ...string) string {
			t.Helper()
			ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			full := append(args, "--kubeconfig", kubeconfig, "--namespace", ns)
			out, err := r.Run(ctx, full...)
			if err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return string(out)
		}
		state := func() (ca, cert []byte, bundle []byte, replicas int64) {
			t.Helper()
			var s corev1.Secret
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ssi-webhook-tls"}, &s); err != nil {
				t.Fatal(err)
			}
			mwc := &unstructured.Unstructured{}
			mwc.SetAPIVersion("admissionregistration.k8s.io/v1")
			mwc.SetKind("MutatingWebhookConfiguration")
			if err := env.Client.Get(ctx, client.ObjectKey{Name: "secrets-store-injector"}, mwc); err != nil {
				t.Fatal(err)
			}
			hooks, _, _ := unstructured.NestedSlice(mwc.Object, "webhooks")
			b64, _, _ := unstructured.NestedString(hooks[0].(map[string]any), "clientConfig", "caBundle")
			dep := &unstructured.Unstructured{}
			dep.SetAPIVersion("apps/v1")
			dep.SetKind("Deployment")
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ssi-webhook"}, dep); err != nil {
				t.Fatal(err)
			}
			replicas, _, _ = unstructured.NestedInt64(dep.Object, "spec", "replicas")
			return s.Data["ca.crt"], s.Data["tls.crt"], []byte(b64), replicas
		}
		// The CRDs are installed already (by the test environment, not
		// by this release), as for a user of the upstream driver: Helm
		// refuses to take them over, which is what crds.install=false is
		// for.
		{
			ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			out, err := r.Run(ctx, "install", "ssi-crds", r.Chart, "--kubeconfig", kubeconfig, "--namespace", "ssi-crds", "--create-namespace")
			cancel()
			if err == nil || !strings.Contains(err.Error(), "CustomResourceDefinition") || !strings.Contains(err.Error(), "cannot be imported") {
				t.Fatalf("install over existing CRDs: err %v, want Helm's refusal to import the CRDs\n%s", err, out)
			}
		}
		notes := helm("install", "ssi", r.Chart, "--create-namespace", "--set", "crds.install=false")
		for _, want := range []string{"NOTES:", "kubectl label namespace ssi-helm pod-security.kubernetes.io/enforce=privileged", "secrets-store-injector.io/injection=enabled"} {
			if !strings.Contains(notes, want) {
				t.Errorf("helm install output lacks %q:\n%s", want, notes)
			}
		}
		ca1, cert1, bundle1, rep := state()
		if len(ca1) == 0 || len(cert1) == 0 || rep != 2 {
			t.Fatalf("after install: ca %d bytes, cert %d bytes, replicas %d", len(ca1), len(cert1), rep)
		}
		if string(decodeB64(t, bundle1)) != string(ca1) {
			t.Fatal("after install: caBundle is not the Secret's CA")
		}

		helm("upgrade", "ssi", r.Chart, "--set", "crds.install=false", "--set", "webhook.replicas=3")
		ca2, cert2, bundle2, rep := state()
		if rep != 3 {
			t.Fatalf("upgrade not applied: replicas %d", rep)
		}
		if string(ca2) != string(ca1) || string(cert2) != string(cert1) || string(bundle2) != string(bundle1) {
			t.Error("upgrade replaced the webhook CA or certificate; the API server would distrust running webhooks")
		}

		// Deleting the Secret is how an operator rotates: the next upgrade
		// generates a new pair and the caBundle follows.
		if err := env.Client.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ssi-webhook-tls"}}); err != nil {
			t.Fatal(err)
		}
		helm("upgrade", "ssi", r.Chart, "--set", "crds.install=false", "--set", "webhook.replicas=3")
		ca3, _, bundle3, _ := state()
		if string(ca3) == string(ca1) {
			t.Error("no new CA after the Secret was deleted")
		}
		if string(decodeB64(t, bundle3)) != string(ca3) {
			t.Error("after rotation: caBundle is not the new CA")
		}
		helm("uninstall", "ssi")
		var s corev1.Secret
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ssi-webhook-tls"}, &s); !apierrors.IsNotFound(err) {
			t.Errorf("after uninstall the TLS Secret is still there (err %v)", err)
		}
	})
}

func decodeB64(t testing.TB, b []byte) []byte {
	t.Helper()
	out, err := base64.StdEncoding.DecodeString(string(b))
	if err != nil {
		t.Fatalf("caBundle is not base64: %v", err)
	}
	return out
}

// isNamespaced lists the namespaced kinds the chart renders.
func isNamespaced(kind string) bool {
	switch kind {
	case "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration", "CSIDriver",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "Namespace", "CustomResourceDefinition":
		return false
	}
	return true
}
