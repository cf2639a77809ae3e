package azure

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

// TokenAudience is the audience of the service-account token that
// Microsoft Entra Workload ID accepts as a client assertion.
const TokenAudience = identity.AudienceAzureWorkloadIdentity

// Audiences returns the service-account token audiences a class needs: the
// workload identity audience unless the class uses a node identity.
func Audiences(c *spc.Class) []string {
	if c == nil || c.Azure == nil || c.Azure.UseVMManagedIdentity || c.Azure.UsePodIdentity || c.Azure.UseAzureTokenProxy {
		return nil
	}
	return []string{TokenAudience}
}

// maxClients bounds the clients kept between fetches. The agent uses one;
// the node shim one per pod identity and vault.
const maxClients = 64

// vaultClients are the SDK clients of one vault for one identity. They are
// kept between fetches so that the Key Vault challenge and the Entra token
// exchange happen once per token lifetime, not once per rotation.
type vaultClients struct {
	secrets *azsecrets.Client
	keys    *azkeys.Client
	certs   *azcertificates.Client
	// tokens is the pod's token source of the latest fetch, read by the
	// workload identity assertion callback.
	tokens   identity.Latest
	lastUsed time.Time
}

type clientCache struct {
	mu sync.Mutex
	m  map[string]*vaultClients
}

// clientsFor returns the clients for the class's vault and identity,
// creating them on first use.
func (p *Provider) clientsFor(req provider.Request) (*vaultClients, error) {
	az := req.Class.Azure
	ce, err := resolveCloud(az, p.getenv, p.opts.Files)
	if err != nil {
		return nil, p.classError(req, provider.ReasonInvalidConfig, err)
	}
	vault, verify, err := vaultURL(az, ce, p.getenv)
	if err != nil {
		return nil, p.classError(req, provider.ReasonInvalidConfig, err)
	}
	mode, clientID, err := identityMode(req, p.opts.OutsidePod && !p.opts.AllowProcessIdentity)
	if err != nil {
		return nil, p.classError(req, provider.ReasonInvalidConfig, err)
	}
	pod := req.Identity.Pod
	key := strings.Join([]string{vault, fmt.Sprint(verify), ce.authorityHost, az.TenantID, mode, clientID, az.UserAssignedIdentityID}, "\x00")
	if mode == modeWorkloadIdentity {
		// Workload identity is per service account; the shim serves many.
		key += "\x00" + strings.Join([]string{pod.Namespace, pod.ServiceAccount, pod.UID}, "\x00")
	}
	var sp servicePrincipal
	if mode == modeServicePrincipal {
		if sp, err = servicePrincipalOf(req.Secrets); err != nil {
			return nil, p.classError(req, provider.ReasonInvalidConfig, err)
		}
		// A rotated Secret (another client or secret) gets new clients;
		// the key holds a digest of the secret, never the secret.
		key += "\x00" + pod.Namespace + "\x00" + sp.clientID + "\x00" + sp.digest()
	}

	p.cache.mu.Lock()
	defer p.cache.mu.Unlock()
	if p.cache.m == nil {
		p.cache.m = map[string]*vaultClients{}
	}
	vc := p.cache.m[key]
	if vc == nil {
		vc, err = p.newClients(req, ce, vault, verify, mode, clientID, sp)
		if err != nil {
			return nil, err
		}
		if len(p.cache.m) >= maxClients {
			p.evictOldest()
		}
		p.cache.m[key] = vc
	}
	if req.Identity.Tokens != nil {
		vc.tokens.Set(req.Identity.Tokens)
	}
	vc.lastUsed = time.Now()
	return vc, nil
}

func (p *Provider) evictOldest() {
	var oldest string
	var at time.Time
	for k, vc := range p.cache.m {
		if oldest == "" || vc.lastUsed.Before(at) {
			oldest, at = k, vc.lastUsed
		}
	}
	delete(p.cache.m, oldest)
}

const (
	modeWorkloadIdentity = "workload-identity"
	modeManagedIdentity  = "vm-managed-identity"
	modeServicePrincipal = "service-principal"
)

// maxSecretKeyBytes bounds each credential read from a nodePublishSecretRef
// Secret; a client ID is a GUID and a client secret well under 1 KiB.
const maxSecretKeyBytes = 4 << 10

// servicePrincipal is the client ID and secret of a nodePublishSecretRef
// Secret.
type servicePrincipal struct{ clientID, secret string }

func (s servicePrincipal) digest() string {
	h := sha256.Sum256([]byte(s.clientID + "\x00" + s.secret))
	return hex.EncodeToString(h[:])
}

// servicePrincipalOf reads the keys clientid and clientsecret (in any
// case, as upstream matches them) from the volume's nodePublishSecretRef
// Secret. Errors name the keys, never their values.
func servicePrincipalOf(secrets map[string]string) (servicePrincipal, error) {
	if secrets == nil {
		return servicePrincipal{}, errors.New("service principal: the volume's nodePublishSecretRef Secret is not available")
	}
	var sp servicePrincipal
	for k, v := range secrets {
		switch strings.ToLower(k) {
		case "clientid":
			sp.clientID = strings.TrimSpace(v)
		case "clientsecret":
			sp.secret = v
		}
	}
	switch {
	case sp.clientID == "":
		return sp, errors.New("service principal: the nodePublishSecretRef Secret has no clientid key (or it is empty)")
	case sp.secret == "":
		return sp, errors.New("service principal: the nodePublishSecretRef Secret has no clientsecret key (or it is empty)")
	case len(sp.clientID) > maxSecretKeyBytes || len(sp.secret) > maxSecretKeyBytes:
		return sp, fmt.Errorf("service principal: clientid or clientsecret of the nodePublishSecretRef Secret is longer than %d bytes", maxSecretKeyBytes)
	}
	return sp, nil
}

// errManagedIdentityOutsidePod refuses useVMManagedIdentity in a shared
// process whose operator has not allowed lending its identity.
var errManagedIdentityOutsidePod = errors.New(`parameters.useVMManagedIdentity: the managed identity here is this process's own (the node's, or the sync controller's), which a process serving every namespace lends to no class unless the operator allows it (flag --allow-process-identity, Helm value allowProcessIdentity); use Microsoft Entra Workload ID instead: set parameters.clientID or annotate the service account with azure.workload.identity/client-id`)

// identityMode picks how to authenticate, or explains why the class asks
// for a mode that cannot work; noProcessIdentity refuses the process's own
// managed identity.
func identityMode(req provider.Request, noProcessIdentity bool) (mode, clientID string, err error) {
	az := req.Class.Azure
	switch {
	case az.UsePodIdentity:
		return "", "", errors.New(`parameters.usePodIdentity: aad-pod-identity is retired and not supported; use Microsoft Entra Workload ID: remove usePodIdentity and set parameters.clientID, or annotate the service account with azure.workload.identity/client-id`)
	case az.UseAzureTokenProxy:
		return "", "", errors.New(`parameters.useAzureTokenProxy: AKS identity binding is not supported (its token proxy protocol is not publicly documented); use Microsoft Entra Workload ID: remove useAzureTokenProxy and set parameters.clientID, or annotate the service account with azure.workload.identity/client-id`)
	case az.UseVMManagedIdentity && noProcessIdentity:
		return "", "", errManagedIdentityOutsidePod
	case az.UseVMManagedIdentity:
		return modeManagedIdentity, az.UserAssignedIdentityID, nil
	}
	if az.ClientID == "" && req.Identity.Cloud.Credentials == identity.CredentialsNodePublishSecret {
		return modeServicePrincipal, "", nil
	}
	clientID = az.ClientID
	if clientID == "" {
		clientID = req.Identity.Cloud.AzureClientID
	}
	if clientID == "" {
		return "", "", errors.New(`no workload identity client ID: set parameters.clientID or annotate the service account with azure.workload.identity/client-id, or name a Secret with a service principal's clientid and clientsecret in the volume's nodePublishSecretRef`)
	}
	return modeWorkloadIdentity, clientID, nil
}

func (p *Provider) newClients(req provider.Request, ce cloudEndpoints, vault string, verify bool, mode, clientID string, sp servicePrincipal) (*vaultClients, error) {
	az := req.Class.Azure
	base := p.opts.ClientOptions
	base.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: ce.authorityHost}
	vc := &vaultClients{}

	var cred azcore.TokenCredential
	var err error
	switch mode {
	case modeManagedIdentity:
		o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: base}
		if az.UserAssignedIdentityID != "" {
			o.ID = azidentity.ClientID(az.UserAssignedIdentityID)
		}
		cred, err = azidentity.NewManagedIdentityCredential(o)
	case modeServicePrincipal:
		cred, err = azidentity.NewClientSecretCredential(az.TenantID, sp.clientID, sp.secret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions:            base,
			DisableInstanceDiscovery: !ce.knownAuthority,
		})
	case modeWorkloadIdentity:
		assertion := func(ctx context.Context) (string, error) { return vc.tokens.Token(ctx, TokenAudience) }
		cred, err = azidentity.NewClientAssertionCredential(az.TenantID, clientID, assertion, &azidentity.ClientAssertionCredentialOptions{
			ClientOptions: base,
			// Hosts that are not a public or sovereign cloud's (Azure Stack,
			// AZURE_AUTHORITY_HOST) have no instance discovery endpoint.
			DisableInstanceDiscovery: !ce.knownAuthority,
		})
	}
	if err != nil {
		return nil, p.classError(req, provider.ReasonInvalidConfig, fmt.Errorf("create %s credential: %w", mode, err))
	}
	// The Key Vault clients use the cloud from the challenge, not base.Cloud.
	kvBase := p.opts.ClientOptions
	if vc.secrets, err = azsecrets.NewClient(vault, cred, &azsecrets.ClientOptions{ClientOptions: kvBase, DisableChallengeResourceVerification: !verify}); err != nil {
		return nil, p.classError(req, provider.ReasonInvalidConfig, fmt.Errorf("create secrets client for %s: %w", vault, err))
	}
	if vc.keys, err = azkeys.NewClient(vault, cred, &azkeys.ClientOptions{ClientOptions: kvBase, DisableChallengeResourceVerification: !verify}); err != nil {
		return nil, p.classError(req, provider.ReasonInvalidConfig, fmt.Errorf("create keys client for %s: %w", vault, err))
	}
	if vc.certs, err = azcertificates.NewClient(vault, cred, &azcertificates.ClientOptions{ClientOptions: kvBase, DisableChallengeResourceVerification: !verify}); err != nil {
		return nil, p.classError(req, provider.ReasonInvalidConfig, fmt.Errorf("create certificates client for %s: %w", vault, err))
	}
	return vc, nil
}
