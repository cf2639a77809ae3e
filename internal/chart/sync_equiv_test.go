package chart

import (
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ssinjector/ssi/internal/secretsync"
)

// TestSyncAccessMatchesCode compares the chart's sync controller access
// (RBAC and admission policy) with internal/secretsync.RBAC, which the sync
// controller's own tests run under.
func TestSyncAccessMatchesCode(t *testing.T) {
	r := runner(t)
	const ns = "platform"
	for name, tc := range map[string]struct {
		set   []string
		allow []string
		auds  []string
	}{
		"defaults":            {set: []string{"syncSecret.enabled=true"}},
		"kube-system allowed": {set: []string{"syncSecret.enabled=true", "syncSecret.allowProtectedNamespaces={kube-system}"}, allow: []string{"kube-system"}},
		"both allowed":        {set: []string{"syncSecret.enabled=true", "syncSecret.allowProtectedNamespaces={kube-system,platform}"}, allow: []string{"kube-system", ns}},
		"own issuer":          {set: []string{"syncSecret.enabled=true", "syncSecret.apiServerAudiences={https://issuer.example}"}, auds: []string{"https://issuer.example"}},
	} {
		t.Run(name, func(t *testing.T) {
			objs := render(t, r, Options{Namespace: ns, Set: tc.set})
			compareSyncAccess(t, objs, secretsync.RBACOptions{Namespace: ns, ServiceAccount: "ssi-sync", AllowProtectedNamespaces: tc.allow, APIServerAudiences: tc.auds})
		})
	}
}

func compareSyncAccess(t *testing.T, objs []*unstructured.Unstructured, o secretsync.RBACOptions) {
	t.Helper()
	for _, want := range secretsync.RBAC(o) {
		kind := want.GetObjectKind().GroupVersionKind().Kind
		if kind == "" {
			switch want.(type) {
			case *rbacv1.ClusterRole:
				kind = "ClusterRole"
			case *rbacv1.ClusterRoleBinding:
				kind = "ClusterRoleBinding"
			case *rbacv1.Role:
				kind = "Role"
			case *rbacv1.RoleBinding:
				kind = "RoleBinding"
			case *admissionregistrationv1.ValidatingAdmissionPolicy:
				kind = "ValidatingAdmissionPolicy"
			case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
				kind = "ValidatingAdmissionPolicyBinding"
			}
		}
		u := Get(objs, kind, want.GetName())
		if u == nil {
			t.Errorf("the chart has no %s %s", kind, want.GetName())
			continue
		}
		var got, exp any
		switch w := want.(type) {
		case *rbacv1.ClusterRole:
			got, exp = convert[rbacv1.ClusterRole](t, u).Rules, w.Rules
		case *rbacv1.ClusterRoleBinding:
			g := convert[rbacv1.ClusterRoleBinding](t, u)
			got, exp = []any{g.RoleRef, g.Subjects}, []any{w.RoleRef, w.Subjects}
		case *rbacv1.Role:
			got, exp = convert[rbacv1.Role](t, u).Rules, w.Rules
		case *rbacv1.RoleBinding:
			g := convert[rbacv1.RoleBinding](t, u)
			got, exp = []any{g.RoleRef, g.Subjects}, []any{w.RoleRef, w.Subjects}
		case *admissionregistrationv1.ValidatingAdmissionPolicy:
			got, exp = convert[admissionregistrationv1.ValidatingAdmissionPolicy](t, u).Spec, w.Spec
		case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			got, exp = convert[admissionregistrationv1.ValidatingAdmissionPolicyBinding](t, u).Spec, w.Spec
		default:
			t.Errorf("internal/secretsync.RBAC returns a %T the test does not know", want)
			continue
		}
		sameAsCode(t, kind+" "+want.GetName()+" differs from internal/secretsync.RBAC", got, exp)
	}
}
