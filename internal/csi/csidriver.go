package csi

import (
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ssinjector/ssi/internal/identity"
)

// DefaultTokenAudiences are the service-account token audiences kubelet
// mints for every volume: AWS IRSA, EKS Pod Identity, Azure workload
// identity, and the API server's default audience ("") that the Vault
// provider logs in with when a class sets no `audience` (the seed guide's
// classes). GCP's audience names the project's workload identity pool, so
// it is added per installation, as is a Vault class's explicit audience.
var DefaultTokenAudiences = []string{
	identity.AudienceAWSIRSA,
	identity.AudienceAWSPodIdentity,
	identity.AudienceAzureWorkloadIdentity,
	identity.DefaultAudience,
}

// DriverObjectOptions shape the CSIDriver object.
type DriverObjectOptions struct {
	// Name is the driver name; DriverName when empty.
	Name string
	// Audiences are the tokenRequests; DefaultTokenAudiences when nil.
	Audiences []string
	// TokenInSecrets sets serviceAccountTokenInSecrets (Kubernetes 1.35+),
	// so kubelet passes tokens in the NodePublishVolume secrets instead of
	// the volume context.
	TokenInSecrets bool
	// Labels are added to the object.
	Labels map[string]string
}

// DriverObject is the CSIDriver the shim needs: pod information on mount
// (the class is read from the pod's namespace, the status is owned by the
// pod), no attach, inline ephemeral volumes only, tokens for the
// providers' audiences, and periodic republish, which is how kubelet drives
// rotation and refreshes the tokens.
func DriverObject(o DriverObjectOptions) *storagev1.CSIDriver {
	if o.Name == "" {
		o.Name = DriverName
	}
	if o.Audiences == nil {
		o.Audiences = DefaultTokenAudiences
	}
	t := true
	f := false
	d := &storagev1.CSIDriver{
		TypeMeta:   metav1.TypeMeta{APIVersion: "storage.k8s.io/v1", Kind: "CSIDriver"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Labels: o.Labels},
		Spec: storagev1.CSIDriverSpec{
			AttachRequired:       &f,
			PodInfoOnMount:       &t,
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecycleEphemeral},
			RequiresRepublish:    &t,
		},
	}
	for _, a := range o.Audiences {
		d.Spec.TokenRequests = append(d.Spec.TokenRequests, storagev1.TokenRequest{Audience: a})
	}
	if o.TokenInSecrets {
		d.Spec.ServiceAccountTokenInSecrets = &t
	}
	return d
}
