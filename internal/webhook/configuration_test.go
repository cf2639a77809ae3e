package webhook

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// TestGeneratedManifest fails when manifests/webhook is stale (make
// webhook-config regenerates it).
func TestGeneratedManifest(t *testing.T) {
	b, err := os.ReadFile("../../manifests/webhook/mutatingwebhookconfiguration.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got admissionregistrationv1.MutatingWebhookConfiguration
	if err := yaml.UnmarshalStrict(b, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(MutatingWebhookConfiguration(DefaultConfigurationOptions()), &got); diff != "" {
		t.Errorf("manifests/webhook is stale; run make webhook-config (-generated +file):\n%s", diff)
	}
}

func TestConfiguration(t *testing.T) {
	tests := map[string]struct {
		opts     func(*ConfigurationOptions)
		failure  admissionregistrationv1.FailurePolicyType
		excluded []string
	}{
		"defaults": {opts: func(*ConfigurationOptions) {}, failure: admissionregistrationv1.Ignore, excluded: []string{"kube-system", "secrets-store-injector"}},
		"fail and more exclusions": {opts: func(o *ConfigurationOptions) {
			o.FailurePolicy = admissionregistrationv1.Fail
			o.ServiceNamespace = "ssi"
			o.ExcludedNamespaces = []string{"kube-system", "istio-system"}
		}, failure: admissionregistrationv1.Fail, excluded: []string{"kube-system", "ssi", "istio-system"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := DefaultConfigurationOptions()
			tc.opts(&o)
			w := MutatingWebhookConfiguration(o).Webhooks[0]
			if *w.FailurePolicy != tc.failure || *w.SideEffects != admissionregistrationv1.SideEffectClassNone ||
				*w.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy || *w.TimeoutSeconds != 3 {
				t.Errorf("policy fields: failure %s, side effects %s, reinvocation %s, timeout %d", *w.FailurePolicy, *w.SideEffects, *w.ReinvocationPolicy, *w.TimeoutSeconds)
			}
			want := metav1.LabelSelectorRequirement{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: tc.excluded}
			if diff := cmp.Diff(want, w.NamespaceSelector.MatchExpressions[0]); diff != "" {
				t.Errorf("namespace exclusion:\n%s", diff)
			}
			if len(w.Rules) != 1 || w.Rules[0].Operations[0] != admissionregistrationv1.Create || w.Rules[0].Resources[0] != "pods" {
				t.Errorf("rules %+v", w.Rules)
			}
			if len(w.MatchConditions) != 3 {
				t.Errorf("match conditions %+v", w.MatchConditions)
			}
		})
	}
}
