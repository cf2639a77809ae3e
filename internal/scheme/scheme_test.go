package scheme

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

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
