package webhook

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ssinjector/ssi/internal/inject"
)

// ConfigurationOptions are the installation-specific parts of the
// MutatingWebhookConfiguration.
type ConfigurationOptions struct {
	// Name of the configuration object.
	Name string
	// ServiceName, ServiceNamespace and ServicePort locate the webhook's
	// Service; Path is its URL path.
	ServiceName, ServiceNamespace string
	ServicePort                   int32
	Path                          string
	// CABundle verifies the serving certificate; empty leaves it to an
	// injector (e.g. cert-manager's cainjector) or the chart.
	CABundle []byte
	// FailurePolicy is Ignore by default: the node CSI shim serves pods
	// the webhook could not rewrite.
	FailurePolicy admissionregistrationv1.FailurePolicyType
	// TimeoutSeconds bounds each call.
	TimeoutSeconds int32
	// ExcludedNamespaces are never sent (kube-system and ServiceNamespace
	// always are excluded).
	ExcludedNamespaces []string
}

// DefaultConfigurationOptions are those of manifests/webhook.
func DefaultConfigurationOptions() ConfigurationOptions {
	return ConfigurationOptions{
		Name:             "secrets-store-injector",
		ServiceName:      "ssi-webhook",
		ServiceNamespace: "secrets-store-injector",
		ServicePort:      443,
		Path:             DefaultPath,
		FailurePolicy:    admissionregistrationv1.Ignore,
		TimeoutSeconds:   3,
	}
}

// WebhookName is the name of the pod webhook in the configuration.
const WebhookName = "pods.secrets-store-injector.io"

// MatchConditions send the webhook only pods that can need it: not already
// injected, not opted out, and with a secrets-store CSI volume or one of
// our annotations. The handler decides everything again; the conditions
// only spare the API server calls it does not need to make.
func MatchConditions() []admissionregistrationv1.MatchCondition {
	ann := func(key string) string {
		return "has(object.metadata.annotations) && ('" + key + "' in object.metadata.annotations)"
	}
	return []admissionregistrationv1.MatchCondition{
		{
			Name:       "not-injected",
			Expression: "!(" + ann(inject.AnnotationStatus) + " && object.metadata.annotations['" + inject.AnnotationStatus + "'] == '" + inject.StatusInjected + "')",
		},
		{
			Name:       "not-opted-out",
			Expression: "!(" + ann(inject.AnnotationInject) + " && object.metadata.annotations['" + inject.AnnotationInject + "'] == 'false')",
		},
		{
			Name: "uses-secrets-store",
			Expression: "(has(object.spec.volumes) && object.spec.volumes.exists(v, has(v.csi) && v.csi.driver == '" + inject.CSIDriver + "'))" +
				" || (has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('" + inject.Prefix + "')))",
		},
	}
}

// MutatingWebhookConfiguration builds the configuration that sends pod
// creations to the webhook.
func MutatingWebhookConfiguration(o ConfigurationOptions) *admissionregistrationv1.MutatingWebhookConfiguration {
	excluded := []string{"kube-system"}
	seen := map[string]bool{"kube-system": true}
	for _, ns := range append([]string{o.ServiceNamespace}, o.ExcludedNamespaces...) {
		if ns != "" && !seen[ns] {
			seen[ns] = true
			excluded = append(excluded, ns)
		}
	}
	path := o.Path
	sideEffects := admissionregistrationv1.SideEffectClassNone
	reinvoke := admissionregistrationv1.IfNeededReinvocationPolicy
	matchPolicy := admissionregistrationv1.Equivalent
	scope := admissionregistrationv1.NamespacedScope
	failure := o.FailurePolicy
	timeout := o.TimeoutSeconds
	port := o.ServicePort
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   o.Name,
			Labels: map[string]string{"app.kubernetes.io/name": "secrets-store-injector", "app.kubernetes.io/component": "webhook"},
		},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: WebhookName,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service:  &admissionregistrationv1.ServiceReference{Name: o.ServiceName, Namespace: o.ServiceNamespace, Path: &path, Port: &port},
				CABundle: o.CABundle,
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups:   []string{""},
					APIVersions: []string{"v1"},
					Resources:   []string{"pods"},
					Scope:       &scope,
				},
			}},
			FailurePolicy: &failure,
			MatchPolicy:   &matchPolicy,
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: excluded},
				{Key: inject.LabelInjection, Operator: metav1.LabelSelectorOpNotIn, Values: []string{inject.LabelValueDisabled}},
			}},
			ObjectSelector:          &metav1.LabelSelector{},
			SideEffects:             &sideEffects,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      &reinvoke,
			MatchConditions:         MatchConditions(),
		}},
	}
}
