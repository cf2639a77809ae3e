package scheme

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
)

func TestTrimForCache(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}
	tests := map[string]struct {
		in, want any
	}{
		"class keeps its spec and other annotations": {
			in: &ssiv1.SecretProviderClass{
				ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "n", ManagedFields: managed,
					Annotations: map[string]string{LastAppliedAnnotation: `{"big":"copy"}`, "team": "a"}},
				Spec: ssiv1.SecretProviderClassSpec{Provider: "vault", Parameters: map[string]string{"roleName": "r"}},
			},
			want: &ssiv1.SecretProviderClass{
				ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "n", Annotations: map[string]string{"team": "a"}},
				Spec:       ssiv1.SecretProviderClassSpec{Provider: "vault", Parameters: map[string]string{"roleName": "r"}},
			},
		},
		"metadata-only object loses its last annotation": {
			in: &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "sa", ManagedFields: managed,
				Annotations: map[string]string{LastAppliedAnnotation: "{}"}}},
			want: &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "sa"}},
		},
		"object without either is unchanged": {
			in:   &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"a": "b"}}},
			want: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"a": "b"}}},
		},
		"tombstone passes": {
			in:   cache.DeletedFinalStateUnknown{Key: "n/c"},
			want: cache.DeletedFinalStateUnknown{Key: "n/c"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := TrimForCache(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestConfigMapKeys: a key of a ConfigMap in the namespace is found; a
// missing key, a missing ConfigMap and one of another namespace are not,
// without an error.
func TestConfigMapKeys(t *testing.T) {
	r := fake.NewClientBuilder().WithScheme(New()).WithObjects(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "tpl"}, Data: map[string]string{"k": "text"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "theirs"}, Data: map[string]string{"k": "x"}},
	).Build()
	get := ConfigMapKeys(context.Background(), r, "ns")
	tests := map[string]struct {
		name, key string
		want      string
		found     bool
	}{
		"found":               {name: "tpl", key: "k", want: "text", found: true},
		"missing key":         {name: "tpl", key: "nope"},
		"missing ConfigMap":   {name: "nope", key: "k"},
		"another namespace's": {name: "theirs", key: "k"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v, found, err := get(tc.name, tc.key)
			if err != nil || v != tc.want || found != tc.found {
				t.Errorf("get(%q, %q) = %q, %v, %v; want %q, %v", tc.name, tc.key, v, found, err, tc.want, tc.found)
			}
		})
	}
}
