package webhook

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/scheme"
)

// CacheLookup reads from the manager's informer caches (namespaces and
// service accounts as metadata only) and confirms a miss with one read
// from the API server, so that an object created a moment before the pod
// is found even when the cache has not seen it yet.
type CacheLookup struct {
	// Cache is the cache-backed reader (manager.GetCache()).
	Cache client.Reader
	// Live is the uncached reader (manager.GetAPIReader()); nil disables
	// the confirmation read.
	Live client.Reader
}

// Objects the caches watch. Informers for them are started before the
// webhook serves.
func watchedObjects() []client.Object {
	return []client.Object{scheme.Metadata("Namespace"), &ssiv1.SecretProviderClass{}, scheme.Metadata("ServiceAccount")}
}

// get reads obj from the cache, then from the API server on a miss;
// found is false when neither has it.
func (l *CacheLookup) get(ctx context.Context, key client.ObjectKey, obj client.Object) (found bool, err error) {
	err = l.Cache.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) && l.Live != nil {
		err = l.Live.Get(ctx, key, obj)
	}
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// NamespaceLabels implements Lookup.
func (l *CacheLookup) NamespaceLabels(ctx context.Context, namespace string) (map[string]string, error) {
	m := scheme.Metadata("Namespace")
	found, err := l.get(ctx, client.ObjectKey{Name: namespace}, m)
	if err != nil || !found {
		return nil, err
	}
	return m.Labels, nil
}

// Class implements Lookup.
func (l *CacheLookup) Class(ctx context.Context, namespace, name string) (*ssiv1.SecretProviderClass, error) {
	c := &ssiv1.SecretProviderClass{}
	found, err := l.get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, c)
	if err != nil || !found {
		return nil, err
	}
	return c, nil
}

// ConfigMap implements Lookup. ConfigMaps are read from the API server,
// not cached: only pods whose class takes a template from a ConfigMap
// need one, and a cluster-wide ConfigMap cache would hold every
// ConfigMap's data in the webhook's memory (and need list and watch).
// Without a live reader (tests) the cache reader is used.
func (l *CacheLookup) ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	r := l.Live
	if r == nil {
		r = l.Cache
	}
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return cm, nil
}

// ServiceAccount implements Lookup.
func (l *CacheLookup) ServiceAccount(ctx context.Context, namespace, name string) (*metav1.ObjectMeta, error) {
	m := scheme.Metadata("ServiceAccount")
	found, err := l.get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, m)
	if err != nil || !found {
		return nil, err
	}
	return &m.ObjectMeta, nil
}
