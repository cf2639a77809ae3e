package identity

import (
	"flag"
	"fmt"
	"sort"
	"strings"

	"github.com/ssinjector/ssi/internal/spc"
)

// Service account annotations Decide reads; the names are those of the
// clouds' own workload identity webhooks.
const (
	SAAnnotationAWSRoleARN     = "eks.amazonaws.com/role-arn"
	SAAnnotationAzureClientID  = "azure.workload.identity/client-id"
	SAAnnotationGCPServiceAcct = "iam.gke.io/gcp-service-account"
)

// AnnotationGCPWorkloadIdentityProvider is the pod annotation naming a GCP
// workload identity federation provider (docs/annotations.md). It is the
// one pod annotation Decide reads; the webhook validates it at admission.
const AnnotationGCPWorkloadIdentityProvider = "secrets-store-injector.io/gcp-workload-identity-provider"

// Sources are the inputs of Decide besides the volume's class: what is
// known about the pod, its service account and the volume, and the
// operator's defaults of the calling component.
type Sources struct {
	// ServiceAccount is the name of the pod's service account, for the
	// warnings.
	ServiceAccount string
	// ServiceAccountKnown is false when the caller could not read the
	// service account (not found, no permission, lookups disabled); its
	// annotations are then none, and the warnings say why.
	ServiceAccountKnown bool
	// ServiceAccountAnnotations are the service account's annotations.
	ServiceAccountAnnotations map[string]string
	// PodAnnotations are the pod's annotations.
	PodAnnotations map[string]string
	// NodePublishSecret is set when the volume names a nodePublishSecretRef
	// (an Azure service principal's credentials, for example).
	NodePublishSecret bool
	// Defaults are the operator's defaults of the calling component.
	Defaults Defaults
}

// Defaults are operator settings that apply to every pod a component
// serves, unless the pod says otherwise.
type Defaults struct {
	// GCPWorkloadIdentityProvider is the workload identity federation
	// provider of pods that name none: the node shim's
	// --gcp-workload-identity-provider. The webhook and the sync
	// controller have no such setting (the agent in a GKE pod uses the
	// metadata server instead).
	GCPWorkloadIdentityProvider string
	// TokenRequests are the audiences kubelet requests for the node
	// shim's volumes (the CSIDriver's tokenRequests, Helm value
	// tokenRequests): the webhook's and the sync controller's
	// --token-requests, and on the shim the audiences of the tokens
	// kubelet sent with the volume. They decide a Vault class's audience
	// when the class sets none (VaultAudience).
	TokenRequests []string
}

// Decision is the identity of one volume and what follows from it.
type Decision struct {
	// Cloud is the cloud identity the volume's objects are fetched with.
	Cloud Cloud
	// Audiences are the service-account token audiences the volume's
	// provider presents, sorted, without repetition (DefaultAudience is
	// the API server's).
	Audiences []string
	// Warnings explain identity settings that will not work as the user
	// may expect; the webhook returns them as admission warnings.
	Warnings []string
	// Unsupported, when set, explains why the volume's identity mode is
	// not supported here and what to use instead; the webhook denies the
	// pod with it at admission, and the node shim and the sync controller
	// refuse the fetch with it.
	Unsupported string
}

// Decide decides the identity one volume's objects are fetched with. The
// webhook (for the agent's configuration), the node shim and the sync
// controller all call it, per volume, so a pod's volumes are fetched as
// the same identities wherever they are served. Precedence, per field:
//
//   - AWS, IRSA (the default): the role is the service account's
//     eks.amazonaws.com/role-arn; token audience sts.amazonaws.com.
//     With parameters.usePodIdentity: "true" (EKS Pod Identity) no role
//     is set, whatever the service account says; token audience
//     pods.eks.amazonaws.com.
//   - Azure: the tenant is the class's tenantID, which every Azure class
//     has (parsing requires it, as upstream does). usePodIdentity
//     (aad-pod-identity, retired) and useAzureTokenProxy (AKS identity
//     bindings, whose proxy protocol is not documented) are Unsupported.
//     useVMManagedIdentity uses the node's identity: no client ID, no
//     token. A class without parameters.clientID whose volume has a
//     nodePublishSecretRef uses a service principal from that Secret
//     (Credentials CredentialsNodePublishSecret; no client ID, no token),
//     as upstream does. Otherwise the client ID is the class's
//     parameters.clientID, else the service account's
//     azure.workload.identity/client-id, and the token audience is
//     api://AzureADTokenExchange.
//   - GCP: the Google service account is the service account's
//     iam.gke.io/gcp-service-account. A volume with a nodePublishSecretRef
//     and no parameters.auth uses the Secret's key.json when it has one
//     (Credentials CredentialsNodePublishSecret; the other fields stay, for
//     a Secret without key.json). With auth: provider-adc the fetching
//     process's credentials are used: no federation provider and no
//     token. Otherwise the federation provider is the pod's annotation
//     secrets-store-injector.io/gcp-workload-identity-provider (normalised
//     to "//iam.googleapis.com/projects/…"), else the operator's default,
//     else none (the GKE metadata server); with a provider the token
//     audience is the provider's default allowed audience
//     (https://iam.googleapis.com/projects/…, or the pool of a GKE
//     identity namespace "identitynamespace:POOL:…").
//   - Vault: the token audience is VaultAudience's, the rule of
//     vault-csi-provider: the class's audience, else "vault" when the
//     token requests include it, else the API server's default. A
//     decided "vault" is recorded in Cloud.VaultAudience, which the
//     Vault provider logs in with.
//   - Classes of provider plugins: nothing.
//
// A pod annotation that does not parse is no source (the webhook denies
// such a pod at admission); a warning says so.
func Decide(c *spc.Class, src Sources) Decision {
	var d Decision
	auds := map[string]bool{}
	sa := src.ServiceAccountAnnotations
	if !src.ServiceAccountKnown {
		sa = nil
	}
	switch {
	case c.AWS != nil:
		if c.AWS.UsePodIdentity {
			auds[AudienceAWSPodIdentity] = true
			break
		}
		auds[AudienceAWSIRSA] = true
		d.Cloud.AWSRoleARN = sa[SAAnnotationAWSRoleARN]
		switch {
		case d.Cloud.AWSRoleARN != "":
		case !src.ServiceAccountKnown:
			d.Warnings = append(d.Warnings, fmt.Sprintf("SecretProviderClass %s: service account %q is unknown, so no IRSA role is set; annotate it with %s", c.Name, src.ServiceAccount, SAAnnotationAWSRoleARN))
		default:
			d.Warnings = append(d.Warnings, fmt.Sprintf("SecretProviderClass %s: service account %q has no %s annotation, so the agent has no IRSA role to assume (set usePodIdentity: \"true\" for EKS Pod Identity)", c.Name, src.ServiceAccount, SAAnnotationAWSRoleARN))
		}
	case c.Azure != nil:
		az := c.Azure
		d.Cloud.AzureTenantID = az.TenantID
		switch {
		case az.UsePodIdentity:
			d.Unsupported = fmt.Sprintf("SecretProviderClass %s: parameters.usePodIdentity: \"true\" selects aad-pod-identity, which Microsoft retired (its NMI endpoint is not served here); use Microsoft Entra Workload ID: remove usePodIdentity and set parameters.clientID, or annotate service account %q with %s", c.Name, src.ServiceAccount, SAAnnotationAzureClientID)
		case az.UseAzureTokenProxy:
			d.Unsupported = fmt.Sprintf("SecretProviderClass %s: parameters.useAzureTokenProxy: \"true\" selects AKS identity bindings, whose token proxy protocol (its TLS server name and endpoint) is not publicly documented, so it is not supported here; use Microsoft Entra Workload ID: remove useAzureTokenProxy and set parameters.clientID, or annotate service account %q with %s", c.Name, src.ServiceAccount, SAAnnotationAzureClientID)
		case az.UseVMManagedIdentity:
			d.Warnings = append(d.Warnings, processIdentityWarning(c.Name, "parameters.useVMManagedIdentity", "the node's managed identity"))
			// A node identity: no pod token.
		case az.ClientID == "" && src.NodePublishSecret:
			// A service principal from the nodePublishSecretRef Secret
			// (clientid, clientsecret), as upstream uses it whenever the
			// class names no clientID, whatever the service account says.
			d.Cloud.Credentials = CredentialsNodePublishSecret
		default:
			d.Cloud.AzureClientID = az.ClientID
			if d.Cloud.AzureClientID == "" {
				d.Cloud.AzureClientID = sa[SAAnnotationAzureClientID]
			}
			auds[AudienceAzureWorkloadIdentity] = true
			if d.Cloud.AzureClientID == "" {
				d.Warnings = append(d.Warnings, fmt.Sprintf("SecretProviderClass %s: Azure workload identity needs a client ID: set parameters.clientID or annotate service account %q with %s (or name a service principal's Secret in the volume's nodePublishSecretRef)", c.Name, src.ServiceAccount, SAAnnotationAzureClientID))
			}
		}
	case c.GCP != nil:
		d.Cloud.GCPServiceAccount = sa[SAAnnotationGCPServiceAcct]
		if src.NodePublishSecret {
			if c.GCP.AuthSet {
				// Upstream refuses key.json together with an auth
				// parameter; whether the Secret has key.json is known at
				// fetch only.
				d.Warnings = append(d.Warnings, fmt.Sprintf("SecretProviderClass %s: parameters.auth is set and the volume names a nodePublishSecretRef: the fetch fails if that Secret has a key.json key (remove parameters.auth to use it)", c.Name))
			} else {
				d.Cloud.Credentials = CredentialsNodePublishSecret
			}
		}
		if c.GCP.Auth == spc.GCPAuthProviderADC {
			d.Warnings = append(d.Warnings, processIdentityWarning(c.Name, "parameters.auth: provider-adc", "the application default credentials of the process that fetches (the node's)"))
			break
		}
		wip := src.Defaults.GCPWorkloadIdentityProvider
		if v, ok := src.PodAnnotations[AnnotationGCPWorkloadIdentityProvider]; ok {
			p, err := ParseGCPWorkloadIdentityProvider(v)
			if err != nil {
				d.Warnings = append(d.Warnings, fmt.Sprintf("annotation %s is ignored: %v", AnnotationGCPWorkloadIdentityProvider, err))
			} else {
				wip = p
			}
		}
		if wip != "" {
			d.Cloud.GCPWorkloadIdentityProvider = wip
			auds[gcpTokenAudience(wip)] = true
		}
	case c.Vault != nil:
		a := VaultAudience(c.Vault.Audience, src.Defaults.TokenRequests)
		auds[a] = true
		if a != c.Vault.Audience {
			d.Cloud.VaultAudience = a
		}
	}
	d.Audiences = make([]string, 0, len(auds))
	for a := range auds {
		d.Audiences = append(d.Audiences, a)
	}
	sort.Strings(d.Audiences)
	return d
}

// VaultAudience is the audience of the service-account token a Vault
// class logs in with, given the class's `audience` parameter and the
// audiences of the tokens kubelet is asked for (the CSIDriver's
// tokenRequests). It is vault-csi-provider's rule (internal/config: the
// token of kubelet's csi.storage.k8s.io/serviceAccount.tokens keyed by
// the class's audience, else by "vault"; internal/auth: without such a
// token it creates one with the TokenRequest API for the class's
// audience, which is the API server's default when the class sets none),
// reduced to the audience that results:
//
//   - the class's audience when it sets one (kubelet's token, or one
//     minted for it);
//   - else "vault" when the token requests include "vault";
//   - else DefaultAudience (upstream mints a token without audiences).
func VaultAudience(classAudience string, tokenRequests []string) string {
	if classAudience != "" {
		return classAudience
	}
	for _, a := range tokenRequests {
		if a == AudienceVault {
			return AudienceVault
		}
	}
	return DefaultAudience
}

// VaultLoginAudience is the audience the Vault provider presents for
// class audience classAudience and the decided cloud identity.
func VaultLoginAudience(classAudience string, cloud Cloud) string {
	if cloud.VaultAudience != "" {
		return cloud.VaultAudience
	}
	return classAudience
}

// processIdentityWarning warns about a class that fetches with the
// identity of the process that runs the provider: the agent in this pod
// uses the node's identity, and the node CSI shim and the sync controller,
// which serve every namespace, refuse the class unless the operator lets
// them lend their own identity (builtin.Shared).
func processIdentityWarning(class, field, whose string) string {
	return fmt.Sprintf("SecretProviderClass %s: %s fetches with %s, not the pod's; the node CSI shim (pods not injected) and the sync controller (secretObjects) refuse this class unless the operator allows it (--allow-process-identity, Helm value allowProcessIdentity)", class, field, whose)
}

// ParseGCPWorkloadIdentityProvider normalises a workload identity
// federation provider, as the pod annotation names it, to its full
// resource name "//iam.googleapis.com/projects/…" (the STS audience).
func ParseGCPWorkloadIdentityProvider(v string) (string, error) {
	const host = "//iam.googleapis.com/"
	name := strings.TrimPrefix(strings.TrimSpace(v), host)
	parts := strings.Split(name, "/")
	if len(parts) != 8 || parts[0] != "projects" || parts[2] != "locations" || parts[4] != "workloadIdentityPools" || parts[6] != "providers" {
		return "", fmt.Errorf("%q is not projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER", v)
	}
	for _, p := range parts {
		if p == "" {
			return "", fmt.Errorf("%q has an empty segment", v)
		}
	}
	return host + name, nil
}

// gcpTokenAudience is the audience of the service-account token exchanged
// at Google's STS for a workload identity provider, given as a full
// resource name "//iam.googleapis.com/projects/…", a resource path
// "projects/…", an https URL, or a GKE identity namespace audience
// "identitynamespace:POOL:PROVIDER": the provider's default allowed
// audience "https://iam.googleapis.com/projects/…", or the pool. It is
// the rule of the gcp provider's TokenAudience, which the agreement tests
// hold it to.
func gcpTokenAudience(provider string) string {
	if rest, ok := strings.CutPrefix(provider, "identitynamespace:"); ok {
		pool, _, _ := strings.Cut(rest, ":")
		return pool
	}
	switch {
	case strings.HasPrefix(provider, "//"):
		return "https:" + provider
	case strings.HasPrefix(provider, "https://iam.googleapis.com/"):
		return provider
	}
	return "https://iam.googleapis.com/" + strings.TrimPrefix(provider, "/")
}

// Merge returns the pod-wide cloud identity the agent configuration's
// top-level field carried before it carried one per volume: each field's
// first non-empty value, in volume order. It is kept for agents of that
// version (agentconfig.Config.Cloud).
func Merge(clouds ...Cloud) Cloud {
	var out Cloud
	first := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	for _, c := range clouds {
		first(&out.AWSRoleARN, c.AWSRoleARN)
		first(&out.AzureClientID, c.AzureClientID)
		first(&out.AzureTenantID, c.AzureTenantID)
		first(&out.GCPServiceAccount, c.GCPServiceAccount)
		first(&out.GCPWorkloadIdentityProvider, c.GCPWorkloadIdentityProvider)
	}
	return out
}

// TokenRequestFlag is the flag, repeatable, that names one audience of the
// CSIDriver's tokenRequests (the Helm value tokenRequests) for the
// webhook and the sync controller (Defaults.TokenRequests); an empty
// value names the API server's default audience.
const TokenRequestFlag = "token-request"

// AddTokenRequestFlag registers TokenRequestFlag on fs, appending to dst.
func AddTokenRequestFlag(fs *flag.FlagSet, dst *[]string) {
	fs.Func(TokenRequestFlag, "audience of the node shim's CSIDriver tokenRequests (Helm value tokenRequests; repeatable, empty for the API server's default); a Vault class without `audience` logs in with audience \"vault\" when one is \"vault\"", func(s string) error {
		*dst = append(*dst, strings.TrimSpace(s))
		return nil
	})
}
