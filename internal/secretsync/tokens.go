package secretsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	gosync "sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ssinjector/ssi/internal/identity"
)

// TokenRequest asks for one service-account token.
type TokenRequest struct {
	Namespace      string
	ServiceAccount string
	// Audience is the token's audience; identity.DefaultAudience asks for
	// the API server's own.
	Audience string
	// Expiration is the requested lifetime.
	Expiration time.Duration
	// PodName and PodUID bind the token to a pod: it stops being valid
	// when the pod is deleted, and the API server refuses to bind it to a
	// pod running as another service account. Empty for pod-less sync.
	PodName string
	PodUID  types.UID
}

// TokenMinter mints service-account tokens.
type TokenMinter interface {
	// Mint returns a token; errors never contain token material.
	Mint(ctx context.Context, req TokenRequest) (string, error)
}

// ClientMinter mints tokens with the TokenRequest API (create on
// serviceaccounts/token).
type ClientMinter struct {
	Client client.Client
}

// Mint implements TokenMinter.
func (m ClientMinter) Mint(ctx context.Context, req TokenRequest) (string, error) {
	return identity.Mint(ctx, m.Client, identity.MintRequest{
		Namespace: req.Namespace, ServiceAccount: req.ServiceAccount, Audience: req.Audience,
		Expiration: req.Expiration, PodName: req.PodName, PodUID: string(req.PodUID),
	})
}

func audienceName(a string) string { return identity.AudienceName(a) }

// errToken marks token failures, so that they are reported as such and
// not as failures of the backend.
var errToken = errors.New("service-account token")

// tokenCache keeps one cached token source per service account and pod,
// so that a rotation reuses a token minted a moment before instead of
// calling TokenRequest for every fetch.
type tokenCache struct {
	minter     TokenMinter
	expiration time.Duration
	clock      clock.PassiveClock

	mu      gosync.Mutex
	sources map[tokenKey]*tokenEntry
}

type tokenKey struct {
	namespace, serviceAccount string
	podUID                    types.UID
}

type tokenEntry struct {
	cached   *identity.Cached
	lastUsed time.Time
}

// source returns the token source of a service account, bound to a pod
// unless podName is empty.
func (c *tokenCache) source(namespace, serviceAccount, podName string, podUID types.UID) identity.TokenSource {
	k := tokenKey{namespace: namespace, serviceAccount: serviceAccount, podUID: podUID}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sources == nil {
		c.sources = map[tokenKey]*tokenEntry{}
	}
	e := c.sources[k]
	if e == nil {
		mint := identity.FuncTokens(func(ctx context.Context, audience string) (string, error) {
			tok, err := c.minter.Mint(ctx, TokenRequest{
				Namespace: namespace, ServiceAccount: serviceAccount, Audience: audience,
				Expiration: c.expiration, PodName: podName, PodUID: podUID,
			})
			if err != nil {
				return "", fmt.Errorf("%w: %w", errToken, err)
			}
			return tok, nil
		})
		// Reuse a token for half its life: a provider that logs in with
		// it (Vault) gets one valid long enough to finish.
		e = &tokenEntry{cached: &identity.Cached{Source: mint, TTL: c.expiration / 2, Now: c.clock.Now}}
		c.sources[k] = e
	}
	e.lastUsed = c.clock.Now()
	return e.cached
}

// prune drops sources not used for longer than a token lives.
func (c *tokenCache) prune() {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.sources {
		if now.Sub(e.lastUsed) > c.expiration {
			delete(c.sources, k)
		}
	}
}

// KubernetesAudiences are the default API server audiences a pod-less
// token is never minted for, besides identity.DefaultAudience: the
// service-account issuers of kubeadm and kind clusters (an API server's
// --api-audiences falls back to its issuer). Clusters with another issuer
// add theirs (Options.APIServerAudiences, RBACOptions.APIServerAudiences). A token of the API server's own
// audience, bound to no pod, is a credential for the Kubernetes API for as
// long as it lives; a backend that receives one (any vaultAddress the
// class names) could act as the service account.
var KubernetesAudiences = []string{
	"https://kubernetes.default.svc",
	"https://kubernetes.default.svc.cluster.local",
	"kubernetes.default.svc",
	"kubernetes.default.svc.cluster.local",
}

// ErrAPIServerAudience is the refusal to mint a pod-less token for the API
// server's audience.
var ErrAPIServerAudience = errors.New("pod-less sync never mints a token for the API server's own audience")

// podlessTokens is the token source of pod-less sync: tokens not bound to
// a pod, and never for the API server's audience, so the class must name
// an explicit audience (the Vault class's audience parameter, the cloud
// audiences of workload identity).
type podlessTokens struct {
	inner          identity.TokenSource
	class          string
	serviceAccount string
	// apiAudiences are the API server's audiences; nil means
	// KubernetesAudiences.
	apiAudiences []string
}

// Token implements identity.TokenSource.
func (p podlessTokens) Token(ctx context.Context, audience string) (string, error) {
	if IsAPIServerAudience(audience, p.apiAudiences) {
		return "", fmt.Errorf("%w: %w: SecretProviderClass %s is synced pod-less as service account %q and asks for audience %q; set an explicit audience in the class (for Vault the audience parameter, matching the Vault role's audience)",
			errToken, ErrAPIServerAudience, p.class, p.serviceAccount, audienceName(audience))
	}
	return p.inner.Token(ctx, audience)
}

// IsAPIServerAudience reports whether audience is the API server's own:
// the default audience or one of apiAudiences (nil: KubernetesAudiences).
func IsAPIServerAudience(audience string, apiAudiences []string) bool {
	a := strings.TrimSpace(audience)
	if a == identity.DefaultAudience {
		return true
	}
	if apiAudiences == nil {
		apiAudiences = KubernetesAudiences
	}
	for _, k := range apiAudiences {
		if strings.EqualFold(a, k) {
			return true
		}
	}
	return false
}
