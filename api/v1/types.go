package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Provider names the backend a SecretProviderClass reads from (aws, azure,
// gcp, vault, or the name of an external provider plugin).
type Provider string

// SecretObjectData maps one mounted object to one key of a synced Secret.
type SecretObjectData struct {
	// ObjectName is the name (or alias) of the mounted object.
	ObjectName string `json:"objectName,omitempty"`
	// Key is the data field of the Kubernetes Secret.
	Key string `json:"key,omitempty"`
}

// SecretObject describes a Kubernetes Secret to be synced from mounted objects.
type SecretObject struct {
	// SecretName is the name of the Kubernetes Secret.
	SecretName string `json:"secretName,omitempty"`
	// Type is the Kubernetes Secret type, for example Opaque or kubernetes.io/tls.
	Type string `json:"type,omitempty"`
	// Labels are added to the Secret.
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are added to the Secret.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Data lists the objects copied into the Secret.
	Data []*SecretObjectData `json:"data,omitempty"`
}

// SecretProviderClassSpec is the desired state of a SecretProviderClass.
type SecretProviderClassSpec struct {
	// Provider is the backend that serves the objects.
	Provider Provider `json:"provider,omitempty"`
	// Parameters are provider-specific; their schema is the provider's.
	Parameters map[string]string `json:"parameters,omitempty"`
	// SecretObjects are Kubernetes Secrets synced from the mounted objects.
	SecretObjects []*SecretObject `json:"secretObjects,omitempty"`
}

// SecretProviderClassStatus is the observed state of a SecretProviderClass;
// upstream v1 defines no fields.
type SecretProviderClassStatus struct{}

// +kubebuilder:object:root=true
// +kubebuilder:storageversion

// SecretProviderClass is the Schema for the secretproviderclasses API.
type SecretProviderClass struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SecretProviderClassSpec   `json:"spec,omitempty"`
	Status SecretProviderClassStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// SecretProviderClassList contains a list of SecretProviderClass.
type SecretProviderClassList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SecretProviderClass `json:"items"`
}

// SecretProviderClassObject records the version of one mounted object.
type SecretProviderClassObject struct {
	// ID is the object's identifier, as the provider reports it.
	ID string `json:"id,omitempty"`
	// Version is the object's version, as the provider reports it.
	Version string `json:"version,omitempty"`
}

// SecretProviderClassPodStatusStatus records what was mounted for one pod.
type SecretProviderClassPodStatusStatus struct {
	// PodName is the pod the volume belongs to.
	PodName                 string                      `json:"podName,omitempty"`
	SecretProviderClassName string                      `json:"secretProviderClassName,omitempty"`
	Mounted                 bool                        `json:"mounted,omitempty"`
	TargetPath              string                      `json:"targetPath,omitempty"`
	Objects                 []SecretProviderClassObject `json:"objects,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:storageversion

// SecretProviderClassPodStatus is the Schema for the
// secretproviderclasspodstatuses API: the mount state of one pod's volume.
type SecretProviderClassPodStatus struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status SecretProviderClassPodStatusStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// SecretProviderClassPodStatusList contains a list of SecretProviderClassPodStatus.
type SecretProviderClassPodStatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SecretProviderClassPodStatus `json:"items"`
}
