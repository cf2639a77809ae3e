// Package identity describes who a fetch runs as: the pod (namespace, name,
// UID, service account), the cloud identities derived for it at admission,
// and a source of service-account tokens for the audiences providers need.
//
// The same providers run in three places that obtain tokens differently: the
// agent reads projected token files, the node shim receives tokens from
// kubelet in the volume context, and the sync controller mints them with the
// TokenRequest API. TokenSource hides that difference.
package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultAudience stands for "the API server's default audience": a token
// requested without an explicit audience.
const DefaultAudience = ""

// Token audiences of the clouds' workload identity mechanisms, which the
// webhook projects tokens for, the node shim's CSIDriver requests and the
// providers present.
const (
	// AudienceAWSIRSA is the audience of the token exchanged with STS
	// AssumeRoleWithWebIdentity (IAM roles for service accounts).
	AudienceAWSIRSA = "sts.amazonaws.com"
	// AudienceAWSPodIdentity is the audience of the token sent to the EKS
	// Pod Identity agent.
	AudienceAWSPodIdentity = "pods.eks.amazonaws.com"
	// AudienceAzureWorkloadIdentity is the audience of the token Microsoft
	// Entra Workload ID accepts as a client assertion.
	AudienceAzureWorkloadIdentity = "api://AzureADTokenExchange" //nolint:gosec // an audience, not a credential
	// AudienceVault is the audience vault-csi-provider looks for among
	// kubelet's tokens when a Vault class sets no `audience` (VaultAudience).
	AudienceVault = "vault"
)

// Pod identifies the pod a fetch is for.
type Pod struct {
	Namespace      string `json:"namespace"`
	Name           string `json:"name"`
	UID            string `json:"uid"`
	ServiceAccount string `json:"serviceAccount"`
	NodeName       string `json:"nodeName,omitempty"`
}

// Cloud holds the cloud identity settings of one volume, as Decide decides
// them from the class, the service account's and the pod's annotations and
// the operator's defaults; the webhook writes them into the agent
// configuration, so that the agent needs no API access.
type Cloud struct {
	// AWSRoleARN is the IRSA role (service account annotation
	// eks.amazonaws.com/role-arn); empty with EKS Pod Identity.
	AWSRoleARN string `json:"awsRoleARN,omitempty"`
	// AzureClientID is the workload identity client ID (class clientID or
	// service account annotation azure.workload.identity/client-id).
	AzureClientID string `json:"azureClientID,omitempty"`
	// AzureTenantID is the tenant: the class's tenantID, which every
	// Azure class has. The Azure provider reads the same parameter.
	AzureTenantID string `json:"azureTenantID,omitempty"`
	// GCPServiceAccount is the Google service account to impersonate
	// (service account annotation iam.gke.io/gcp-service-account).
	GCPServiceAccount string `json:"gcpServiceAccount,omitempty"`
	// GCPWorkloadIdentityProvider is the full resource name of a workload
	// identity federation provider; when set the projected token is
	// exchanged there instead of using the metadata server.
	GCPWorkloadIdentityProvider string `json:"gcpWorkloadIdentityProvider,omitempty"`
	// Credentials, when CredentialsNodePublishSecret, says that the
	// volume's objects are fetched with the credentials of its
	// nodePublishSecretRef Secret, as the upstream providers do: an Azure
	// service principal (keys clientid and clientsecret), or a GCP
	// service-account key (key key.json; without that key the GCP provider
	// falls back on the pod's identity, as upstream does). Empty means the
	// cloud's workload identity as the other fields say.
	Credentials string `json:"credentials,omitempty"`
	// VaultAudience is the audience of the token a Vault class logs in
	// with when it is not the class's own `audience`: AudienceVault when
	// the class sets none and the installation's token requests include
	// it (VaultAudience). Empty means the class's audience, which is the
	// API server's default when the class sets none; configurations
	// written before the field existed mean that too.
	VaultAudience string `json:"vaultAudience,omitempty"`
}

// CredentialsNodePublishSecret is the Cloud.Credentials value of volumes
// fetched with the credentials of their nodePublishSecretRef Secret.
const CredentialsNodePublishSecret = "nodePublishSecretRef" //nolint:gosec // G101: the name of a mode, not a credential

// TokenSource returns service-account tokens of the pod for an audience.
type TokenSource interface {
	// Token returns a token for audience (DefaultAudience for the API
	// server's own). Errors never contain token material.
	Token(ctx context.Context, audience string) (string, error)
}

// Identity is everything a provider knows about who it fetches for.
type Identity struct {
	Pod    Pod
	Cloud  Cloud
	Tokens TokenSource
}

// ErrNoToken is returned when no token is available for an audience.
var ErrNoToken = errors.New("no service-account token for audience")

// FileTokens reads projected token files, one per audience. Kubelet refreshes
// the files, so they are read on every call.
type FileTokens map[string]string

// Token implements TokenSource.
func (f FileTokens) Token(_ context.Context, audience string) (string, error) {
	p, ok := f[audience]
	if !ok {
		return "", fmt.Errorf("%w %q", ErrNoToken, audience)
	}
	t, err := ReadTokenFile(p)
	if err != nil {
		return "", fmt.Errorf("token for audience %q: %w", audience, err)
	}
	return t, nil
}

// ReadTokenFile reads a token file (a projected service-account token, or
// one named by an SDK variable) and returns its content without
// surrounding white space; an empty file is an error. Errors name the
// file, never its content.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path) //nolint:gosec // reading the named token file is the purpose
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return t, nil
}

// Latest holds the token source of the latest fetch, for credentials that
// are cached across fetches but must present the pod's current token
// (kubelet rotates projected tokens). The zero value holds none. It is
// safe for concurrent use.
type Latest struct{ p atomic.Pointer[TokenSource] }

// Set makes ts the source of later tokens.
func (l *Latest) Set(ts TokenSource) { l.p.Store(&ts) }

// Token implements TokenSource with the latest source; without one it
// returns an error wrapping ErrNoToken.
func (l *Latest) Token(ctx context.Context, audience string) (string, error) {
	ts := l.p.Load()
	if ts == nil || *ts == nil {
		return "", fmt.Errorf("%w %q: the pod's token is not available", ErrNoToken, audience)
	}
	return (*ts).Token(ctx, audience)
}

// StaticTokens is a fixed set of tokens by audience, as kubelet hands them
// to a CSI driver.
type StaticTokens map[string]string

// Token implements TokenSource.
func (s StaticTokens) Token(_ context.Context, audience string) (string, error) {
	t, ok := s[audience]
	if !ok || t == "" {
		return "", fmt.Errorf("%w %q", ErrNoToken, audience)
	}
	return t, nil
}

// ParseCSITokens decodes the csi.storage.k8s.io/serviceAccount.tokens volume
// context value: {"<audience>": {"token": "...", "expirationTimestamp": "..."}}.
func ParseCSITokens(s string) (StaticTokens, error) {
	out := StaticTokens{}
	if s == "" {
		return out, nil
	}
	var raw map[string]struct {
		Token               string    `json:"token"`
		ExpirationTimestamp time.Time `json:"expirationTimestamp"`
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		// The error of encoding/json can quote input; keep tokens out of it.
		return nil, errors.New("csi.storage.k8s.io/serviceAccount.tokens is not a JSON object of audience to token")
	}
	for aud, t := range raw {
		out[aud] = t.Token
	}
	return out, nil
}

// Fallback returns First's token for an audience, and Then's when First
// has none (an error wrapping ErrNoToken). The node shim serves Vault
// classes with kubelet's tokens first and a token it requests with the
// TokenRequest API second, as vault-csi-provider does.
type Fallback struct {
	First, Then TokenSource
}

// Token implements TokenSource.
func (f Fallback) Token(ctx context.Context, audience string) (string, error) {
	t, err := f.First.Token(ctx, audience)
	if err == nil || !errors.Is(err, ErrNoToken) || f.Then == nil {
		return t, err
	}
	return f.Then.Token(ctx, audience)
}

// FuncTokens adapts a function, for example one calling TokenRequest.
type FuncTokens func(ctx context.Context, audience string) (string, error)

// Token implements TokenSource.
func (f FuncTokens) Token(ctx context.Context, audience string) (string, error) {
	return f(ctx, audience)
}

// Cached wraps a TokenSource and reuses a token until shortly before it
// would be refreshed; used where minting is an API call.
type Cached struct {
	Source TokenSource
	TTL    time.Duration
	Now    func() time.Time

	mu    sync.Mutex
	cache map[string]cachedToken
}

type cachedToken struct {
	token string
	at    time.Time
}

// Token implements TokenSource.
func (c *Cached) Token(ctx context.Context, audience string) (string, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	c.mu.Lock()
	if t, ok := c.cache[audience]; ok && now().Sub(t.at) < c.TTL {
		c.mu.Unlock()
		return t.token, nil
	}
	c.mu.Unlock()
	tok, err := c.Source.Token(ctx, audience)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if c.cache == nil {
		c.cache = map[string]cachedToken{}
	}
	c.cache[audience] = cachedToken{token: tok, at: now()}
	c.mu.Unlock()
	return tok, nil
}
