// Package v1 holds the SecretProviderClass and SecretProviderClassPodStatus
// types of the secrets-store.csi.x-k8s.io/v1 API group. The types mirror the
// upstream Secrets Store CSI Driver CRDs field for field so that objects
// written for the upstream driver apply and round-trip unchanged.
//
// +kubebuilder:object:generate=true
// +groupName=secrets-store.csi.x-k8s.io
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// KindSecretProviderClass is the kind of SecretProviderClass objects.
const KindSecretProviderClass = "SecretProviderClass"

var (
	// GroupVersion is the API group and version of the upstream-compatible types.
	GroupVersion = schema.GroupVersion{Group: "secrets-store.csi.x-k8s.io", Version: "v1"}

	// SchemeBuilder registers the types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&SecretProviderClass{}, &SecretProviderClassList{},
		&SecretProviderClassPodStatus{}, &SecretProviderClassPodStatusList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
