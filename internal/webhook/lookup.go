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
	return []client.Object{scheme.Metadata("Namespace"), &ssiv1.SecretProviderClass{}, scheme.Metadata("ServiceAccount"), &corev1.ConfigMap{}}
}

// trimConfigMap is the cache transform of ConfigMaps: only their data can
// hold template text, so binaryData is dropped to keep the cluster-wide
// cache small.
func trimConfigMap(obj any) (any, error) {
	if cm, ok := obj.(*corev1.ConfigMap); ok {
		cm.BinaryData = nil
	}
	return scheme.TrimForCache(obj)
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

// ConfigMap implements Lookup.
func (l *CacheLookup) ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{}
	found, err := l.get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, cm)
	if err != nil || !found {
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
