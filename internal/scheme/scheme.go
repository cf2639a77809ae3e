// Package scheme builds the runtime.Scheme every component's Kubernetes
// client uses: the core types and the SecretProviderClass API.
package scheme

import (
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

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
