package gcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/auth/credentials/externalaccount"
	"cloud.google.com/go/compute/metadata"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/spc"
)

// Default endpoints, overridden by the project's environment variables.
const (
	defaultSTSEndpoint            = "https://sts.googleapis.com"
	defaultIAMCredentialsEndpoint = "https://iamcredentials.googleapis.com" //nolint:gosec // a URL, not a credential

	cloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"
	jwtTokenType       = "urn:ietf:params:oauth:token-type:jwt" //nolint:gosec // a token type name
)

// errPodADCOutsidePod refuses to lend the node's credentials to a pod.
var errPodADCOutsidePod = errors.New("auth: pod-adc needs the pod's workload identity provider here (this process's application default credentials are the node's, not the pod's): annotate the pod's service account for workload identity federation, or set auth: provider-adc to use the node's identity deliberately (which the operator must allow)")

// errProviderADCOutsidePod refuses "auth: provider-adc" in a shared
// process whose operator has not allowed lending its identity.
var errProviderADCOutsidePod = errors.New("auth: provider-adc fetches with this process's own identity (the node's, or the sync controller's), which a process serving every namespace lends to no class unless the operator allows it (flag --allow-process-identity, Helm value allowProcessIdentity); use auth: pod-adc with workload identity federation instead")

// authError is a failure to obtain a Google access token.
type authError struct {
	msg string
	err error
}

func (e *authError) Error() string { return e.msg + ": " + e.err.Error() }
func (e *authError) Unwrap() error { return e.err }

// STSAudience returns the audience of the STS token exchange for a
// workload identity provider given as a full resource name
// ("//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/X"),
// as a resource path ("projects/N/..."), or as a GKE identity namespace
// audience ("identitynamespace:POOL:PROVIDER").
func STSAudience(provider string) string {
	switch {
	case strings.HasPrefix(provider, "//"), strings.HasPrefix(provider, "identitynamespace:"):
		return provider
	case strings.HasPrefix(provider, "https://iam.googleapis.com/"):
		return "//" + strings.TrimPrefix(provider, "https://")
	}
	return "//iam.googleapis.com/" + strings.TrimPrefix(provider, "/")
}

// TokenAudience returns the audience of the service-account token that is
// exchanged at STS for a workload identity provider: the provider's
// default allowed audience "https://iam.googleapis.com/projects/…/providers/X",
// or for a GKE identity namespace audience "identitynamespace:POOL:…" the
// pool ("PROJECT.svc.id.goog"), as GKE issues them.
func TokenAudience(provider string) string {
	aud := STSAudience(provider)
	if rest, ok := strings.CutPrefix(aud, "identitynamespace:"); ok {
		pool, _, _ := strings.Cut(rest, ":")
		return pool
	}
	return "https:" + aud
}

// Audiences returns the service-account token audiences a class needs for
// a pod with the given cloud identity: one when the pod federates through
// a workload identity provider, none when it uses the metadata server or
// the fetching process's credentials.
func Audiences(c *spc.Class, cloud identity.Cloud) []string {
	if c == nil || c.GCP == nil || c.GCP.Auth == spc.GCPAuthProviderADC || cloud.GCPWorkloadIdentityProvider == "" {
		return nil
	}
	return []string{TokenAudience(cloud.GCPWorkloadIdentityProvider)}
}

// podTokens supplies the pod's service-account token to the external
// account credential; it reads the token source of the latest fetch.
type podTokens struct {
	identity.Latest
	audience string
}

func (t *podTokens) SubjectToken(ctx context.Context, _ *externalaccount.RequestOptions) (string, error) {
	return t.Token(ctx, t.audience)
}

// credentialsFor builds the credentials of a fetch: the fetching process's
// ADC (auth: provider-adc); the pod's federated token exchanged at STS,
// optionally impersonating a service account (a workload identity provider
// is set); or the ADC of the pod, which in a GKE pod is the metadata server
// serving the pod's own identity, impersonating the annotated service
// account when that is not who ADC already is.
func (p *Provider) credentialsFor(ctx context.Context, g *spc.GCP, cloud identity.Cloud, tokens *podTokens) (*auth.Credentials, string, error) {
	hc := p.httpClient()
	if g.Auth == spc.GCPAuthProviderADC {
		if p.opts.OutsidePod && !p.opts.AllowProcessIdentity {
			return nil, "", errProviderADCOutsidePod
		}
		c, err := credentials.DetectDefault(&credentials.DetectOptions{Scopes: []string{cloudPlatformScope}, Client: hc, Logger: sdkLogger})
		if err != nil {
			return nil, "", &authError{"find application default credentials of this process (auth: provider-adc)", err}
		}
		return c, "provider-adc", nil
	}
	gsa := cloud.GCPServiceAccount
	if wip := cloud.GCPWorkloadIdentityProvider; wip != "" {
		tokens.audience = TokenAudience(wip)
		o := &externalaccount.Options{
			Audience:             STSAudience(wip),
			SubjectTokenType:     jwtTokenType,
			TokenURL:             p.endpoint(EnvSTSEndpoint, defaultSTSEndpoint) + "/v1/token",
			Scopes:               []string{cloudPlatformScope},
			SubjectTokenProvider: tokens,
			Client:               hc,
			Logger:               sdkLogger,
		}
		mode := "federation"
		if gsa != "" {
			o.ServiceAccountImpersonationURL = p.generateAccessTokenURL(gsa)
			mode = "federation+impersonation"
		}
		c, err := externalaccount.NewCredentials(o)
		if err != nil {
			return nil, "", &authError{"configure workload identity federation with " + wip, err}
		}
		return c, mode, nil
	}
	if p.opts.OutsidePod {
		return nil, "", errPodADCOutsidePod
	}
	base, err := credentials.DetectDefault(&credentials.DetectOptions{Scopes: []string{cloudPlatformScope}, Client: hc, Logger: sdkLogger})
	if err != nil {
		return nil, "", &authError{"find application default credentials of the pod (the GKE metadata server; or set a workload identity provider for federation)", err}
	}
	if gsa == "" {
		return base, "adc", nil
	}
	if metadata.OnGCE() {
		// On GKE the metadata server already answers as the service
		// account the pod's Kubernetes service account is bound to.
		email, err := metadata.NewClient(hc).EmailWithContext(ctx, "default")
		if err == nil && email == gsa {
			return base, "adc", nil
		}
	}
	return auth.NewCredentials(&auth.CredentialsOptions{
		TokenProvider: auth.NewCachedTokenProvider(&impersonation{p: p, base: base, target: gsa}, nil),
	}), "adc+impersonation", nil
}

// KeyJSONKey is the key of a nodePublishSecretRef Secret that holds a
// Google service-account key, as the upstream provider reads it.
const KeyJSONKey = "key.json"

// maxKeyJSONBytes bounds the key.json read from a nodePublishSecretRef
// Secret; a service-account key is about 2.3 KiB.
const maxKeyJSONBytes = 64 << 10

// keyJSONOf returns the service-account key of the volume's
// nodePublishSecretRef Secret when the fetch uses it: the Secret has
// key.json and identity.Decide chose it (parameters.auth not set). Like
// upstream, a key.json together with parameters.auth is refused, and a
// Secret without key.json leaves the pod's identity in use. Errors never
// quote the key.
func keyJSONOf(g *spc.GCP, cl identity.Cloud, secrets map[string]string) ([]byte, error) {
	v, ok := secrets[KeyJSONKey]
	if !ok {
		return nil, nil
	}
	if g.AuthSet {
		return nil, fmt.Errorf("the nodePublishSecretRef Secret has %s and parameters.auth is %q: use one of them (remove parameters.auth to authenticate with the key)", KeyJSONKey, g.Auth)
	}
	if cl.Credentials != identity.CredentialsNodePublishSecret {
		return nil, nil
	}
	if len(v) > maxKeyJSONBytes {
		return nil, fmt.Errorf("%s of the nodePublishSecretRef Secret is %d bytes, more than %d", KeyJSONKey, len(v), maxKeyJSONBytes)
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(v), &head); err != nil {
		return nil, fmt.Errorf("%s of the nodePublishSecretRef Secret is not JSON", KeyJSONKey)
	}
	if head.Type != string(credentials.ServiceAccount) {
		// Other credential files (external_account above all) make the
		// process that fetches read files and call URLs the file names:
		// not something a pod's Secret may direct the node shim to do.
		return nil, fmt.Errorf("%s of the nodePublishSecretRef Secret has type %q; only a service-account key (type %q) is accepted", KeyJSONKey, head.Type, credentials.ServiceAccount)
	}
	return []byte(v), nil
}

// keyCredentials are the credentials of a service-account key: a JWT
// signed with the key, exchanged at the key's token_uri (Google's OAuth
// 2.0 token endpoint) for an access token.
func (p *Provider) keyCredentials(keyJSON []byte) (*auth.Credentials, string, error) {
	c, err := credentials.NewCredentialsFromJSON(credentials.ServiceAccount, keyJSON, &credentials.DetectOptions{
		Scopes: []string{cloudPlatformScope}, Client: p.httpClient(), Logger: sdkLogger,
	})
	if err != nil {
		// The library's error may quote the file; keep it out.
		return nil, "", &authError{"use " + KeyJSONKey + " of the nodePublishSecretRef Secret", errors.New("the service-account key does not parse")}
	}
	return c, "key.json", nil
}

// generateAccessTokenURL is the IAM Credentials method that mints an
// access token for a service account.
func (p *Provider) generateAccessTokenURL(gsa string) string {
	return p.endpoint(EnvIAMCredentialsEndpoint, defaultIAMCredentialsEndpoint) +
		"/v1/projects/-/serviceAccounts/" + url.PathEscape(gsa) + ":generateAccessToken"
}

// impersonation mints access tokens of target with IAM Credentials
// generateAccessToken, authenticated as base.
type impersonation struct {
	p      *Provider
	base   *auth.Credentials
	target string
}

func (im *impersonation) Token(ctx context.Context) (*auth.Token, error) {
	bt, err := im.base.Token(ctx)
	if err != nil {
		return nil, &authError{"obtain the base token to impersonate " + im.target, err}
	}
	body, _ := json.Marshal(map[string]any{"scope": []string{cloudPlatformScope}, "lifetime": "3600s"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, im.p.generateAccessTokenURL(im.target), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bt.Value)
	resp, err := im.p.httpClient().Do(req)
	if err != nil {
		return nil, &authError{"impersonate " + im.target, err}
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Status  string `json:"status"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		return nil, &authError{"impersonate " + im.target, fmt.Errorf("IAM Credentials generateAccessToken: HTTP %d %s %s", resp.StatusCode, e.Error.Status, e.Error.Message)}
	}
	var out struct {
		AccessToken string    `json:"accessToken"`
		ExpireTime  time.Time `json:"expireTime"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.AccessToken == "" {
		return nil, &authError{"impersonate " + im.target, errors.New("IAM Credentials generateAccessToken returned no accessToken")}
	}
	return &auth.Token{Value: out.AccessToken, Type: "Bearer", Expiry: out.ExpireTime}, nil
}
