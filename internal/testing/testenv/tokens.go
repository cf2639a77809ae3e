package testenv

import (
	"context"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ssinjector/ssi/internal/identity"
)

// minTokenTTL is the shortest expiration the API server grants.
const minTokenTTL = 10 * time.Minute

// Tokens is a TokenSource that mints tokens of service account ns/sa with
// the TokenRequest API on every call: identity.DefaultAudience asks for the
// API server's default audience, any other audience is requested as is.
// ttl below the API server's minimum (10 minutes) is raised to it.
func (e *Env) Tokens(ns, sa string, ttl time.Duration) identity.TokenSource {
	if ttl < minTokenTTL {
		ttl = minTokenTTL
	}
	return identity.FuncTokens(func(ctx context.Context, audience string) (string, error) {
		var auds []string
		if audience != identity.DefaultAudience {
			auds = []string{audience}
		}
		return e.Token(ctx, ns, sa, auds, ttl, nil)
	})
}

// ReviewerToken creates a service account bound to the ClusterRole
// system:auth-delegator (allowed to call TokenReview and
// SubjectAccessReview) in a new namespace and returns a 24-hour token of it,
// as Vault's Kubernetes auth needs for token_reviewer_jwt.
func (e *Env) ReviewerToken(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	ns := e.Namespace(t, "token-reviewer", nil)
	e.ServiceAccount(t, ns, "reviewer", nil)
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "token-reviewer-" + ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "reviewer"}},
	}
	if err := e.Client.Create(ctx, crb); err != nil {
		t.Fatalf("bind reviewer to system:auth-delegator: %v", err)
	}
	tok, err := e.Token(ctx, ns, "reviewer", nil, 24*time.Hour, nil)
	if err != nil {
		t.Fatalf("reviewer token: %v", err)
	}
	return tok
}
