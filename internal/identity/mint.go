package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// MintRequest asks the TokenRequest API for one token of a service
// account.
type MintRequest struct {
	Namespace, ServiceAccount string
	// Audience is the token's audience; DefaultAudience asks for the API
	// server's own (a request without audiences).
	Audience string
	// Expiration is the requested lifetime.
	Expiration time.Duration
	// PodName and PodUID bind the token to a pod: it stops being valid
	// when the pod is deleted. Empty binds it to nothing.
	PodName, PodUID string
}

// Mint creates a token with the TokenRequest API (create on
// serviceaccounts/token) through c. Errors name the service account and
// the audience, never token material.
func Mint(ctx context.Context, c client.SubResourceClientConstructor, req MintRequest) (string, error) {
	secs := int64(req.Expiration / time.Second)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}
	if req.Audience != DefaultAudience {
		tr.Spec.Audiences = []string{req.Audience}
	}
	if req.PodName != "" {
		tr.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: req.PodName, UID: types.UID(req.PodUID)}
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: req.ServiceAccount}}
	if err := c.SubResource("token").Create(ctx, sa, tr); err != nil {
		return "", fmt.Errorf("TokenRequest for service account %s/%s (audience %q): %w", req.Namespace, req.ServiceAccount, AudienceName(req.Audience), err)
	}
	if tr.Status.Token == "" {
		return "", errors.New("TokenRequest for service account " + req.Namespace + "/" + req.ServiceAccount + " returned no token")
	}
	return tr.Status.Token, nil
}

// AudienceName names an audience in messages: DefaultAudience is "API
// server default".
func AudienceName(a string) string {
	if a == DefaultAudience {
		return "API server default"
	}
	return a
}
