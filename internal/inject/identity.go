package inject

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/spc"
)

// identityFor derives the token audiences and cloud identity settings the
// agent needs for the pod's classes, from the classes and the service
// account's annotations.
func identityFor(vols []secretVolume, s *settings, in *Input) ([]string, identity.Cloud, []string) {
	var warnings []string
	var cloud identity.Cloud
	auds := map[string]bool{}
	saName := serviceAccountName(&in.Pod.Spec)
	sa := map[string]string{}
	if in.ServiceAccount != nil {
		sa = in.ServiceAccount.Annotations
	}
	unknownSA := in.ServiceAccount == nil
	for _, v := range vols {
		c := v.class
		switch {
		case c.AWS != nil:
			if c.AWS.UsePodIdentity {
				auds[AudienceAWSPodIdentity] = true
				continue
			}
			auds[AudienceAWSIRSA] = true
			if arn := sa[SAAnnotationAWSRoleARN]; arn != "" {
				cloud.AWSRoleARN = arn
			} else if unknownSA {
				warnings = append(warnings, fmt.Sprintf("SecretProviderClass %s: service account %q is unknown, so no IRSA role is set; annotate it with %s", c.Name, saName, SAAnnotationAWSRoleARN))
			} else {
				warnings = append(warnings, fmt.Sprintf("SecretProviderClass %s: service account %q has no %s annotation, so the agent has no IRSA role to assume (set usePodIdentity: \"true\" for EKS Pod Identity)", c.Name, saName, SAAnnotationAWSRoleARN))
			}
			if c.AWS.Region == "" {
				warnings = append(warnings, fmt.Sprintf("SecretProviderClass %s: parameters.region is empty; the agent cannot read the node's region label and uses AWS_REGION from its environment (--agent-env AWS_REGION=...)", c.Name))
			}
		case c.Azure != nil:
			az := c.Azure
			if cloud.AzureTenantID == "" {
				cloud.AzureTenantID = az.TenantID
			}
			if cloud.AzureTenantID == "" {
				cloud.AzureTenantID = sa[SAAnnotationAzureTenantID]
			}
			if az.UseVMManagedIdentity {
				warnings = append(warnings, processIdentityWarning(c.Name, "parameters.useVMManagedIdentity", "the node's managed identity"))
			}
			if az.UseVMManagedIdentity || az.UsePodIdentity || az.UseAzureTokenProxy {
				// Node identities: no pod token. (The Azure provider
				// refuses aad-pod-identity and identity binding with a
				// message; the agent reports it.)
				continue
			}
			clientID := az.ClientID
			if clientID == "" {
				clientID = sa[SAAnnotationAzureClientID]
			}
			if cloud.AzureClientID == "" {
				cloud.AzureClientID = clientID
			}
			if clientID == "" && v.nodePublishSecret != "" {
				// Service principal from the nodePublishSecretRef Secret.
				continue
			}
			auds[AudienceAzureWorkload] = true
			if clientID == "" {
				warnings = append(warnings, fmt.Sprintf("SecretProviderClass %s: Azure workload identity needs a client ID: set parameters.clientID or annotate service account %q with %s", c.Name, saName, SAAnnotationAzureClientID))
			}
		case c.GCP != nil:
			if gsa := sa[SAAnnotationGCPServiceAcct]; gsa != "" {
				cloud.GCPServiceAccount = gsa
			}
			if c.GCP.Auth == spc.GCPAuthProviderADC {
				warnings = append(warnings, processIdentityWarning(c.Name, "parameters.auth: provider-adc", "the application default credentials of the process that fetches (the node's)"))
				continue
			}
			if s.gcpWIFProvider != "" {
				cloud.GCPWorkloadIdentityProvider = s.gcpWIFProvider
				auds[gcpTokenAudience(s.gcpWIFProvider)] = true
			}
		case c.Vault != nil:
			auds[c.Vault.Audience] = true
		}
	}
	out := make([]string, 0, len(auds))
	for a := range auds {
		out = append(out, a)
	}
	sort.Strings(out)
	return out, cloud, warnings
}

// processIdentityWarning warns about a class that fetches with the
// identity of the process that runs the provider: the agent in this pod
// uses the node's identity, and the node CSI shim and the sync controller,
// which serve every namespace, refuse the class unless the operator lets
// them lend their own identity (builtin.Shared).
func processIdentityWarning(class, field, whose string) string {
	return fmt.Sprintf("SecretProviderClass %s: %s fetches with %s, not the pod's; the node CSI shim (pods not injected) and the sync controller (secretObjects) refuse this class unless the operator allows it (--allow-process-identity, Helm value allowProcessIdentity)", class, field, whose)
}

// gcpTokenAudience is the audience of the token exchanged at Google's STS
// for a workload identity provider "//iam.googleapis.com/projects/…": the
// provider's default allowed audience "https://iam.googleapis.com/projects/…".
func gcpTokenAudience(fullName string) string { return "https:" + fullName }

// tokens names the projected token file of every audience.
func (p *plan) tokens() []agentconfig.Token {
	out := make([]agentconfig.Token, 0, len(p.audiences))
	used := map[string]bool{}
	for _, a := range p.audiences {
		base := tokenFileName(a)
		name := base
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		used[name] = true
		out = append(out, agentconfig.Token{Audience: a, Path: TokenDir + "/" + name})
	}
	return out
}

// tokenFileName turns an audience into a file name: runs of characters
// other than letters, digits, '.', '-' and '_' become '-'.
func tokenFileName(aud string) string {
	if aud == identity.DefaultAudience {
		return "default"
	}
	var b strings.Builder
	dash := false
	for _, r := range aud {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_'
		if ok {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.Trim(b.String(), "-.")
	if s == "" {
		return "token"
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
