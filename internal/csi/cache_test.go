package csi

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/scheme"
)

// TestClassCacheTrims: every shim caches every SecretProviderClass of the
// cluster, so the cache keeps neither managedFields nor kubectl's
// last-applied copy, which can double a large class.
func TestClassCacheTrims(t *testing.T) {
	opts := classCacheOptions(scheme.New())
	if opts.DefaultTransform == nil {
		t.Fatal("the SecretProviderClass cache has no transform: it keeps whole objects")
	}
	big := make([]byte, 64<<10)
	for i := range big {
		big[i] = 'x'
	}
	obj := &ssiv1.SecretProviderClass{ObjectMeta: metav1.ObjectMeta{
		Name: "c", Namespace: "tenant",
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", FieldsV1: metav1.NewFieldsV1(string(big))}},
		Annotations:   map[string]string{scheme.LastAppliedAnnotation: string(big)},
	}, Spec: ssiv1.SecretProviderClassSpec{Provider: "vault", Parameters: map[string]string{"roleName": "r"}}}
	out, err := opts.DefaultTransform(obj)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*ssiv1.SecretProviderClass)
	if len(got.ManagedFields) != 0 || got.Annotations[scheme.LastAppliedAnnotation] != "" {
		t.Errorf("cached class keeps managedFields (%d) or the last-applied copy (%d bytes)", len(got.ManagedFields), len(got.Annotations[scheme.LastAppliedAnnotation]))
	}
	if got.Spec.Parameters["roleName"] != "r" || got.Spec.Provider != "vault" {
		t.Errorf("cached class lost its spec: %+v", got.Spec)
	}
}
