package chart

import (
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/ssinjector/ssi/internal/webhook"
)

// TestMutatingWebhookConfigurationMatchesCode compares the chart's webhook
// with internal/webhook.MutatingWebhookConfiguration (what the webhook's
// own tests run against and `make webhook-config` writes) for the same
// settings; only the caBundle, which the chart fills, may differ.
func TestMutatingWebhookConfigurationMatchesCode(t *testing.T) {
	r := runner(t)
	tests := map[string]struct {
		o    Options
		code func(*webhook.ConfigurationOptions)
	}{
		"defaults": {Options{Namespace: "secrets-store-injector"}, func(*webhook.ConfigurationOptions) {}},
		"non-default": {nonDefault, func(c *webhook.ConfigurationOptions) {
			c.ServiceNamespace = "platform-secrets"
			c.FailurePolicy = admissionregistrationv1.Fail
			c.TimeoutSeconds = 5
			c.ExcludedNamespaces = []string{"legacy", "batch"}
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objs := render(t, r, tc.o)
			got := convert[admissionregistrationv1.MutatingWebhookConfiguration](t, Get(objs, "MutatingWebhookConfiguration", "secrets-store-injector"))
			co := webhook.DefaultConfigurationOptions()
			tc.code(&co)
			want := webhook.MutatingWebhookConfiguration(co)
			if got.Name != want.Name {
				t.Errorf("name %q, code says %q", got.Name, want.Name)
			}
			for i := range got.Webhooks {
				got.Webhooks[i].ClientConfig.CABundle = nil
			}
			sameAsCode(t, "chart webhooks differ from internal/webhook", got.Webhooks, want.Webhooks)
		})
	}
}
