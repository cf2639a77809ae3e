// Package scheme builds the runtime.Scheme every component's Kubernetes
// client uses: the core types and the SecretProviderClass API.
package scheme

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
)

// New returns a scheme that knows the core types and
// secrets-store.csi.x-k8s.io/v1.
func New() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := ssiv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Metadata returns an empty metadata-only object of a core (v1) kind, e.g.
// "ServiceAccount": the form in which the webhook and the sync controller
// read and watch such objects, so that they share one metadata informer in
// a manager's cache.
func Metadata(kind string) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(kind))
	return m
}

// LastAppliedAnnotation is the copy of the whole object that `kubectl
// apply` keeps on it.
const LastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// TrimForCache is the transform of every informer cache of the shared
// processes (the webhook and the node shim): it drops what they never read
// and what can double an object's size, its managedFields and kubectl's
// last-applied copy. What remains of a SecretProviderClass is its spec,
// which the namespace's object count quota bounds (docs/security.md).
func TrimForCache(obj any) (any, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		// A tombstone (DeletedFinalStateUnknown) keeps its object as is.
		return obj, nil
	}
	m.SetManagedFields(nil)
	if a := m.GetAnnotations(); a != nil {
		if _, ok := a[LastAppliedAnnotation]; ok {
			delete(a, LastAppliedAnnotation)
			if len(a) == 0 {
				a = nil
			}
			m.SetAnnotations(a)
		}
	}
	return obj, nil
}

// ConfigMapKeys reads keys of ConfigMaps in one namespace with r, for the
// template texts a class keeps in a ConfigMap (render.ConfigMapGetter):
// found is false when the ConfigMap or the key does not exist. The node
// shim and the sync controller pass their uncached API reader.
func ConfigMapKeys(ctx context.Context, r client.Reader, namespace string) func(name, key string) (string, bool, error) {
	return func(name, key string) (string, bool, error) {
		cm := &corev1.ConfigMap{}
		err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, cm)
		if apierrors.IsNotFound(err) {
			return "", false, nil
		}
		if err != nil {
			return "", false, fmt.Errorf("read ConfigMap %s/%s: %w", namespace, name, err)
		}
		v, ok := cm.Data[key]
		return v, ok, nil
	}
}
