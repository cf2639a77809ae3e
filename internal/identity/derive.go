package identity

import "github.com/ssinjector/ssi/internal/spc"

// Service account annotations the cloud identity derivation reads; the
// names are those of the clouds' own workload identity webhooks.
const (
	SAAnnotationAWSRoleARN     = "eks.amazonaws.com/role-arn"
	SAAnnotationAzureClientID  = "azure.workload.identity/client-id"
	SAAnnotationAzureTenantID  = "azure.workload.identity/tenant-id"
	SAAnnotationGCPServiceAcct = "iam.gke.io/gcp-service-account"
)

// CloudFor derives the cloud identity settings of one class for a service
// account, from the class parameters and the service account's
// annotations, the same way the webhook derives them at admission for the
// agent: the IRSA role from eks.amazonaws.com/role-arn (unless the class
// uses EKS Pod Identity), the Azure client and tenant IDs from the class or
// else from the azure.workload.identity annotations, and the Google
// service account from iam.gke.io/gcp-service-account. gcpProvider is the
// workload identity federation provider, if the pod names one.
func CloudFor(c *spc.Class, saAnnotations map[string]string, gcpProvider string) Cloud {
	var out Cloud
	switch {
	case c.AWS != nil:
		if !c.AWS.UsePodIdentity {
			out.AWSRoleARN = saAnnotations[SAAnnotationAWSRoleARN]
		}
	case c.Azure != nil:
		out.AzureTenantID = c.Azure.TenantID
		if out.AzureTenantID == "" {
			out.AzureTenantID = saAnnotations[SAAnnotationAzureTenantID]
		}
		out.AzureClientID = c.Azure.ClientID
		if out.AzureClientID == "" {
			out.AzureClientID = saAnnotations[SAAnnotationAzureClientID]
		}
	case c.GCP != nil:
		out.GCPServiceAccount = saAnnotations[SAAnnotationGCPServiceAcct]
		if c.GCP.Auth != spc.GCPAuthProviderADC {
			out.GCPWorkloadIdentityProvider = gcpProvider
		}
	}
	return out
}
