package secretsync

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// Pods rewritten by the webhook's own rewrite (inject.Rewrite), in each
// shape it produces, are recognised as consumers of their classes, also
// after the cache trims them, and get their Secret on the API server.
func TestWebhookRewrittenPodsAreConsumers(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "test/testdata/seed/deployment-with-secrets.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var dep appsv1.Deployment
	if err := yaml.Unmarshal(b, &dep); err != nil {
		t.Fatal(err)
	}
	seed := dep.Spec.Template
	seed.Spec.Volumes[0].CSI.VolumeAttributes[inject.ClassAttribute] = "db"

	shorthand := seed.DeepCopy()
	shorthand.Spec.Volumes = nil
	shorthand.Spec.Containers[0].VolumeMounts = nil
	shorthand.Annotations = map[string]string{inject.AnnotationSecretProviderClass: "db"}

	cases := map[string]struct {
		pod    *corev1.PodTemplateSpec
		native bool
	}{
		"native sidecar":           {pod: seed.DeepCopy(), native: true},
		"init container + sidecar": {pod: seed.DeepCopy(), native: false},
		"annotation shorthand":     {pod: shorthand, native: true},
	}
	var env *testenv.Env
	if !testing.Short() {
		env = controlPlane(t)
		fake := newFake("vault", map[string]string{"db-password": "pw", "db-user": "app"})
		startController(t, env, nil, Options{Providers: provider.NewSet(fake)}, nil)
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ns := "agreement"
			if env != nil {
				ns = namespace(t, env, "agreement")
			}
			class := vaultClass(t, ns, "db", `
  - secretName: app-secrets
    type: Opaque
    data:
    - objectName: db-password
      key: api-key
`)
			cfg := inject.DefaultConfig()
			cfg.NativeSidecars = tc.native
			res, err := inject.Rewrite(&cfg, inject.Input{
				Namespace: ns, NamespaceLabels: map[string]string{inject.LabelInjection: inject.LabelValueEnabled},
				Pod: tc.pod, Classes: map[string]*ssiv1.SecretProviderClass{"db": class},
			})
			if err != nil || res.Pod == nil {
				t.Fatalf("Rewrite: %v (skipped %q)", err, res.Skipped)
			}
			pod := &corev1.Pod{ObjectMeta: res.Pod.ObjectMeta, Spec: res.Pod.Spec}
			pod.Namespace, pod.Name = ns, "app-0"
			if got := PodClasses(pod); !reflect.DeepEqual(got, []string{"db"}) {
				t.Fatalf("PodClasses of the rewritten pod = %q", got)
			}
			if got := PodClasses(TrimPod(pod)); !reflect.DeepEqual(got, []string{"db"}) {
				t.Fatalf("PodClasses of the trimmed rewritten pod = %q", got)
			}
			if env == nil {
				return
			}
			serviceAccount(t, env, ns, pod.Spec.ServiceAccountName, nil)
			create(t, env, class)
			create(t, env, pod)
			s := waitSecret(t, env, ns, "app-secrets", nil)
			if string(s.Data["api-key"]) != "pw" {
				t.Errorf("api-key %q", s.Data["api-key"])
			}
		})
	}
}
