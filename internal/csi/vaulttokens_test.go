package csi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/scheme"
	"github.com/ssinjector/ssi/internal/spc"
)

// TestVaultTokensLikeVaultCSIProvider: the token a Vault class logs in
// with on the shim path is chosen as vault-csi-provider chooses it
// (internal/config Parse, internal/auth AuthRequest and createJWTToken):
// kubelet's token for the decided audience, else one the shim requests
// with the TokenRequest API for the class's audience (no audiences, i.e.
// the API server's default, when the class sets none), bound to the pod,
// for 15 minutes. Other classes never mint.
func TestVaultTokensLikeVaultCSIProvider(t *testing.T) {
	obj := "- objectName: a\n  secretPath: s\n"
	parse := func(provider string, params map[string]string) *spc.Class {
		c, err := spc.ParseSpec("team", "c", provider, params)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	plain := parse("vault", map[string]string{"roleName": "r", "objects": obj})
	own := parse("vault", map[string]string{"roleName": "r", "audience": "team-a", "objects": obj})
	aws := parse("aws", map[string]string{"objects": "- objectName: db\n  objectType: secretsmanager\n", "region": "eu-west-1"})
	exp := int64(900)
	bound := &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "web-0", UID: "uid-1"}
	cases := map[string]struct {
		class   *spc.Class
		kubelet map[string]string // audience -> token
		token   string            // want
		minted  []authenticationv1.TokenRequestSpec
		err     bool
	}{
		"kubelet's vault token":                   {class: plain, kubelet: map[string]string{"vault": "k-vault", "": "k-default"}, token: "k-vault"},
		"no vault token: kubelet's default token": {class: plain, kubelet: map[string]string{"": "k-default", "sts.amazonaws.com": "k-sts"}, token: "k-default"},
		"no token at all: minted for the default audience": {class: plain, token: "minted",
			minted: []authenticationv1.TokenRequestSpec{{ExpirationSeconds: &exp, BoundObjectRef: bound}}},
		"class audience from kubelet": {class: own, kubelet: map[string]string{"team-a": "k-team", "vault": "k-vault"}, token: "k-team"},
		"class audience minted": {class: own, kubelet: map[string]string{"vault": "k-vault"}, token: "minted",
			minted: []authenticationv1.TokenRequestSpec{{Audiences: []string{"team-a"}, ExpirationSeconds: &exp, BoundObjectRef: bound}}},
		"aws never mints": {class: aws, err: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var minted []authenticationv1.TokenRequestSpec
			sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "web"}}
			api := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(sa).WithInterceptorFuncs(interceptor.Funcs{
				SubResourceCreate: func(_ context.Context, _ client.Client, sub string, obj client.Object, req client.Object, _ ...client.SubResourceCreateOption) error {
					tr, ok := req.(*authenticationv1.TokenRequest)
					if sub != "token" || !ok || obj.GetNamespace() != "team" || obj.GetName() != "web" {
						return errors.New("unexpected subresource create")
					}
					minted = append(minted, tr.Spec)
					tr.Status.Token = "minted"
					return nil
				},
			}).Build()
			d := &Driver{deps: Deps{Tokens: api}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			pr := &publishRequest{pod: identity.Pod{Namespace: "team", Name: "web-0", UID: "uid-1", ServiceAccount: "web"}, tokens: identity.StaticTokens(tc.kubelet)}
			if pr.tokens == nil {
				pr.tokens = identity.StaticTokens{}
			}
			var aud string
			if tc.class.Vault != nil {
				cloud := d.identityOf(context.Background(), tc.class, pr).Cloud
				aud = identity.VaultLoginAudience(tc.class.Vault.Audience, cloud)
			} else {
				aud = identity.AudienceAWSIRSA
			}
			got, err := d.tokensOf(tc.class, pr).Token(context.Background(), aud)
			if tc.err {
				if !errors.Is(err, identity.ErrNoToken) || len(minted) != 0 {
					t.Fatalf("err = %v, minted %d; want ErrNoToken and no TokenRequest", err, len(minted))
				}
				return
			}
			if err != nil || got != tc.token {
				t.Fatalf("token = %q, %v; want %q", got, err, tc.token)
			}
			if diff := cmp.Diff(tc.minted, minted); diff != "" {
				t.Errorf("TokenRequests (-want +got):\n%s", diff)
			}
		})
	}
}
